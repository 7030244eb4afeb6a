"""The memory estimate against measured peak memory of real CPU runs.

Renders documents for a small Llama (built offline, real training shapes,
~30M parameters) for the `cpu` target, runs each generated script for a few
steps, and compares `explain`'s estimate (rules/memory.yaml: weights,
adapter, gradients, optimizer state, activations at the planned micro-batch)
with the growth of the process's peak resident memory from just before the
model loads to the end of training. Prints the estimate / measured ratio.

    python bench/memory_check.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from runs import build_tiny_model, explain, render, run_script, write_document

ROWS = [
    f"Row {i}: " + "the rules live in yaml tables and the script trains. " * 12 for i in range(64)
]
CASES = {
    "lora r16, micro-batch 8": {"adapter": "lora", "lora_r": 16, "micro_batch_size": 8},
    "dora r16, micro-batch 8": {"adapter": "dora", "lora_r": 16, "micro_batch_size": 8},
    "full, adamw, micro-batch 4": {"adapter": "full", "micro_batch_size": 4},
    "full, galore r32, micro-batch 4": {
        "adapter": "full",
        "optimizer": "galore_adamw",
        "galore_rank": 32,
        "micro_batch_size": 4,
    },
}


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="dlm-gen-memory-"))
    model = build_tiny_model(workdir / "model", " ".join(ROWS), hidden_size=512, num_layers=8)
    body = "\n\n::prose::\n".join(ROWS)
    print(f"{'case':<34} {'estimate':>10} {'measured':>10} {'ratio':>7}")
    for index, (case, training) in enumerate(CASES.items()):
        settings = {"sequence_len": 256, "grad_accum": 1, "warmup_ratio": 0.0, **training}
        document = write_document(workdir / f"case{index}.dlm", model, settings, body)
        estimate_gb = explain(document, "cpu")["memory"]["total_gb"]
        run = run_script(render(document, "cpu", workdir), workdir / f"run{index}", steps=3)
        measured_gb = (run["peak_memory_bytes"] - run["peak_memory_before_load_bytes"]) / 1e9
        ratio = estimate_gb / measured_gb
        print(f"{case:<34} {estimate_gb:>8.3f}GB {measured_gb:>8.3f}GB {ratio:>7.2f}")


if __name__ == "__main__":
    main()

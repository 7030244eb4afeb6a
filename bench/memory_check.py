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

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from tiny_model import build_tiny_model  # noqa: E402

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
    body = "\n\n::prose::\n".join(ROWS) + "\n"
    print(f"{'case':<34} {'estimate':>10} {'measured':>10} {'ratio':>7}")
    for index, (case, training) in enumerate(CASES.items()):
        settings = {"sequence_len": 256, "grad_accum": 1, "warmup_ratio": 0.0, **training}
        lines = "\n".join(f"  {key}: {value}" for key, value in settings.items())
        document = workdir / f"case{index}.dlm"
        document.write_text(f"---\nbase_model: {model}\ntraining:\n{lines}\n---\n{body}")
        command = [sys.executable, "-m", "dlm_gen"]
        explained = subprocess.run(
            [*command, "explain", str(document), "--target", "cpu", "--json"],
            check=True,
            capture_output=True,
            text=True,
        )
        estimate_gb = json.loads(explained.stdout)["memory"]["total_gb"]
        script = subprocess.run(
            [*command, "render", str(document), "--target", "cpu", "--out", str(workdir)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        output = workdir / f"run{index}"
        subprocess.run(
            [
                sys.executable,
                script,
                "--output-dir",
                str(output),
                "--max-steps",
                "3",
                "--save-steps",
                "1000",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        [run] = json.loads((output / "run.json").read_text())["adapters"]
        measured_gb = (run["peak_memory_bytes"] - run["peak_memory_before_load_bytes"]) / 1e9
        ratio = estimate_gb / measured_gb
        print(f"{case:<34} {estimate_gb:>8.3f}GB {measured_gb:>8.3f}GB {ratio:>7.2f}")


if __name__ == "__main__":
    main()

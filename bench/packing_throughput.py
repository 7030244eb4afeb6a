"""What packing buys: effective trained tokens per second, packed against unpacked.

A mixed-length instruction corpus (short and long answers, as real documents
have them) trained for --steps steps at micro-batch 4 by the generated script
with packing (the plan's default on sdpa) and with `packing: false`, and by a
hand-written TRL script with `packing=True` (bench/handwritten_packed.py), on
the tiny Llama or, with --real, the real SmolLM2-135M-Instruct. Effective
tokens are the samples' own tokens (run.json's tokens_trained; pad tokens are
computed but teach nothing); the time is the sum of the step times. Prints the
median of --runs runs of each, the ratios, and the padding fraction of the
generated runs (padding_tokens / all tokens computed).

    python bench/packing_throughput.py [--runs 3] [--steps 8] [--real]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from runs import (
    MIXED_PAIRS,
    ROOT,
    build_real_model,
    build_tiny_model,
    render,
    run_script,
    write_document,
)

SETTINGS = {
    "sequence_len": 512,
    "micro_batch_size": 4,
    "grad_accum": 1,
    "warmup_ratio": 0.0,
    "lr_scheduler": "constant",
    "learning_rate": 1e-4,
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "eval_fraction": 0.0,
    "num_epochs": 50,
}
LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def body() -> str:
    return "".join(f"::instruction::\n### Q\n{q}\n### A\n{a}\n\n" for q, a in MIXED_PAIRS)


def generated_run(script: Path, output: Path, steps: int) -> dict:
    run = run_script(script, output, steps)
    computed = run["tokens_trained"] + run["padding_tokens"]
    return {
        "tokens_per_second": run["tokens_trained"] / sum(run["step_seconds"]),
        "padding_fraction": run["padding_tokens"] / computed,
        "tokens": run["tokens_trained"],
        "optim": run["plan"]["optim"],
    }


def handwritten_run(spec: dict, spec_file: Path) -> dict:
    spec_file.write_text(json.dumps(spec))
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "handwritten_packed.py"), str(spec_file)],
        check=True,
        capture_output=True,
        text=True,
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "tokens_per_second": measured["tokens"] / sum(measured["step_seconds"]),
        "tokens": measured["tokens"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--real", action="store_true", help="SmolLM2-135M-Instruct")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dlm-gen-bench-packing-"))
    if args.real:
        model, described = build_real_model(), "SmolLM2-135M-Instruct"
    else:
        text = " ".join(f"{q} {a}" for q, a in MIXED_PAIRS)
        model = build_tiny_model(workdir / "model", text, hidden_size=256, num_layers=4)
        described = "tiny Llama (4 layers, width 256)"
    scripts = {
        packing: render(
            write_document(
                workdir / f"packing-{packing}.dlm",
                model,
                {**SETTINGS, "packing": str(packing).lower()},
                body(),
            ),
            "cpu",
            workdir / f"generated-{packing}",
        )
        for packing in (True, False)
    }
    spec = {
        **SETTINGS,
        "model": str(model),
        "pairs": MIXED_PAIRS,
        "steps": args.steps,
        "seed": 42,
        "output_dir": str(workdir / "hand"),
        "target_modules": LINEAR,
    }
    runs: dict[str, list[dict]] = {"packed": [], "unpacked": [], "trl": []}
    for index in range(args.runs):
        for name, packing in (("packed", True), ("unpacked", False)):
            output = workdir / f"run-{name}-{index}"
            runs[name].append(generated_run(scripts[packing], output, args.steps))
        spec["optim"] = runs["packed"][-1]["optim"]  # the same optimizer on every side
        runs["trl"].append(handwritten_run(spec, workdir / "spec.json"))

    def median(name: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[name])

    speed = {name: median(name, "tokens_per_second") for name in runs}
    print(
        f"{described}, LoRA, {len(MIXED_PAIRS)} instruction pairs of mixed length, "
        f"sequence_len {SETTINGS['sequence_len']}, micro-batch 4, {args.steps} steps, "
        f"median of {args.runs}"
    )
    for name in runs:
        per_run = ", ".join(f"{run['tokens_per_second']:.0f}" for run in runs[name])
        print(f"{name:>9}: {speed[name]:8.0f} effective tokens/s (per run: {per_run})")
    print(f"packed / unpacked: {speed['packed'] / speed['unpacked']:.2f}")
    print(f"packed / TRL packing=True: {speed['packed'] / speed['trl']:.2f}")
    print(
        f"padding fraction: unpacked {median('unpacked', 'padding_fraction'):.3f}, "
        f"packed {median('packed', 'padding_fraction'):.3f}"
    )


if __name__ == "__main__":
    main()

"""What the generated script's preference (DPO) phase costs against a hand-written TRL one.

A document of triples only (so the script's whole run is the phase), on the
tiny Llama or, with --real, the real SmolLM2-135M-Instruct: the generated
script's median DPO step time against a minimal hand-written `DPOTrainer`
script (bench/handwritten_dpo.py) on the same triples, batch, learning rate,
beta and steps; the median of --runs runs each. Prints the ratio (goal <= 1.03)
and the generated run's step-1 loss (ln 2 = 0.6931 for a fresh adapter).

    python bench/preference_overhead.py [--runs 3] [--steps 20] [--real]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from runs import ROOT, build_real_model, build_tiny_model, render, run_script

TRIPLES = [
    (
        f"Request {i}: could you help with task {i}?",
        f"Certainly! Here is help with task {i}.",
        "No.",
    )
    for i in range(32)
]
SETTINGS = {
    "sequence_len": 64,
    "micro_batch_size": 4,
    "grad_accum": 1,
    "warmup_ratio": 0.0,
    "lr_scheduler": "constant",
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "eval_fraction": 0.0,
}
PREFERENCE = {"beta": 0.1, "learning_rate": 5e-5}
LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def document(path: Path, model: Path) -> Path:
    body = "".join(
        f"::preference::\n### Prompt\n{p}\n### Chosen\n{c}\n### Rejected\n{r}\n\n"
        for p, c, r in TRIPLES
    )
    settings = "\n".join(f"  {key}: {value}" for key, value in SETTINGS.items())
    hyper = "\n".join(f"      {key}: {value}" for key, value in PREFERENCE.items())
    path.write_text(
        f"---\nbase_model: {model}\ntraining:\n{settings}\n  preference:\n"
        f"    hyperparams:\n{hyper}\n---\n{body}"
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--real", action="store_true", help="SmolLM2-135M-Instruct")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dlm-gen-bench-dpo-"))
    if args.real:
        model, described = build_real_model(), "SmolLM2-135M-Instruct"
    else:
        text = " ".join(" ".join(t) for t in TRIPLES)
        model = build_tiny_model(workdir / "model", text, hidden_size=256, num_layers=4)
        described = "tiny Llama (4 layers, width 256)"
    script = render(document(workdir / "bench-dpo.dlm", model), "cpu", workdir / "generated")
    spec = {
        **SETTINGS,
        **PREFERENCE,
        "model": str(model),
        "triples": TRIPLES,
        "steps": args.steps,
        "seed": 42,
        "output_dir": str(workdir / "hand"),
        "target_modules": LINEAR,
    }
    spec_file = workdir / "spec.json"
    generated, handwritten, first_losses = [], [], []
    for index in range(args.runs):
        run = run_script(script, workdir / f"run-{index}", args.steps)
        spec["optim"] = run["plan"]["optim"]  # the same optimizer on both sides
        spec_file.write_text(json.dumps(spec))
        preference = run["preference"]
        generated.append(preference["median_step_seconds"])
        first_losses.append(preference["first_loss"])
        result = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "handwritten_dpo.py"), str(spec_file)],
            check=True,
            capture_output=True,
            text=True,
        )
        handwritten.append(
            json.loads(result.stdout.strip().splitlines()[-1])["median_step_seconds"]
        )
    median = statistics.median
    print(f"{described}, DPO, {args.steps} steps, batch 4, median of {args.runs}")
    print(
        f"DPO step: generated {median(generated) * 1000:.1f} ms, hand-written "
        f"{median(handwritten) * 1000:.1f} ms, ratio {median(generated) / median(handwritten):.3f}"
        " (goal <= 1.03)"
    )
    print(
        "per run (ms): generated "
        + ", ".join(f"{s * 1000:.0f}" for s in generated)
        + "; hand-written "
        + ", ".join(f"{s * 1000:.0f}" for s in handwritten)
    )
    print(f"step-1 loss of the generated phase: {median(first_losses):.4f} (ln 2 = 0.6931)")


if __name__ == "__main__":
    main()

"""What two defaults cost per step on the real model: unfused AdamW and LoRA dropout.

The evidence behind two rows (rules/optimizers.yaml's adamw_torch entry and
rules/training.yaml's lora_dropout rows): the hand-written TRL script of
bench/handwritten_sft.py trains SmolLM2-135M-Instruct (examples/real_model.py)
on the CPU with one setting changed at a time; the median time per step over
--runs runs of --steps steps is printed for each, with the ratio to the first.

    python bench/step_costs.py [--runs 3] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from runs import ROOT, build_real_model

TEXTS = [
    f"Row {i}: the rules live in yaml tables, and the script trains an adapter." for i in range(48)
]
BASE = {
    "sequence_len": 64,
    "micro_batch_size": 4,
    "learning_rate": 1e-3,
    "lora_r": 8,
    "lora_alpha": 16,
    "seed": 42,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
CASES = {
    "LoRA, fused AdamW, dropout 0": {"optim": "adamw_torch_fused", "lora_dropout": 0.0},
    "LoRA, unfused AdamW, dropout 0": {"optim": "adamw_torch", "lora_dropout": 0.0},
    "LoRA, fused AdamW, dropout 0.05": {"optim": "adamw_torch_fused", "lora_dropout": 0.05},
    "DoRA, fused AdamW, dropout 0": {
        "optim": "adamw_torch_fused",
        "lora_dropout": 0.0,
        "use_dora": True,
    },
    "DoRA, fused AdamW, dropout 0.05": {
        "optim": "adamw_torch_fused",
        "lora_dropout": 0.05,
        "use_dora": True,
    },
}


def seconds_per_step(spec: dict, workdir: Path, name: str) -> float:
    spec_file = workdir / f"{name}.json"
    spec_file.write_text(json.dumps(spec))
    script = ROOT / "bench" / "handwritten_sft.py"
    done = subprocess.run(
        [sys.executable, str(script), str(spec_file)], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["train_seconds"] / spec["steps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    model = build_real_model()
    workdir = Path(tempfile.mkdtemp(prefix="dlm-gen-step-costs-"))
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for index in range(args.runs):  # rounds alternate the cases: the machine's speed drifts
        for number, (name, case) in enumerate(CASES.items()):
            spec = {
                **BASE,
                **case,
                "model": str(model),
                "texts": TEXTS,
                "steps": args.steps,
                "output_dir": str(workdir / f"out-{number}-{index}"),
            }
            times[name].append(seconds_per_step(spec, workdir, f"case-{number}-{index}"))
    print(f"SmolLM2-135M-Instruct, batch 4 x 64 tokens, {args.steps} steps, median of {args.runs}")
    reference = statistics.median(next(iter(times.values())))
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:34s} {median * 1000:7.1f} ms/step  x{median / reference:.3f}")


if __name__ == "__main__":
    main()

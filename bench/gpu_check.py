"""The GPU check: real shapes of a 1B-class Llama: LoRA vs DoRA vs GaLore, packing, FSDP.

For a lent H100/H200 (or any CUDA GPU; < 8 minutes on an H100): builds a
randomly initialised Llama-3.2-1B-shaped model from a config (no download),
renders LoRA, DoRA and full-fine-tuning GaLore documents for the matching
target profile, runs each generated script for a few dozen steps, and prints
tokens/s, MFU, the DoRA/LoRA step ratio and peak memory against the estimate.
Then LoRA on mixed-length instruction pairs with and without packing
(effective tokens/s: the samples' own tokens, and the padding fraction), and,
when two GPUs are there (or with --smoke, two CPU processes), a two-process
LoRA under FSDP: a team rules directory (DLM_GEN_RULES) adds a profile whose
memory is just too small for one replica, so the plan itself chooses FSDP.

    python bench/gpu_check.py [--steps 30] [--target h100]
    python bench/gpu_check.py --smoke      # tiny shapes on the CPU: checks the plumbing only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from runs import (
    MIXED_PAIRS,
    ROOT,
    build_tiny_model,
    explain,
    render,
    run_script,
    write_document,
)

# Llama-3.2-1B's shapes (its config.json), random weights.
ONE_B = {
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "vocab_size": 128256,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}
SMOKE = {
    **ONE_B,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 512,
}
# Dense bf16 peak of the GPU, for MFU (NVIDIA data sheets, SXM parts).
PEAK_TFLOPS = {"h100": 989.0, "h200": 989.0, "a100-80gb": 312.0, "a100-40gb": 312.0, "cpu": None}
CASES = {
    "lora": {"adapter": "lora", "lora_r": 16},
    "dora": {"adapter": "dora", "lora_r": 16},
    "galore (full)": {"adapter": "full", "optimizer": "galore_adamw", "galore_rank": 128},
}
TEXT = "the rules live in yaml tables, and the script trains a real model on real shapes. "


def build_model(directory: Path, shapes: dict) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer_dir = build_tiny_model(directory / "tokenizer", TEXT)
    model_dir = directory / "model"
    torch.manual_seed(0)
    config = LlamaConfig(**shapes, bos_token_id=1, eos_token_id=2)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(model_dir)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, model_dir / name)
    return model_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--target", default=None, help="default: the profile doctor matches")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dlm-gen-gpu-"))
    target = "cpu" if args.smoke else args.target or _matched_target()
    steps = 2 if args.smoke else args.steps
    model = build_model(workdir, SMOKE if args.smoke else ONE_B)
    rows = "\n\n::prose::\n".join(f"Row {i}: {TEXT * 20}" for i in range(256))
    results = {}
    for name, training in CASES.items():
        settings = {"sequence_len": 64 if args.smoke else 1024, "warmup_ratio": 0.0, **training}
        short = name.split()[0]
        document = write_document(workdir / f"{short}.dlm", model, settings, rows)
        plan = explain(document, target)
        run = run_script(render(document, target, workdir), workdir / short, steps, quiet=False)
        results[name] = (run, plan)
    print(f"\n{target}, {steps} steps, 1B-class Llama shapes" + (" (smoke)" if args.smoke else ""))
    columns = ("tokens/s", 10), ("step ms", 9), ("MFU", 7), ("peak GB", 9), ("est GB", 8)
    print(f"{'case':<15}" + "".join(f"{title:>{width}}" for title, width in columns) + "  ratio")
    for name, (run, plan) in results.items():
        params = plan["base_model"]["params"]
        # FLOPs per token: 6N when every weight trains, 4N when the base is frozen
        # (no weight gradients for it), as in the MFU convention of the PaLM paper.
        flops_per_token = (6 if name.startswith("galore") else 4) * params
        peak = PEAK_TFLOPS.get(target)
        mfu = run["tokens_per_second"] * flops_per_token / (peak * 1e12) if peak else None
        peak_gb = run["peak_memory_bytes"] / 1e9
        # torch.cuda.max_memory_allocated excludes the CUDA context the estimate adds.
        estimate_gb = plan["memory"]["total_gb"] - plan["memory"]["overhead_gb"]
        print(
            f"{name:<15}{run['tokens_per_second']:>10.0f}{run['mean_step_seconds'] * 1000:>9.1f}"
            f"{(f'{mfu:.1%}' if mfu is not None else '-'):>7}{peak_gb:>9.2f}"
            f"{estimate_gb:>8.2f}{estimate_gb / peak_gb:>7.2f}"
        )
    ratio = results["dora"][0]["mean_step_seconds"] / results["lora"][0]["mean_step_seconds"]
    print(f"DoRA/LoRA step time ratio: {ratio:.3f}")
    check_packing(workdir, model, target, steps, args.smoke)
    check_fsdp(workdir, model, target, steps, args.smoke)


def check_packing(workdir: Path, model: Path, target: str, steps: int, smoke: bool) -> None:
    """LoRA on mixed-length instruction pairs, packed (the plan's default) and not."""
    body = "".join(f"::instruction::\n### Q\n{q}\n### A\n{a}\n\n" for q, a in MIXED_PAIRS * 4)
    speed = {}
    print(f"\n{'case':<15}{'eff. tokens/s':>14}{'padding':>9}{'peak GB':>9}{'est GB':>8}")
    for name, packing in (("lora packed", True), ("lora unpacked", False)):
        settings = {"adapter": "lora", "lora_r": 16, "warmup_ratio": 0.0, "num_epochs": 50}
        # The longest pair is ~1,000 tokens of the smoke tokenizer: none is cut (truncation-*).
        settings.update(sequence_len=1024 if smoke else 2048, packing=str(packing).lower())
        document = write_document(workdir / f"packing-{packing}.dlm", model, settings, body)
        plan = explain(document, target)
        assert plan["plan"]["packing"] is packing, plan["plan"]["packing"]
        script = render(document, target, workdir / f"packing-{packing}")
        run = run_script(script, workdir / f"run-packing-{packing}", steps, quiet=False)
        speed[name] = run["tokens_trained"] / sum(run["step_seconds"])
        padding = run["padding_tokens"] / (run["tokens_trained"] + run["padding_tokens"])
        estimate_gb = plan["memory"]["total_gb"] - plan["memory"]["overhead_gb"]
        print(
            f"{name:<15}{speed[name]:>14.0f}{padding:>9.3f}"
            f"{run['peak_memory_bytes'] / 1e9:>9.2f}{estimate_gb:>8.2f}"
        )
    print(
        f"packed/unpacked effective tokens/s: {speed['lora packed'] / speed['lora unpacked']:.2f}"
    )


def check_fsdp(workdir: Path, model: Path, target: str, steps: int, smoke: bool) -> None:
    """Two processes, LoRA sharded with FSDP because one replica does not fit the profile."""
    import torch

    if not smoke and torch.cuda.device_count() < 2:
        print("\nFSDP: skipped, one GPU here (two are needed)")
        return
    rules = workdir / "team-rules"
    shutil.copytree(ROOT / "rules", rules)
    settings = {"adapter": "lora", "lora_r": 16, "warmup_ratio": 0.0, "sequence_len": 128}
    rows = "\n\n::prose::\n".join(f"Row {i}: {TEXT * 20}" for i in range(64))
    document = write_document(workdir / "fsdp.dlm", model, settings, rows)
    os.environ["DLM_GEN_RULES"] = str(rules)  # the explain and render subprocesses read it
    try:
        plan, memory_gb = _fsdp_plan(rules, document, target)
        script = render(document, "fsdp-check", workdir / "fsdp")
    finally:
        del os.environ["DLM_GEN_RULES"]
    output = workdir / "run-fsdp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += [str(script), "--output-dir", str(output), "--max-steps", str(steps)]
    subprocess.run([*command, "--save-steps", str(10 * steps)], check=True)
    manifest = json.loads((output / "run.json").read_text())
    [run] = manifest["adapters"]
    estimate_gb = plan["memory"]["total_gb"] - plan["memory"]["overhead_gb"]
    print(
        f"\nFSDP LoRA, 2 processes on fsdp-check ({target}, {memory_gb:.3g} GB, "
        f"{plan['plan']['strategy']}{plan['plan']['fsdp_version']}): "
        f"{run['tokens_per_second']:.0f} tokens/s on rank 0, "
        f"peak {run['peak_memory_bytes'] / 1e9:.2f} GB against {estimate_gb:.2f} GB estimated, "
        f"world size {manifest['world_size']}, one adapter: "
        f"{len(list(output.rglob('adapter_model.safetensors'))) == 1}"
    )


def _fsdp_plan(rules: Path, document: Path, target: str) -> tuple[dict, float]:
    """Add the `fsdp-check` profile (the target's, two processes) with just too little
    memory for one replica (the plan's own replica estimate); its plan, which shards."""
    import yaml

    targets_file = rules / "targets.yaml"
    table = yaml.safe_load(targets_file.read_text())
    usable = yaml.safe_load((rules / "memory.yaml").read_text())["usable_fraction"]
    profile = {**table["targets"][target], "gpu_count": 2, "memory_gb": 1000}

    def plan_with(memory_gb: float) -> dict:
        table["targets"]["fsdp-check"] = {**profile, "memory_gb": memory_gb}
        targets_file.write_text(yaml.safe_dump(table, sort_keys=False))
        return explain(document, "fsdp-check")

    replica_gb = plan_with(1000)["memory"]["replica_min_total_gb"]
    memory_gb = round(replica_gb / usable * 0.98, 6)
    plan = plan_with(memory_gb)
    if plan["plan"]["strategy"] != "fsdp":
        raise SystemExit(f"the plan kept {plan['plan']['strategy']} below one replica")
    return plan, memory_gb


def _matched_target() -> str:
    out = subprocess.run(
        [sys.executable, "-m", "dlm_gen", "doctor", "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)["profile"] or "h100"


if __name__ == "__main__":
    main()

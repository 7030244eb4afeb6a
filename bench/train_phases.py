"""Where a generated script's wall time goes, on the house-style job (make demo's).

Runs the script of examples/house-style.dlm for the CPU on the real SmolLM2-135M-Instruct
(--real; the default is the tiny Llama, for a quick look) and prints, as medians of --runs:

- the whole process, as a user waits for it (from the command to its exit);
- from the script's start to its first optimizer step (imports, tokenizing, loading,
  the answers before training);
- the training loop (the first step's start to the last step's end);
- from the last step to the record (evaluation, the answers after, the divergence
  from the base, saving) and the exit.

The phases are the script's own `timings` in run.json. Peers' figures (issue 20:
LLaMA-Factory 0.9.5 and axolotl 0.21 on the same job) are measured in their own
environments and are not run here.

    python bench/train_phases.py [--runs 3] [--real] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runs import ROOT, build_real_model, build_tiny_model, render

PHASES = ("to_first_step", "loop", "after_last_step")


def one_run(script: Path, model: Path, output: Path, threads: int | None) -> dict:
    """Wall time of the whole process and the script's own phases."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    command = [sys.executable, str(script), "--output-dir", str(output), "--base-path", str(model)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    record = json.loads((output / "run.json").read_text())
    [run] = record["adapters"]
    return {
        "process": wall,
        **{phase: record["timings"][phase] for phase in PHASES},
        # The process outlives the record by the interpreter's exit: counted with the tail.
        "after_record": wall - record["timings"]["total"],
        "steps": run["steps"],
        "eval_loss": run["eval_loss"],
        "peak_rss_gb": run["peak_memory_bytes"] / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--real", action="store_true", help="the real SmolLM2-135M-Instruct")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dlm-gen-phases-"))
    if args.real:
        model, described = build_real_model(), "SmolLM2-135M-Instruct"
    else:
        model, described = build_tiny_model(workdir / "model"), "tiny Llama"
    text = (ROOT / "examples" / "house-style.dlm").read_text(encoding="utf-8")
    if not args.real:  # the tiny tokenizer spends several tokens on a SmolLM2 token
        text = text.replace("sequence_len: 96", "sequence_len: 512")
    document = workdir / "house-style.dlm"
    document.write_text(text)
    script = render(document, "cpu", workdir / "generated")
    runs = [one_run(script, model, workdir / f"run-{i}", args.threads) for i in range(args.runs)]
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    print(
        f"house-style on {described}, CPU, median of {args.runs} (threads: {args.threads or 'all'})"
    )
    print(f"  whole process      {median['process']:6.1f} s")
    print(f"  to the first step  {median['to_first_step']:6.1f} s")
    print(f"  training loop      {median['loop']:6.1f} s  ({median['steps']:.0f} steps)")
    tail = median["after_last_step"] + median["after_record"]
    print(f"  after the last     {tail:6.1f} s")
    print(f"  eval loss {median['eval_loss']:.3f}, peak RSS {median['peak_rss_gb']:.2f} GB")


if __name__ == "__main__":
    main()

"""How much faster `dlm-gen explain` is than importing the training stack.

Prints the median wall time of `dlm-gen explain` on the example document and
of `python -c "import torch, transformers, peft, trl"` (what every peer pays
before it validates a config), and their ratio. The goal is at most 1/25.

    python bench/explain_speed.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "galore-smollm2.dlm"


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    explain = [sys.executable, "-m", "dlm_gen", "explain", str(EXAMPLE), "--target", "a100-80gb"]
    heavy = [sys.executable, "-c", "import torch, transformers, peft, trl"]
    median_seconds(explain, 1)  # warm the rule cache and the OS file cache
    median_seconds(heavy, 1)
    explain_s = median_seconds(explain, args.runs)
    heavy_s = median_seconds(heavy, args.runs)
    print(f"dlm-gen explain           median {explain_s:.3f} s over {args.runs} runs")
    print(f"import torch/transformers/peft/trl  median {heavy_s:.3f} s over {args.runs} runs")
    ratio = explain_s / heavy_s
    print(f"ratio explain / import = {ratio:.4f} (1/{1 / ratio:.1f}; goal <= 1/25)")


if __name__ == "__main__":
    main()

"""How much faster `dlm-gen explain` is than importing the training stack.

Prints the median wall time of `dlm-gen explain` on the example document,
warm (the checked-rules receipt is cached) and cold (no cache), and of
`python -c "import torch, transformers, peft, trl"` (what every peer pays
before it validates a config), and their ratio: the goal is at most 1/25
warm. Also prints how long a cold process takes to load and check the shipped
tables plus one generated table of 2,400 rows (goal: at most 1 s).

    python bench/explain_speed.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "galore-smollm2.dlm"


BIG_TABLE_ROWS = 2400
LOAD_BIG_TABLE = """
import sys, time
from pathlib import Path
start = time.perf_counter()
from dlm_gen.rules import load_rules
imported = time.perf_counter()
load_rules(Path(sys.argv[1]))
print(time.perf_counter() - start, time.perf_counter() - imported)
"""


def seconds(command: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def big_table_seconds(runs: int) -> tuple[float, float]:
    """Median seconds to import dlm-gen and load the tables plus 2,400 rows (no cache),
    and of the load alone."""
    with tempfile.TemporaryDirectory() as directory:
        tables = Path(directory)
        for table in (ROOT / "rules").glob("*.yaml"):
            shutil.copy(table, tables)
        rows = [
            f"  - id: big-{i}\n    when: {{training.seed: {i}}}\n"
            f"    set: {{big_field: {i}}}\n    why: row {i}"
            for i in range(BIG_TABLE_ROWS)
        ]
        header = "kind: rules\ndescription: generated\nid_prefix: big\nhit_policy: unique\nrules:\n"
        (tables / "big.yaml").write_text(header + "\n".join(rows) + "\n")
        env = {**os.environ, "DLM_GEN_CACHE_DIR": "off"}
        command = [sys.executable, "-c", LOAD_BIG_TABLE, str(tables)]
        times = [
            tuple(
                map(
                    float,
                    subprocess.run(
                        command, check=True, capture_output=True, env=env
                    ).stdout.split(),
                )
            )
            for _ in range(runs)
        ]
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    explain = [sys.executable, "-m", "dlm_gen", "explain", str(EXAMPLE), "--target", "a100-80gb"]
    heavy = [sys.executable, "-c", "import torch, transformers, peft, trl"]
    # An installed wheel has its bytecode compiled at install time; with
    # PYTHONDONTWRITEBYTECODE set, a checkout would compile every module on
    # every run and the benchmark would time the compiler.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "dlm_gen")], check=True)
    cold_env = {**os.environ, "DLM_GEN_CACHE_DIR": "off"}
    seconds(explain)  # write the rules receipt, warm the OS file cache
    seconds(heavy)
    # Interleaved rounds: this machine's speed drifts, and a ratio of two
    # figures taken minutes apart would measure the drift.
    rounds = [
        (seconds(explain), seconds(explain, cold_env), seconds(heavy)) for _ in range(args.runs)
    ]
    warm_s = statistics.median(r[0] for r in rounds)
    cold_s = statistics.median(r[1] for r in rounds)
    heavy_s = statistics.median(r[2] for r in rounds)
    ratio = statistics.median(r[0] / r[2] for r in rounds)
    cold_ratio = statistics.median(r[1] / r[2] for r in rounds)
    big_s, big_load_s = big_table_seconds(3)
    print(f"dlm-gen explain, warm     median {warm_s:.3f} s over {args.runs} rounds")
    print(f"dlm-gen explain, cold     median {cold_s:.3f} s (no rules receipt)")
    print(f"import torch/transformers/peft/trl  median {heavy_s:.3f} s")
    print(
        f"ratio explain / import = {ratio:.4f} (1/{1 / ratio:.1f}; goal <= 1/25; median of rounds)"
    )
    print(f"cold ratio             = {cold_ratio:.4f} (1/{1 / cold_ratio:.1f})")
    print(
        f"cold load of the tables + a {BIG_TABLE_ROWS}-row table: {big_load_s:.3f} s "
        f"({big_s:.3f} s with the imports; median of 3; goal <= 1 s)"
    )


if __name__ == "__main__":
    main()

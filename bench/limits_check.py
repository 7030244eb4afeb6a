"""A document at the caps of rules/limits.yaml renders a script that starts quickly.

Builds a document with `max_rows` instruction rows filling most of
`max_document_bytes`, renders it for the CPU, and prints the document and
script sizes, the render time and the median time of `python train_<hash>.py
--help` (which compiles the whole script, rows included). The goal is under
2 s for `--help`.

    python bench/limits_check.py [--rows N] [--bytes B]   # defaults: the caps
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dlm_gen.limits import limits


def document_at_caps(path: Path, rows: int, budget: int) -> None:
    per_row = max(40, budget // rows - 60)
    words = ("a fine-tuning corpus row " * (per_row // 25 + 1))[: per_row // 2]
    with path.open("w", encoding="utf-8") as handle:
        handle.write("---\nbase_model: smollm2-135m\n---\n")
        for index in range(rows):
            handle.write(f"::instruction::\n### Q\n{index} {words}\n### A\n{words}\n")


def main() -> None:
    caps = limits()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=caps["max_rows"])
    parser.add_argument("--bytes", type=int, default=int(caps["max_document_bytes"] * 0.95))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        document = Path(directory) / "at-caps.dlm"
        document_at_caps(document, args.rows, args.bytes)
        start = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "dlm_gen",
                "render",
                str(document),
                "--target",
                "cpu",
                "--out",
                directory,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        render_s = time.perf_counter() - start
        script = Path(done.stdout.strip())
        times = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([sys.executable, str(script), "--help"], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        print(
            f"document: {args.rows} rows, {document.stat().st_size / 2**20:.1f} MiB "
            f"(caps: {caps['max_rows']} rows, {caps['max_document_bytes'] / 2**20:g} MiB)"
        )
        print(
            f"script:   {script.stat().st_size / 2**20:.1f} MiB "
            f"(cap {caps['max_script_bytes'] / 2**20:g} MiB), rendered in {render_s:.2f} s"
        )
        print(f"--help:   median {statistics.median(times):.2f} s over 3 runs (goal < 2 s)")


if __name__ == "__main__":
    main()

"""Inputs at the caps of rules/limits.yaml complete in bounded time and memory.

The document: builds one with `max_rows` instruction rows filling most of
`max_document_bytes`, renders it for the CPU, and prints the document and
script sizes, the render time and the median time of `python train_<hash>.py
--help` (which compiles the whole script, rows included). The goal is under
2 s for `--help`.

`compare`: writes run.json files of `max_run_json_bytes` (per-step lists; the
most Python objects a byte can make; `max_run_json_containers` objects) and
runs `dlm-gen compare FILE FILE` on each (both sides at the cap), and
`compare --plot` on the longest loss curve, printing each child's wall time and
peak RSS as ratios against the targets below.

`diff`: pads a rendered script's ROWS up to `max_script_bytes` (many instruction
rows, many tiny rows, one prose row as long as the cap allows) and runs `dlm-gen
diff SCRIPT SCRIPT` on each (both sides at the cap), printing wall time and peak
RSS against the diff targets. Before diff read a script row by row it built one
syntax tree of the whole file: 1.8 GB for a 32 MiB script, 3.6 GB for 60 MB.

    python bench/limits_check.py [--rows N] [--bytes B] [--script-bytes S]
                                 [--part all|document|compare|diff]
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
from collections.abc import Callable
from pathlib import Path

from dlm_gen.limits import limits

# What `compare` at the caps must stay under, on 2 CPU cores: well inside the
# fuzz harness's bounds (tests/fuzzing.py: 30 s, 2 GiB of address space).
COMPARE_TARGET_S = 10.0
COMPARE_TARGET_RSS_MB = 1024.0
# The same bounds for `diff` of two scripts at max_script_bytes (dlm_gen/diff.py).
DIFF_TARGET_S = 20.0
DIFF_TARGET_RSS_MB = 1024.0


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
    parser.add_argument("--script-bytes", type=int, default=caps["max_script_bytes"])
    parser.add_argument("--run-json-bytes", type=int, default=caps["max_run_json_bytes"])
    parser.add_argument("--part", choices=("all", "document", "compare", "diff"), default="all")
    args = parser.parse_args()
    if args.part in ("all", "document"):
        document_check(args, caps)
    if args.part in ("all", "compare"):
        compare_check(caps, args.run_json_bytes)
    if args.part in ("all", "diff"):
        diff_check(caps, args.script_bytes)


def document_check(args: argparse.Namespace, caps: dict[str, int]) -> None:
    """Render a document at the caps and time its script's `--help`."""
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


def run_record(**extra: object) -> dict:
    """One adapter's run.json record, as a generated script writes it."""
    return {
        "name": None,
        "plan": {"adapter": "lora", "peft": True},
        "settings": {"lora_r": 8},
        "trainable_parameters": 16384,
        "steps": 40,
        "rows": {"train": 30, "held_out": 10, "eval_on": "held-out rows"},
        "final_train_loss": 4.9,
        "eval_loss": 5.0,
        "step_seconds": [],
        "peak_memory_bytes": 500 * 2**20,
        "wall_seconds": 1.0,
        "losses": [],
        "rows_sha256": "abc",
        **extra,
    }


def run_json_at_cap(path: Path, cap: int, fill: Callable[[int], dict]) -> None:
    """A run.json of just under `cap` bytes: `fill(room)` adds fields of ~`room` bytes."""
    room = cap - len(json.dumps({"adapters": [run_record()]})) - 64
    text = json.dumps({"adapters": [run_record(**fill(room))]}, separators=(",", ":"))
    assert len(text) <= cap, (path, len(text), cap)
    path.write_text(text)


def compare_fills(caps: dict[str, int]) -> dict[str, Callable[[int], dict]]:
    """The run.json shapes measured: what a long run writes, and the worst cases per byte."""
    containers = caps["max_run_json_containers"] - 100  # the record's own objects and lists
    return {
        # ~19 bytes a number: a long run's loss, step time and learning rate per step
        "per-step lists": lambda room: {
            "losses": [1.234567890123456] * (room // 60),
            "step_seconds": [0.123456789012345] * (room // 60),
            "learning_rates": [0.000123456789012] * (room // 60),
        },
        # a new float object per 4 bytes, each checked: the most work per byte
        "short losses": lambda room: {"losses": [0.5] * (room // 4)},
        # a new str object per 5 bytes, in a field compare does not read
        "short strings": lambda room: {"samples": ["ab"] * (room // 5)},
        # objects up to their cap, then numbers
        "objects at the cap": lambda room: {
            "samples": [{}] * containers + [0] * ((room - 3 * containers) // 2)
        },
    }


def measured(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process, which must exit 0."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not the maximum
        seconds = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        child.returncode = code
        if code != 0:
            errors.seek(0)
            sys.exit(f"{' '.join(command)}: exit {code}\n{errors.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def compare_check(caps: dict[str, int], cap: int) -> None:
    """`compare` (and `compare --plot`) of two run.json files at the caps."""
    print(
        f"compare:  run.json at {cap / 2**20:g} MiB on both sides (max_run_json_bytes), "
        f"targets {COMPARE_TARGET_S:g} s and {COMPARE_TARGET_RSS_MB:g} MB peak RSS"
    )
    base = [sys.executable, "-m", "dlm_gen", "compare"]
    with tempfile.TemporaryDirectory() as directory:
        for label, fill in compare_fills(caps).items():
            run = Path(directory) / label.replace(" ", "-") / "run.json"
            run.parent.mkdir()
            run_json_at_cap(run, cap, fill)
            jobs = [(label, [*base, str(run), str(run)])]
            if label == "per-step lists":
                plot = str(Path(directory) / "curves.png")
                jobs.append((f"{label}, --plot", [*base, str(run), str(run), "--plot", plot]))
            for name, command in jobs:
                seconds, rss = measured(command)
                print(
                    f"  {name:<28} {seconds:6.2f} s ({seconds / COMPARE_TARGET_S:.2f} of target)"
                    f"  {rss:7.0f} MB ({rss / COMPARE_TARGET_RSS_MB:.2f} of target)"
                )


def script_rows(kind: str, room: int, max_rows: int) -> str:
    """ROWS items, as dlm-gen writes them, of at most `room` bytes together and at most
    `max_rows` rows (a rendered script never holds more): long texts are written in
    parenthesized pieces, as dlm_gen.literals writes them."""
    piece = f'            "{"a long prose row " * 4}"\n'
    if kind == "one prose row":
        head = '    {\n        "kind": "text",\n        "adapter": None,\n        "line": 1,\n'
        head += '        "text": (\n'
        end = "        ),\n    },\n"
        return head + piece * ((room - len(head) - len(end)) // len(piece)) + end
    if kind == "tiny rows":
        row = '    {{\n        "kind": "text",\n        "adapter": None,\n        "line": {0},\n'
        row += '        "text": "t{0}",\n    }},\n'
        return "".join(row.format(index) for index in range(max_rows))
    head = '    {{\n        "kind": "instruction",\n        "adapter": None,\n'
    head += '        "line": {0},\n        "question": "question {0} about the corpus?",\n'
    head += '        "answer": (\n'
    end = "        ),\n    },\n"
    pieces = max(1, (room // max_rows - len(head) - len(end)) // len(piece))
    return "".join(head.format(index) + piece * pieces + end for index in range(max_rows))


def diff_check(caps: dict[str, int], size: int) -> None:
    """`diff` of a rendered script padded to `size` bytes (default: max_script_bytes),
    against itself."""
    cap = min(size, caps["max_script_bytes"])
    print(
        f"diff:     a script of {cap / 2**20:g} MiB on both sides "
        f"(max_script_bytes: {caps['max_script_bytes'] / 2**20:g} MiB), "
        f"targets {DIFF_TARGET_S:g} s and {DIFF_TARGET_RSS_MB:g} MB peak RSS"
    )
    example = Path(__file__).resolve().parent.parent / "examples" / "galore-smollm2.dlm"
    with tempfile.TemporaryDirectory() as directory:
        render = [sys.executable, "-m", "dlm_gen", "render", str(example), "--target", "cpu"]
        done = subprocess.run(
            [*render, "--out", directory], check=True, capture_output=True, text=True
        )
        head, opening, tail = Path(done.stdout.strip()).read_text().partition("ROWS = [\n")
        for kind in ("instruction rows", "tiny rows", "one prose row"):
            script = Path(directory) / f"train_{kind.replace(' ', '_')}.py"
            room = cap - len(head) - len(opening) - len(tail)
            script.write_text(head + opening + script_rows(kind, room, caps["max_rows"]) + tail)
            seconds, rss = measured(
                [sys.executable, "-m", "dlm_gen", "diff", str(script), str(script)]
            )
            print(
                f"  {kind:<28} {seconds:6.2f} s ({seconds / DIFF_TARGET_S:.2f} of target)"
                f"  {rss:7.0f} MB ({rss / DIFF_TARGET_RSS_MB:.2f} of target)"
            )


if __name__ == "__main__":
    main()

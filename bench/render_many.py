"""How long rendering a repository of documents takes: one process for all, or one each.

Writes --documents small documents (each a few instruction pairs with its own
LoRA rank and learning rate), then times `dlm-gen render a.dlm b.dlm … --out
DIR` in one process, `dlm-gen check` over the same files, and --separate
single-document `dlm-gen render` processes, scaled to the same count. Prints
seconds and the ratio (the goal: 1,000 documents in <= 10 s).

    python bench/render_many.py [--documents 1000] [--separate 20]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from runs import DLM_GEN


def write_documents(directory: Path, count: int) -> list[Path]:
    paths = []
    for index in range(count):
        path = directory / f"doc{index:04d}.dlm"
        pairs = "".join(
            f"### Q\nQuestion {index}.{k}?\n### A\nAnswer {index}.{k}.\n\n" for k in range(4)
        )
        path.write_text(
            f"---\nbase_model: smollm2-135m\ntraining:\n  lora_r: {4 + index % 29}\n"
            f"  learning_rate: {1e-4 * (1 + index % 7):.1e}\n---\n"
            f"Prose of document {index}.\n\n::instruction::\n{pairs}"
        )
        paths.append(path)
    return paths


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True, cwd=cwd)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--separate", type=int, default=20)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dlm-gen-bench-render-"))
    names = [path.name for path in write_documents(workdir, args.documents)]
    together = timed([*DLM_GEN, "render", *names, "--out", "generated"], workdir)
    written = len(list((workdir / "generated").glob("train_*.py")))
    checked = timed([*DLM_GEN, "check", *names, "--out", "generated"], workdir)
    separate = sum(
        timed([*DLM_GEN, "render", name, "--out", "single"], workdir)
        for name in names[: args.separate]
    )
    per_document = separate / min(args.separate, len(names))
    scaled = per_document * args.documents
    print(f"{args.documents} documents, {written} scripts written")
    print(f"render, one process: {together:.2f} s (goal <= 10 s for 1,000)")
    print(f"check, one process:  {checked:.2f} s")
    print(
        f"render, one process each: {per_document:.3f} s per document, {scaled:.0f} s for "
        f"{args.documents} (from {args.separate}); ratio one-process / separate "
        f"{together / scaled:.3f}"
    )


if __name__ == "__main__":
    main()

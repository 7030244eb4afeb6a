"""What every benchmark does: write a document, explain and render it, run the script.

The benchmarks call dlm-gen and the generated scripts as a user would, in
subprocesses, so that imports and start-up are measured too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from real_model import build_real_model  # noqa: E402, F401  (re-exported for the benchmarks)
from tiny_model import build_tiny_model  # noqa: E402, F401

DLM_GEN = [sys.executable, "-m", "dlm_gen"]

# Instruction pairs of mixed length, as real documents have them: answers from one
# sentence to 23, most of them short (the packing benchmarks).
_TOPICS = ["the rule tables", "a DoRA adapter", "GaLore", "the launch line", "packing"]
MIXED_PAIRS = [
    (
        f"Question {i}: what should I know about {_TOPICS[i % 5]}?",
        " ".join(
            f"Point {j} about {_TOPICS[i % 5]} is worth a sentence of its own."
            for j in range(1 + (i * 7) % 23)
        ),
    )
    for i in range(48)
]


def write_document(path: Path, base: Path, settings: dict, body: str) -> Path:
    lines = "\n".join(f"  {key}: {value}" for key, value in settings.items())
    path.write_text(f"---\nbase_model: {base}\ntraining:\n{lines}\n---\n{body}\n")
    return path


def explain(document: Path, target: str) -> dict:
    command = [*DLM_GEN, "explain", str(document), "--target", target, "--json"]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def render(document: Path, target: str, out: Path) -> Path:
    command = [*DLM_GEN, "render", str(document), "--target", target, "--out", str(out)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return Path(result.stdout.strip())


def run_script(script: Path, output: Path, steps: int, quiet: bool = True) -> dict:
    """Run a generated script for `steps` steps (no checkpoints); its one adapter's record."""
    command = [sys.executable, str(script), "--output-dir", str(output)]
    command += ["--max-steps", str(steps), "--save-steps", str(10 * steps)]
    subprocess.run(command, check=True, capture_output=quiet, text=True)
    [run] = json.loads((output / "run.json").read_text())["adapters"]
    return run

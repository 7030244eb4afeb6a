"""The script's flags: each checked by its type, then together, before anything heavy is
imported; a bad one is a usage error (exit 2) that names it."""

from __future__ import annotations

import argparse
import os
import re
import sys
import unicodedata
from pathlib import Path
from typing import NoReturn

from dlm_gen.runtime.base import base_model_source, base_needed
from dlm_gen.runtime.console import escaped, say, visible
from dlm_gen.runtime.files import existing_kind, json_object_problem, reason
from dlm_gen.runtime.rundir import resume_problem, run_directory_problem, trained_result_problem
from dlm_gen.runtime.script import BASE_DIR_ENV, Script

# The largest count of steps: torch's and run.json readers' int64 (a larger count
# overflows the float of the warm-up steps). No run comes near it.
MAX_STEPS_VALUE = 2**63 - 1
# Characters a path flag may not hold: controls, format characters, line separators
# and surrogates (bytes that were not UTF-8). Combining marks and other spaces stay
# allowed: decomposed (NFD) file names hold them.
PATH_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# The longest path a run writes under --output-dir, past the directory's own
# ('NAME/tmp-checkpoint-N/model-00001-of-00030.safetensors', FSDP's shard folders): the
# room its path must leave below the system's limit on a path.
RUN_PATH_ROOM = 256
# --report-to: integration names as transformers spells them (tensorboard, wandb,
# mlflow, trackio, ...), checked against the installed ones once transformers loads.
REPORT_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_REPORT_TARGETS = 16


# What the script is, for --help.
DESCRIPTION = "Fine-tune a causal LM (adapters or all weights): preflight, load, train, save."


def parse_args(script: Script) -> argparse.Namespace:
    """The flags, each checked by its type, then together (flags_problem): a bad value
    exits 2 naming its flag before torch or a model is loaded."""
    parser = argparse.ArgumentParser(prog=visible(script.name), description=DESCRIPTION)
    parser.add_argument(
        "--output-dir",
        type=output_directory,
        default=Path("runs") / f"train_{script.hash}",
        help="where the adapter, checkpoints and run.json go: a new or empty directory, or "
        "a previous run's (default: %(default)s)",
    )
    parser.add_argument(
        "--max-steps",
        type=step_count,
        default=None,
        help="stop after N optimizer steps (smoke runs)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint in --output-dir",
    )
    parser.add_argument(
        "--base-path",
        type=model_directory,
        default=None,
        help="load the base model from this local directory (a copy of its files, e.g. "
        "an offline snapshot) instead of where the plan names it",
    )
    parser.add_argument(
        "--base-dir",
        type=existing_directory,
        default=None,
        help="directory a local base model's relative path starts from "
        f"(default: ${BASE_DIR_ENV}, else the document's directory as seen from this script)",
    )
    parser.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep the checkpoints after training (to extend the run later with --resume)",
    )
    parser.add_argument(
        "--prompt",
        type=prompt_text,
        default=None,
        help="answer PROMPT with the adapter(s) trained into --output-dir, then exit",
    )
    parser.add_argument(
        "--save-steps",
        type=step_count,
        default=None,
        help="checkpoint every N steps (default: plan)",
    )
    parser.add_argument(
        "--report-to",
        type=report_targets,
        default=[],
        metavar="NAME[,NAME]",
        help="also log the metrics to these tracking integrations of transformers "
        "(tensorboard, wandb, mlflow, trackio, ...; default: none)",
    )
    args = parser.parse_args()
    problem = flags_problem(script, args)
    if problem:
        parser.error(problem)
    return args


def usage_error(script: Script, message: str) -> NoReturn:
    """A flag found wrong after parsing (what only a loaded library can tell): argparse's
    form and exit status 2."""
    say(f"{script.name}: error: {message}", file=sys.stderr)
    sys.exit(2)


def step_count(text: str) -> int:
    """--max-steps, --save-steps: a whole number of steps, at least 1 (0 trained one step
    at LR 0, a negative count a whole run). ASCII digits only: int() also reads ' 3',
    '1_000' and other scripts' digits."""
    digits = text.lstrip("0")
    if not re.fullmatch(r"[0-9]+", text) or not digits:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of steps, 1 or more, got '{visible(text)}'"
        )
    if len(digits) > len(str(MAX_STEPS_VALUE)) or int(digits) > MAX_STEPS_VALUE:
        raise argparse.ArgumentTypeError(
            f"{visible(text)} steps: more than {MAX_STEPS_VALUE}, the most torch counts"
        )
    return int(digits)


def report_targets(text: str) -> list[str]:
    """--report-to: 'none', or integration names separated by commas, each once."""
    if text == "none":
        return []
    names = text.split(",")
    if len(names) > MAX_REPORT_TARGETS or not all(REPORT_NAME.fullmatch(n) for n in names):
        raise argparse.ArgumentTypeError(
            f"expected 'none' or integration names separated by commas (such as "
            f"tensorboard,wandb), got '{visible(text[:80])}'"
        )
    if len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"'{visible(text)}' names an integration twice")
    return names


def flag_path(text: str) -> Path:
    """A path flag's value, ~ expanded. Refused: nothing, an option's look (in
    `--output-dir=--resume` a value was forgotten) and characters that a reader cannot
    see or that were not UTF-8 (the console and the run card show the path)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got nothing")
    if text.startswith("-"):
        raise argparse.ArgumentTypeError(
            f"expected a path, got '{visible(text)}', which looks like an option "
            "(write ./NAME for a name that starts with '-')"
        )
    if any(unicodedata.category(char) in PATH_REFUSED_CATEGORIES for char in text):
        raise argparse.ArgumentTypeError(
            f"the path '{visible(text)}' holds a control, format or non-UTF-8 character"
        )
    try:
        return Path(text).expanduser()
    except RuntimeError:  # ~user of no known user
        raise argparse.ArgumentTypeError(f"no home directory for '{visible(text)}'") from None


def output_directory(text: str) -> Path:
    """--output-dir: a directory, or a path one can be made at: nothing on the way is a
    file, a FIFO or a device, the nearest existing directory is writable (else mkdir
    fails after the model has loaded), and what a run writes under it stays within the
    system's limit on a path (else saving a checkpoint fails after training)."""
    path = flag_path(text)
    for step in (path, *path.parents):
        kind = existing_kind(step)
        if kind is None:
            continue
        if kind != "directory":
            raise argparse.ArgumentTypeError(f"'{visible(str(step))}' is a {kind}, not a directory")
        if not os.access(step, os.W_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"cannot write in '{visible(str(step))}'")
        break
    try:
        length = len(os.fsencode(os.path.abspath(path)))
        limit = os.pathconf(step, "PC_PATH_MAX")
    except (OSError, ValueError) as error:  # no working directory; no limit to ask for
        if isinstance(error, OSError) and not os.path.isabs(path):
            raise argparse.ArgumentTypeError(
                f"'{visible(text)}' is relative to a working directory that cannot be read "
                f"({reason(error)})"
            ) from None
        length, limit = len(os.fsencode(str(path))), 4096
    if length + RUN_PATH_ROOM >= limit:
        raise argparse.ArgumentTypeError(
            f"'{visible(text)}' is too long: a run writes paths up to {RUN_PATH_ROOM} "
            f"bytes longer under it, past the system's limit of {limit}"
        )
    return path


def existing_directory(text: str) -> Path:
    """--base-dir: a directory that exists."""
    path = flag_path(text)
    kind = existing_kind(path)
    if kind is None:
        raise argparse.ArgumentTypeError(f"no directory '{visible(text)}'")
    if kind != "directory":
        raise argparse.ArgumentTypeError(f"'{visible(text)}' is a {kind}, not a directory")
    return path


def model_directory(text: str) -> Path:
    """--base-path: a directory with a model's config.json (a JSON object)."""
    path = existing_directory(text)
    problem = json_object_problem(path / "config.json")
    if problem:
        raise argparse.ArgumentTypeError(f"'{visible(text)}' {problem} (not a model directory)")
    return path


def prompt_text(text: str) -> str:
    """--prompt: something to answer. Line breaks and tabs may shape it; no other
    control character (an escape sequence is no question), no bytes that are not UTF-8."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a question, got nothing to answer")
    for char in text:
        if char not in "\n\t" and unicodedata.category(char) in ("Cc", "Cs"):
            raise argparse.ArgumentTypeError(
                f"the prompt holds {escaped(char)}, a control character or a byte that is not UTF-8"
            )
    return text


def flags_problem(script: Script, args: argparse.Namespace) -> str | None:
    """What the flags say together: where the run is written, what --resume resumes,
    what --prompt answers with and where --base-dir finds the base."""
    if args.prompt is not None:
        problem = trained_result_problem(args.output_dir, script.adapters)
    else:
        problem = run_directory_problem(args.output_dir, script.adapters)
        if problem is None and args.resume:
            problem = resume_problem(args.output_dir, script.adapters)
    if problem is None and args.base_dir is not None and base_needed(script, args):
        base = base_model_source(script, args)
        if base.chosen_by == "--base-dir":  # else --base-dir plays no part: main reports it
            problem = base.problem
    return problem

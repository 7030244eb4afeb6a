"""Where the base model's weights are: the Hub id the plan names, or a local directory.

A local base is recorded as the document wrote it, relative to the document;
the document's directory is recorded relative to the script. --base-path names
a local copy outright (a machine without Hub access); --base-dir (or
$DLM_GEN_BASE_DIR) replaces the document's directory, for a script copied away
from its document. Everything is checked before anything heavy loads.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from dlm_gen.runtime.console import fail
from dlm_gen.runtime.files import model_problem, reason
from dlm_gen.runtime.script import BASE_DIR_ENV, Script


@dataclass(frozen=True)
class BaseSource:
    """Where the base loads from, what is wrong with it (None: nothing), and which flag
    or variable chose its directory (None: the plan did)."""

    location: str  # a Hub id, or a local directory resolved from any working directory
    problem: str | None
    chosen_by: str | None


def base_needed(script: Script, args: argparse.Namespace) -> bool:
    """Whether this run loads the base: training does; --prompt with adapters does."""
    return args.prompt is None or any(adapter["plan"]["peft"] for adapter in script.adapters)


def find_base_model(script: Script, args: argparse.Namespace) -> str:
    """Where the base loads from; a run that needs it stops (exit 1) when it is not
    there (--base-dir's problem was reported with the flags)."""
    base = base_model_source(script, args)
    if base.problem and base_needed(script, args):
        fail(base.problem)
    return base.location


def base_model_source(script: Script, args: argparse.Namespace) -> BaseSource:
    """The base's location and what is wrong with it: a directory that cannot be
    resolved (a loop of links, a path past the system's limit) or holds no model (a
    config.json that is a JSON object) is a problem."""
    model = script.base_model
    if args.base_path is not None:  # model_directory checked it
        try:
            return BaseSource(str(args.base_path.resolve()), None, "--base-path")
        except (OSError, RuntimeError) as error:
            shown = f"'{args.base_path}' cannot be resolved ({reason(error)})"
            return BaseSource(str(args.base_path), f"argument --base-path: {shown}", "--base-path")
    if model["source"] != "local":
        return BaseSource(model["path"], None, None)
    written = model["path"]
    value = os.environ.get(BASE_DIR_ENV)
    document = "the directory of the document that names it"
    if args.base_dir is not None:
        start, chosen_by = args.base_dir, "--base-dir"
        blame, advice = "argument --base-dir: ", f"name {document}"
    elif value:
        start, chosen_by = Path(value), BASE_DIR_ENV
        blame = f"the environment says {BASE_DIR_ENV}={value}, but the "
        advice = f"set {BASE_DIR_ENV} to {document}, or unset it"
    else:
        start, chosen_by = script.path.resolve().parent / model["document_dir"], None
        blame = ""
        advice = f"pass --base-dir DIR (or set ${BASE_DIR_ENV}) to {document}"
    try:
        path = Path(written).expanduser()
    except RuntimeError:  # ~user of no user known here
        path = Path(written)
    if path.is_absolute():
        start, chosen_by, blame = None, None, ""
        advice = "pass --base-path DIR to load the base from a copy of it"
    try:
        directory = (start / path if start else path).resolve()
    except (OSError, RuntimeError) as error:
        where = f"{start}/{written}" if start else written
        problem = f"{blame}base model directory '{where}' cannot be resolved ({reason(error)})"
        return BaseSource(where, f"{problem}; {advice}", chosen_by)
    problem = model_problem(directory)
    if problem is None:
        return BaseSource(str(directory), None, chosen_by)
    relative = f" ('{written}' relative to '{start}')" if start else ""
    problem = f"{blame}base model directory '{directory}'{relative} {problem}"
    return BaseSource(str(directory), f"{problem}; {advice}", chosen_by)

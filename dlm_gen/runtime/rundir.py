"""The run directory (--output-dir): whose it is, what --resume and --prompt find in it,
and the checkpoints a finished run removes.

A run writes through nothing that was there before it: the directory must be
new, empty, or hold only what a run of this script writes, each entry of the
kind the run makes there (lstat: never a link, a FIFO or a file with other
names).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
from pathlib import Path

from dlm_gen.runtime.console import fail, say, visible
from dlm_gen.runtime.files import existing_kind, json_object_problem, kind_of, reason
from dlm_gen.runtime.script import adapter_dir, saved_dir

# What a run writes into --output-dir: its record and run card, regular files replaced
# whole (each written under a temporary name first, which a crash may leave)...
RUN_FILES = re.compile(r"run\.json|README\.md|\.(run\.json|README\.md)\.[0-9a-f]+\.tmp")
# ...and, in each adapter's directory (--output-dir itself, or NAME/ for a named adapter),
# directories the libraries write their files into. A directory holding only these (and
# the named adapters' directories holding only the second kind) is a run's.
ADAPTER_ENTRIES = re.compile(r"adapter|model|preference|runs|(tmp-)?checkpoint-[0-9]{1,19}")
CHECKPOINT = re.compile(r"checkpoint-[0-9]{1,19}")
# The most entries the --output-dir check looks at, all levels together (a run writes a
# few dozen): a directory with more is no run's.
MAX_RUN_ENTRIES = 100_000
# A checkpoint's trainer_state.json keeps the whole log history (some 150 bytes a
# logged step): its bound is far larger than a config's.
MAX_TRAINER_STATE_BYTES = 64 * 1_048_576
# Weights the Trainer resumes from: one of these in the last checkpoint-N.
CHECKPOINT_WEIGHTS = re.compile(
    r"(adapter_model|model|pytorch_model)\.(safetensors|bin)(\.index\.json)?|pytorch_model_fsdp.*"
)


def run_directory_problem(path: Path, adapters: list[dict]) -> str | None:
    """--output-dir must be a run's: new, empty, or holding only what a run writes, each
    entry what the run makes there (lstat: a regular file or a directory, never a link),
    and nothing but directories and regular files of one name inside the directories the
    libraries write into (regular files only in adapter/ and model/); never the
    filesystem root or the home directory (the run card is a README.md)."""
    shown = f"argument --output-dir: '{visible(str(path))}'"
    try:
        where = path.resolve()
        home = Path(os.path.expanduser("~"))
        is_home = home.is_absolute() and where == home.resolve()
    except (OSError, RuntimeError) as error:
        return f"{shown} cannot be resolved ({reason(error)})"
    if where == Path(where.anchor):
        return f"{shown} is the filesystem root; name a directory for this run"
    if is_home:
        return f"{shown} is the home directory itself; name a directory for this run"
    if existing_kind(path) != "directory":
        return None
    names = {adapter["name"] for adapter in adapters if adapter["name"]}
    only_named = all(adapter["name"] for adapter in adapters)
    pending, seen, found = [(path, "", "run")], 0, set()
    while pending:
        directory, prefix, layout = pending.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    seen += 1
                    if seen > MAX_RUN_ENTRIES:
                        return f"{shown} holds more than {MAX_RUN_ENTRIES} entries: it is no run's"
                    if layout == "run":
                        found.add(entry.name)
                    want = run_entry(entry.name, layout, names, only_named)
                    name = visible(prefix + entry.name)
                    if want is None:
                        return (
                            f"{shown} holds '{name}', which no run of this script writes: name "
                            "a new or empty directory, or a previous run's"
                        )
                    info = entry.stat(follow_symlinks=False)
                    problem = run_entry_problem(kind_of(info.st_mode), want, info.st_nlink)
                    if problem:
                        return f"{shown} holds '{name}', {problem}"
                    if want != "file" and stat.S_ISDIR(info.st_mode):
                        inside = "saved" if want == "any" else want
                        if entry.name in ("adapter", "model") and want == "saved":
                            inside = "flat"  # save_pretrained's files, side by side
                        pending.append((Path(entry.path), prefix + entry.name + "/", inside))
        except OSError as error:
            inside = f": '{visible(prefix[:-1])}' in it" if prefix else ""
            return f"{shown}{inside} cannot be listed ({reason(error)})"
    if "README.md" in found and "run.json" not in found:
        return f"{shown} holds a README.md but no run.json: it is not a run's; name another"
    return None


def run_entry(name: str, layout: str, adapter_names: set[str], only_named: bool) -> str | None:
    """What a run of this script makes at `name` in a directory of `layout`: 'file' (the
    record, the run card, a saved adapter's or model's files), 'adapter' (a named
    adapter's directory), 'saved' (a directory the libraries write into), 'any' (inside
    a checkpoint: the Trainer's directories and files); None for nothing."""
    if layout == "flat":
        return "file"
    if layout == "saved":
        return "any"
    if layout == "run":
        if RUN_FILES.fullmatch(name):
            return "file"
        if name in adapter_names:
            return "adapter"
        if only_named:
            return None  # named adapters write into their own directories only
    if name == "README.md":  # TRL's model card, in the Trainer's output directory
        return "file"
    return "saved" if ADAPTER_ENTRIES.fullmatch(name) else None


def run_entry_problem(kind: str, want: str, links: int) -> str | None:
    """What is wrong with an entry of `kind` (lstat's) where a run makes `want`, in words
    that follow its name; None where nothing is."""
    if want == "any":  # inside what the libraries write: their directories and files
        needed = kind if kind in ("directory", "file") else "directory or a file"
    else:
        needed = "file" if want == "file" else "directory"
    if kind == "symbolic link":
        problem = "a symbolic link: a run never writes through one"
    elif kind != needed:
        problem = f"a {kind} where a run writes a {needed}"
    elif kind == "file" and links > 1:
        problem = f"a file with {links} names (hard links): a run may rewrite it in place"
    else:
        problem = None
    return f"{problem}; remove it, or name another directory" if problem else None


def resume_problem(path: Path, adapters: list[dict]) -> str | None:
    """--resume needs, in every adapter's directory, a last checkpoint the Trainer can
    resume from: its trainer_state.json (a JSON object) and weights (a finished run
    removes the checkpoints unless --keep-checkpoints)."""
    for adapter in adapters:
        directory = adapter_dir(path, adapter)
        checkpoint = last_checkpoint(directory)
        if checkpoint is None:
            return (
                f"argument --resume: no checkpoint-N in '{visible(str(directory))}' to resume "
                "from (a finished run keeps them only with --keep-checkpoints)"
            )
        problem = json_object_problem(checkpoint / "trainer_state.json", MAX_TRAINER_STATE_BYTES)
        if problem is None and not has_weights(checkpoint):
            problem = "holds no weights to resume from"
        if problem:
            return (
                f"argument --resume: the last checkpoint, '{visible(str(checkpoint))}', "
                f"{problem}: remove it to resume from an earlier one"
            )
    return None


def last_checkpoint(directory: Path) -> Path | None:
    """The checkpoint-N the Trainer resumes from in `directory` (the largest N), if any."""
    try:
        with os.scandir(directory) as entries:
            steps = [
                int(e.name.partition("-")[2])
                for e in entries
                if CHECKPOINT.fullmatch(e.name) and e.is_dir(follow_symlinks=False)
            ]
    except OSError:  # no such directory, or not one
        return None
    return directory / f"checkpoint-{max(steps)}" if steps else None


def has_weights(checkpoint: Path) -> bool:
    """Whether `checkpoint` holds weights the Trainer loads when it resumes."""
    try:
        with os.scandir(checkpoint) as entries:
            return any(CHECKPOINT_WEIGHTS.fullmatch(e.name) for e in entries)
    except OSError:
        return False


def trained_result_problem(path: Path, adapters: list[dict]) -> str | None:
    """--prompt answers with what a run saved in --output-dir: each adapter (or model)
    directory with its JSON-object config, as the libraries load it."""
    for adapter in adapters:
        peft = adapter["plan"]["peft"]
        saved = saved_dir(path, adapter)
        if existing_kind(saved) != "directory":
            return (
                f"argument --prompt: no trained {saved.name} in "
                f"'{visible(str(saved.parent))}': train first (with the same --output-dir)"
            )
        problem = json_object_problem(saved / ("adapter_config.json" if peft else "config.json"))
        if problem:
            return (
                f"argument --prompt: '{visible(str(saved))}' {problem}: it is no trained "
                f"{saved.name}; train again (with the same --output-dir)"
            )
    return None


def make_run_directory(path: Path) -> None:
    """--output-dir, made where it is not yet (its parents checked with the flags)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        fail(f"cannot make {path}: {reason(error)}")


def remove_checkpoints(output_dir: Path) -> None:
    """runtime-defaults: checkpoints serve --resume while training; once the result is
    saved, they are only copies of it with optimizer state (1.2 GB for a 135M full run).
    Only directories named checkpoint-N are removed, never through a link (rmtree does
    not follow the links inside); one that cannot be removed is reported, not fatal."""
    try:
        with os.scandir(output_dir) as entries:
            checkpoints = [
                Path(entry.path)
                for entry in entries
                if CHECKPOINT.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
            ]
    except OSError as error:
        say(f"checkpoints in {output_dir} not removed: {reason(error)}", file=sys.stderr)
        return
    for checkpoint in checkpoints:
        try:
            shutil.rmtree(checkpoint)
        except OSError as error:
            say(f"checkpoint {checkpoint} not removed: {reason(error)}", file=sys.stderr)

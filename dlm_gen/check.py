"""`dlm-gen check`: is the committed script exactly what the document renders today?

For repositories that commit their generated scripts: a script is *missing*
(never rendered), *stale* (an older script from the same document and target
is there: the document, the rules or dlm-gen changed since), *for another
target* (the document's script was rendered with another --target), or
*hand-edited* (the file for today's hash exists but its bytes differ).
A script's document is the path recorded in its header, relative to the
script, so two documents with the same file name never stand for each other.
"""

from __future__ import annotations

from pathlib import Path

from dlm_gen.errors import Problem
from dlm_gen.files import InputFileError, read_bounded
from dlm_gen.limits import limits
from dlm_gen.pipeline import document_failure, plan_document
from dlm_gen.render import Rendered
from dlm_gen.scripts import parse_header, scripts_of


def check_document(
    file: str, out: Path, target: str | None, processes: int | None = None, sbatch: bool = False
) -> list[Problem]:
    """The script's problems; with `sbatch`, also its SLURM batch file's (one that is
    there is always compared: a hand-edited batch file is as wrong as a script)."""
    try:
        planned = plan_document(file, target, processes, out_dir=out)
        rendered = planned.render(out)
        problems = _compare_with_disk(file, out, rendered, planned.plans[0].target)
        return problems or _compare_sbatch(file, out, rendered, planned.plans[0].target, sbatch)
    except Exception as exc:  # reported for this document; the others are still checked
        return document_failure(file, exc)


def _compare_sbatch(
    file: str, out: Path, rendered: Rendered, target_name: str, required: bool
) -> list[Problem]:
    path = out / rendered.sbatch_name
    hint = f"run `dlm-gen render {file} --target {target_name} --sbatch`"
    if not path.exists():
        return [Problem(str(path), None, None, f"missing: {hint}")] if required else []
    return _compare_file(path, rendered.sbatch, file, hint)


def _compare_file(path: Path, expected: str, file: str, hint: str) -> list[Problem]:
    """An existing file against the text `file` renders today: none, or the one problem."""
    try:
        on_disk = read_bounded(path, limits()["max_script_bytes"])
    except InputFileError as exc:
        return [Problem(str(path), None, None, f"cannot be checked: {exc}")]
    if on_disk == expected.encode("utf-8"):
        return []
    return [
        Problem(str(path), None, None, f"hand-edited: differs from what {file} renders; {hint}")
    ]


def _compare_with_disk(file: str, out: Path, rendered: Rendered, target_name: str) -> list[Problem]:
    path = out / rendered.name
    render_hint = f"run `dlm-gen render {file} --target {target_name}`"
    if path.exists():
        edits = " (edits belong in the document or the rule tables)"
        return _compare_file(path, rendered.text, file, render_hint + edits)
    header = parse_header(rendered.text, path)
    older = scripts_of(out, header.document) if header else []
    target = header.target if header else target_name
    same_target = [h for h in older if h.target == target]
    if same_target:
        names = ", ".join(h.path.name for h in same_target)
        message = (
            f"stale: {names} was rendered from an older {file} (or older training.sources "
            f"files, rules, templates or dlm-gen); today it renders {rendered.name}: "
            f"{render_hint}"
        )
    elif older:
        described = "; ".join(f"{h.path.name} for {h.target}" for h in older)
        names = sorted({str(h.target).split(" ")[0] for h in older})
        message = (
            f"target differs: {file} was rendered as {described}, and this check is for "
            f"{target}; check with --target {' or '.join(names)} (and its --processes), "
            f"or {render_hint}"
        )
    else:
        message = f"missing: {file} renders {rendered.name}; {render_hint}"
    return [Problem(str(path), None, None, message)]

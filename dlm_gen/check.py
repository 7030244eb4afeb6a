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

from dlm_gen import __version__
from dlm_gen.errors import Problem
from dlm_gen.files import InputFileError, read_bounded
from dlm_gen.limits import limits
from dlm_gen.pipeline import document_failure, plan_document
from dlm_gen.render import Rendered
from dlm_gen.runtime_text import END_LINE, runtime_marker, runtime_text
from dlm_gen.scripts import ScriptHeader, parse_header, scripts_of


def _older_runtime(headers: list[ScriptHeader]) -> str:
    """', with another runtime (...)' when an older script carries a runtime other than the
    installed package's: the render would change the code below its marker too."""
    installed = runtime_text().sha256
    for header in headers:
        try:
            text = read_bounded(header.path, limits()["max_script_bytes"]).decode("utf-8")
        except (InputFileError, UnicodeDecodeError):
            continue
        marker = runtime_marker(text)
        if marker is None:
            return ", with no runtime marker (a script from before dlm-gen's runtime package)"
        if marker[1] != installed:
            return (
                f", with dlm-gen {marker[0]}'s runtime (sha256 {marker[1][:12]}; installed: "
                f"{__version__}, {installed[:12]})"
            )
    return ""


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


def _compare_file(
    path: Path, expected: str, file: str, hint: str, locate: bool = False
) -> list[Problem]:
    """An existing file against the text `file` renders today: none, or the one problem
    (with `locate`, the line of the first edit and the part of the script it is in)."""
    try:
        on_disk = read_bounded(path, limits()["max_script_bytes"])
    except InputFileError as exc:
        return [Problem(str(path), None, None, f"cannot be checked: {exc}")]
    if on_disk == expected.encode("utf-8"):
        return []
    line, where = None, ""
    if locate:
        line, where = first_edit(expected, on_disk.decode("utf-8", "replace"))
        where = f" {where}"
    message = f"hand-edited{where}: differs from what {file} renders; {hint}"
    return [Problem(str(path), line, None, message)]


def first_edit(expected: str, on_disk: str) -> tuple[int, str]:
    """The first line where a script differs from its render, and the part it is in: the
    runtime (named by its module: a change belongs in the package), main, or the plan,
    data and header (a change belongs in the document or the rule tables)."""
    wanted, found = expected.split("\n"), on_disk.split("\n")
    number = next(
        (i for i, (a, b) in enumerate(zip(wanted, found, strict=False)) if a != b),
        min(len(wanted), len(found)),
    )
    runtime = runtime_text()
    part = "in the plan, the header or the data (edits belong in the document or the rule tables)"
    marker = wanted.index(runtime.marker) if runtime.marker in wanted else None
    end = wanted.index(END_LINE) if END_LINE in wanted else None
    main = next((i for i, text in enumerate(wanted) if text.startswith("def main(")), None)
    if marker is not None and end is not None and marker < number < end:
        module = runtime.module_at(number - marker - 3)
        part = (
            f"inside the runtime ({module}, dlm-gen {__version__}'s, sha256 "
            f"{runtime.sha256[:12]}): the runtime belongs to the package, not the script"
        )
    elif main is not None and marker is not None and main <= number < marker:
        part = f"in main() (dlm_gen/runtime/main.py, dlm-gen {__version__}'s)"
    return number + 1, f"at line {number + 1}, {part}"


def _compare_with_disk(file: str, out: Path, rendered: Rendered, target_name: str) -> list[Problem]:
    path = out / rendered.name
    render_hint = f"run `dlm-gen render {file} --target {target_name}`"
    if path.exists():
        return _compare_file(path, rendered.text, file, render_hint, locate=True)
    header = parse_header(rendered.text, path)
    older = scripts_of(out, header.document) if header else []
    target = header.target if header else target_name
    same_target = [h for h in older if h.target == target]
    if same_target:
        names = ", ".join(h.path.name for h in same_target)
        message = (
            f"stale: {names} was rendered from an older {file} (or older training.sources "
            f"files, rules, templates or dlm-gen){_older_runtime(same_target)}; today it "
            f"renders {rendered.name}: {render_hint}"
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

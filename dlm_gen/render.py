"""Render plans into `train_<hash>.py`, reproducibly, safely and atomically.

The script's content is a function of: the canonical plans (decisions and
settings per adapter), the training rows, the base model's facts, the target
profile, the rule tables' version, the template's bytes and dlm-gen's
version. Their canonical JSON is hashed; the hash names the file and is
printed in it. Same inputs, byte-identical file, on any machine, from any
working directory. Every document value reaches the source through the
`py` filter (`dlm_gen.literals`) or, in header comments, the `comment` filter.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from dlm_gen import __version__
from dlm_gen.document import Document
from dlm_gen.errors import DlmError
from dlm_gen.launch import launch_command, sbatch_name, sbatch_text
from dlm_gen.limits import limits
from dlm_gen.literals import (
    INDENT,
    LINE_LENGTH,
    assignment,
    commented_dict,
    escaped_size,
    python_literal,
    visible,
)
from dlm_gen.plan import Plan, describe_system_prompt, requirements_of
from dlm_gen.resources import data_dir
from dlm_gen.rules import RuleSet
from dlm_gen.runtime.rows import embedded_rows_digest
from dlm_gen.runtime_text import END_LINE, runtime_text

TEMPLATE = "train.py.j2"
HASH_LENGTH = 12


@dataclass(frozen=True)
class Rendered:
    name: str  # train_<hash>.py
    script_hash: str
    text: str
    sbatch: str  # the SLURM batch file train_<hash>.sbatch, written on request

    @property
    def sbatch_name(self) -> str:
        return sbatch_name(self.name)


def render_plans(
    document: Document, plans: list[Plan], rules: RuleSet, out_dir: str | Path = "generated"
) -> Rendered:
    """The script for these plans (none of them refused), to be written into `out_dir`.

    Paths in the script are relative to the script's own directory (`out_dir`):
    the document it came from and, for a local base, the document's directory
    that the base's path is relative to. A checkout moved or copied elsewhere
    renders the same bytes, and no absolute path of this machine is embedded.
    """
    template_text = (data_dir("templates") / TEMPLATE).read_text(encoding="utf-8")
    context = _context(document, plans, rules, Path(out_dir))
    cap = limits()["max_script_bytes"]
    least = sum(
        escaped_size(v) for row in context["rows"] for v in row.values() if isinstance(v, str)
    )
    if least > cap:  # refused before the script (and its hash's JSON) is built in memory
        raise _too_large(document, f"at least {least}", cap)
    runtime = runtime_text()
    inputs = {
        "dlm_gen": __version__,
        "template": hashlib.sha256(template_text.encode("utf-8")).hexdigest(),
        "runtime": runtime.sha256,
        "rules": rules.version,
        **context,
    }
    script_hash = inputs_hash(inputs)
    name = f"train_{script_hash}.py"
    launch = launch_command(plans[0].fields, script_hash)  # dist-*: the same for every adapter
    text = _compiled(template_text).render(
        **context,
        version=__version__,
        script_hash=script_hash,
        script_name=name,
        launch=launch,
        runtime=runtime,
        runtime_end=END_LINE,
    )
    size = len(text.encode("utf-8"))
    if size > cap:
        raise _too_large(document, str(size), cap)
    sbatch = sbatch_text(
        plans[0].fields,
        script_hash,
        name,
        str(context["document_name"]),
        int(context["target"]["gpu_count"]) if context["target"]["backend"] == "cuda" else 0,
    )
    return Rendered(name, script_hash, text, sbatch)


def _too_large(document: Document, size: str, cap: int) -> DlmError:
    return DlmError.one(
        document.path,
        None,
        None,
        f"the rendered script would be {size} bytes; the limit is {cap} "
        "(rules/limits.yaml max_script_bytes): split the corpus into several documents",
    )


def inputs_hash(inputs: dict[str, object]) -> str:
    """The script's hash: of its inputs' canonical JSON, as UTF-8.

    File names are what the OS gives: bytes that are not UTF-8 arrive as lone
    surrogates (surrogateescape), and YAML escapes can write any surrogate.
    'surrogatepass' encodes each as its own three bytes, so the hash is defined for
    every input, still tells every two names (two byte strings) apart, and is
    unchanged for every input that is valid Unicode."""
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LENGTH]


def relative_to(path: Path, start: Path) -> str:
    """`path` relative to the directory `start`, with '/' separators."""
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _context(
    document: Document, plans: list[Plan], rules: RuleSet, out_dir: Path
) -> dict[str, object]:
    base = plans[0].base
    document_path = Path(document.path)
    # distributed.yaml decides how the script is launched (the same for every adapter).
    fields = plans[0].fields
    processes, nodes = fields["processes"], fields["nodes"]
    target = {"name": plans[0].target, **plans[0].target_profile}
    rows = list(plans[0].script_rows)  # the document's, built once when it was planned
    warnings = _warnings(plans)
    reasons = [
        {
            "label": f"Reason [{p.adapter_name}]" if p.adapter_name else "Reason",
            "reason": p.reason(),
        }
        for p in plans
    ]
    source_lines = [{"label": "Source", "text": report.describe()} for report in document.sources]
    row_counts = [
        {
            "label": f"Rows [{p.adapter_name}]" if p.adapter_name else "Rows",
            "text": p.rows.describe() if p.rows else "undecided",
        }
        for p in plans
    ]
    return {
        "document_name": relative_to(document_path, out_dir),
        "target_name": target["name"],
        "target_description": (target["gpu"] or "host CPU")
        + (f", {nodes} nodes x {_processes(fields['processes_per_node'])}" if nodes > 1 else "")
        + (f", {_processes(processes)}" if nodes == 1 and processes > 1 else ""),
        "target": target,
        "base_model": {
            "key": base.key,
            "source": base.source,
            "path": base.path or base.hub_id,
            # A local base's path is relative to the document's directory; this is
            # that directory relative to the script's.
            "document_dir": (
                relative_to(document_path.parent, out_dir) if base.source == "local" else None
            ),
            "revision": base.revision,
            "architecture": base.architecture,
            "params": base.params,
        },
        "system_prompt": document.frontmatter.system_prompt,
        "export": document.frontmatter.export.model_dump(),
        "sources": [report.to_json() for report in document.sources],
        "source_lines": source_lines,
        "requirements": list(requirements_of(plans)),
        "warnings": warnings,
        "plans": reasons,
        "system_prompt_line": describe_system_prompt(plans[0].system_prompt),
        "row_counts": row_counts,
        "base_description": _base_description(base),
        "launch_flags": LAUNCH_FLAGS,
        "header_width": header_width(
            [*reasons, *warnings, *row_counts, *source_lines, {"label": "System turn"}]
        ),
        "adapters": [
            {
                "name": plan.adapter_name,
                "reason": plan.reason(),
                "plan": dict(plan.fields),
                "decided_by": {d.field: d.rule for d in plan.decisions},
            }
            for plan in plans
        ],
        "plan_source": plan_source(plans),
        "data": data_manifest(rows, document),
        "rows": rows,
    }


def _processes(count: object) -> str:
    return f"{count} process" if count == 1 else f"{count} processes"


# Every flag the script takes, for the header's launch line.
LAUNCH_FLAGS = (
    "[--output-dir DIR] [--max-steps N] [--resume] [--save-steps N] [--keep-checkpoints] "
    "[--base-path DIR] [--base-dir DIR] [--prompt TEXT] [--report-to NAME[,NAME]]"
)
HEADER_LABEL_WIDTH = 16  # "# Warning:      ": the values of the header start in one column


def _base_description(base) -> str:
    relative = base.source == "local" and not base.path.startswith(("/", "~"))
    where = " (relative to the document)" if relative else ""
    revision = base.revision or "default branch (no pinned revision)"
    shapes = f"; size from the {base.config_from}" if base.config_from else ""
    return f"{base.path or base.hub_id}{where} @ {revision}{shapes}"


def _warnings(plans: list[Plan]) -> list[dict[str, str]]:
    """Each warning once, labelled with the adapters it concerns (when there are several)."""
    seen: dict[str, list[str]] = {}
    for plan in plans:
        for warning in plan.warnings:
            text = f"{warning.token}: {' '.join(warning.message.split())}"
            names = seen.setdefault(text, [])
            if plan.adapter_name:
                names.append(plan.adapter_name)
    return [
        {
            "label": f"Warning [{', '.join(names)}]" if names and len(plans) > 1 else "Warning",
            "text": text,
        }
        for text, names in seen.items()
    ]


def header_width(entries: list[dict[str, str]]) -> int:
    """The column where header values start: past the longest label."""
    return max([HEADER_LABEL_WIDTH, *(len(f"# {entry['label']}: ") for entry in entries)])


def header_field(label: str, text: object, width: int) -> str:
    """`# Label:  value`, wrapped to the line length, continuation lines aligned."""
    first = f"# {visible(label)}:".ljust(width)
    wrapped = textwrap.wrap(
        visible(str(text)),
        width=LINE_LENGTH - width,
        break_on_hyphens=False,
        break_long_words=True,
    )
    lines = wrapped or [""]
    return "\n".join(
        (first if i == 0 else "#".ljust(width)) + line for i, line in enumerate(lines)
    ).rstrip()


def plan_source(plans: list[Plan]) -> str:
    """`PLAN = {...}` and `ADAPTERS = [...]`: the decisions every adapter shares (the same
    value by the same rule), then per adapter its name, reason line and own decisions,
    each field on its line commented with the rule that decided it (what `explain`
    names). One adapter's plan is all PLAN; a second one repeats only what differs."""
    decided = [{d.field: d.rule for d in plan.decisions} for plan in plans]
    first = plans[0].fields
    shared = {
        key: value
        for key, value in first.items()
        if all(
            key in plan.fields
            and _same(plan.fields[key], value)
            and rules.get(key) == decided[0].get(key)
            for plan, rules in zip(plans, decided, strict=True)
        )
    }
    entries = []
    inner = INDENT * 2
    for plan, rules in zip(plans, decided, strict=True):
        own = {key: value for key, value in plan.fields.items() if key not in shared}
        reason = python_literal(plan.reason(), 2, used=len('"reason": ,'))
        entries.append(
            f"{INDENT}{{\n"
            f'{inner}"name": {python_literal(plan.adapter_name)},\n'
            f'{inner}"reason": {reason},\n'
            f'{inner}"plan": {commented_dict(own, rules, 2)},\n'
            f"{INDENT}}},\n"
        )
    return (
        f"PLAN = {commented_dict(shared, decided[0], 0)}\nADAPTERS = [\n" + "".join(entries) + "]"
    )


def _same(first: object, second: object) -> bool:
    """Equal as the script's literals would be (True is not 1 there)."""
    return json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def data_manifest(rows: list[dict[str, object]], document: Document) -> dict[str, object]:
    """DATA: what the run trains on, by kind, and the digest of the embedded rows (the
    script checks it before training)."""
    kinds = ("text", "instruction", "preference")
    return {
        "rows": {kind: sum(1 for row in rows if row["kind"] == kind) for kind in kinds},
        "rows_sha256": embedded_rows_digest(rows),
        "source_files": sum(len(report.files) for report in document.sources),
    }


@functools.lru_cache(maxsize=4)
def _compiled(template_text: str):
    """The template compiled once per process (a render of many documents reuses it)."""
    return _environment().from_string(template_text)


def _environment():
    import jinja2  # only rendering needs it

    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["py"] = python_literal
    environment.filters["assign"] = assignment
    environment.filters["header"] = header_field
    environment.filters["comment"] = comment_text
    return environment


def comment_text(value: object) -> str:
    """Text safe inside a `#` comment: line breaks and every hidden character escaped."""
    return visible(str(value))


def write_atomically(directory: Path, rendered: Rendered, *, sbatch: bool = False) -> Path:
    """Write the script (and, asked for, its SLURM batch file) so that a reader never
    sees half of either; returns the script's path.

    Both or neither: a batch file whose script could not be written would submit a
    script that is not there, so it is removed again (unless it was there before)."""
    script = directory / rendered.name
    if not sbatch:
        return write_file_atomically(script, rendered.text)
    batch = directory / rendered.sbatch_name
    existed = os.path.lexists(batch)
    write_file_atomically(batch, rendered.sbatch)
    try:
        return write_file_atomically(script, rendered.text)
    except OSError:
        if not existed:
            with contextlib.suppress(OSError):  # the script's error is the one to report
                batch.unlink(missing_ok=True)
        raise


def write_file_atomically(path: Path, text: str) -> Path:
    """Temp file in the same directory, fsync, then rename.

    The temporary file is not executable until its bytes are on disk; an error
    names the destination, not the temporary file.
    """
    temporary: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".train_", suffix=".tmp")
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), 0o755)
        os.replace(temporary, path)
        temporary = None
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
    return path

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

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dlm_gen import __version__
from dlm_gen.datatables import limits
from dlm_gen.document import Document, InstructionRow, PreferenceRow, TextRow
from dlm_gen.errors import DlmError
from dlm_gen.literals import python_literal, visible
from dlm_gen.plan import Plan, requirements_of
from dlm_gen.resources import data_dir
from dlm_gen.rules import RuleSet

TEMPLATE = "train.py.j2"
HASH_LENGTH = 12


@dataclass(frozen=True)
class Rendered:
    name: str  # train_<hash>.py
    script_hash: str
    text: str


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
    inputs = {
        "dlm_gen": __version__,
        "template": hashlib.sha256(template_text.encode("utf-8")).hexdigest(),
        "rules": rules.version,
        **context,
    }
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    script_hash = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:HASH_LENGTH]
    name = f"train_{script_hash}.py"
    text = (
        _environment()
        .from_string(template_text)
        .render(**context, version=__version__, script_hash=script_hash, script_name=name)
    )
    size, cap = len(text.encode("utf-8")), limits()["max_script_bytes"]
    if size > cap:
        raise DlmError.one(
            document.path,
            None,
            None,
            f"the rendered script would be {size} bytes; the limit is {cap} "
            "(rules/limits.yaml max_script_bytes): split the corpus into several documents",
        )
    return Rendered(name, script_hash, text)


def relative_to(path: Path, start: Path) -> str:
    """`path` relative to the directory `start`, with '/' separators."""
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _context(
    document: Document, plans: list[Plan], rules: RuleSet, out_dir: Path
) -> dict[str, object]:
    base = plans[0].base
    document_path = Path(document.path)
    processes = plans[0].fields["processes"]
    target = {"name": plans[0].target, **plans[0].target_profile, "processes": processes}
    rows, preference_rows = [], 0
    for row in document.rows:
        if isinstance(row, TextRow):
            rows.append(
                {"kind": "text", "adapter": row.adapter, "line": row.line, "text": row.text}
            )
        elif isinstance(row, InstructionRow):
            rows.append(
                {
                    "kind": "instruction",
                    "adapter": row.adapter,
                    "line": row.line,
                    "question": row.question,
                    "answer": row.answer,
                }
            )
        elif isinstance(row, PreferenceRow):
            preference_rows += 1
    return {
        "document_name": relative_to(document_path, out_dir),
        "target_name": target["name"],
        "target_description": (target["gpu"] or "host CPU")
        + (f", {processes} processes" if processes > 1 else ""),
        "launch": "python" if processes == 1 else f"torchrun --nproc_per_node {processes}",
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
            "decoder_layer": base.decoder_layer,
        },
        "system_prompt": document.frontmatter.system_prompt,
        "requirements": list(requirements_of(plans)),
        "warnings": [
            f"{warning.token}: {' '.join(warning.message.split())}"
            for plan in plans
            for warning in plan.warnings
        ],
        "plans": [{"name": p.adapter_name, "reason": p.reason()} for p in plans],
        "adapters": [
            {
                "name": plan.adapter_name,
                "reason": plan.reason(),
                "plan": dict(plan.fields),
                "settings": dict(plan.settings),
                "decided_by": {d.field: d.rule for d in plan.decisions},
            }
            for plan in plans
        ],
        "rows": rows,
        "preference_rows": preference_rows,
    }


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
    environment.filters["comment"] = comment_text
    return environment


def comment_text(value: object) -> str:
    """Text safe inside a `#` comment: line breaks and every hidden character escaped."""
    return visible(str(value))


def write_atomically(directory: Path, rendered: Rendered) -> Path:
    """Temp file in the same directory, fsync, then rename: a reader never sees half a script.

    The temporary file is not executable until its bytes are on disk; an error
    names the destination, not the temporary file.
    """
    path = directory / rendered.name
    temporary: str | None = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".train_", suffix=".tmp")
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(rendered.text.encode("utf-8"))
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

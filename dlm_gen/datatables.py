"""The two data tables read before the rule set: the vocabulary and the limits.

The frontmatter models take their enums from `rules/vocabulary.yaml`, and the
document reader its caps from `rules/limits.yaml`, so both are read when a
document is parsed, before the rule tables load. They are checked here, with
the file and line of anything wrong, so that an edited table (for example under
DLM_GEN_RULES) gives a RulesError, never a traceback at import.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from dlm_gen import yamlsrc
from dlm_gen.errors import DlmError, RulesError
from dlm_gen.files import read_table
from dlm_gen.resources import data_dir

VOCABULARY_FIELDS = (
    "adapter",
    "optimizer",
    "lr_scheduler",
    "precision",
    "attention",
    "galore_proj_type",
)
LIMIT_FIELDS = (
    "max_document_bytes",
    "max_rows",
    "max_adapters",
    "max_script_bytes",
    "max_config_bytes",
    "max_run_json_bytes",
)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def vocabulary() -> dict[str, tuple[str, ...]]:
    """The values each enumerated training field accepts (non-empty, unique names)."""
    return _vocabulary(str(data_dir("rules")))


def limits() -> dict[str, int]:
    """The documented caps on one document and its script (positive integers)."""
    return _limits(str(data_dir("rules")))


def _load(directory: str, name: str, kind: str) -> tuple[dict, yamlsrc.SourcedYaml, str]:
    label = f"rules/{name}"
    text = read_table(Path(directory) / name)
    try:
        document = yamlsrc.load(text, label)
    except DlmError as exc:
        problems = "\n".join(f"  {p}" for p in exc.problems)
        raise RulesError(f"broken rule tables:\n{problems}") from None
    value = document.value
    if not isinstance(value, dict) or value.get("kind") != kind:
        raise RulesError(f"{label}: expected a mapping with kind: {kind}")
    return value, document, label


@functools.lru_cache(maxsize=4)
def _vocabulary(directory: str) -> dict[str, tuple[str, ...]]:
    value, document, label = _load(directory, "vocabulary.yaml", "vocabulary")
    fields = value.get("fields")
    if not isinstance(fields, dict):
        raise RulesError(f"{label}:{document.line_of(('fields',))}: fields: expected a mapping")
    result = {}
    for name in VOCABULARY_FIELDS:
        names = fields.get(name)
        line = document.line_of(("fields", name))
        if (
            not isinstance(names, list)
            or not names
            or not all(isinstance(n, str) and _NAME.match(n) for n in names)
            or len(set(names)) != len(names)
        ):
            raise RulesError(
                f"{label}:{line}: fields.{name}: expected a non-empty list of distinct "
                "lower-case names"
            )
        result[name] = tuple(names)
    return result


@functools.lru_cache(maxsize=4)
def _limits(directory: str) -> dict[str, int]:
    value, document, label = _load(directory, "limits.yaml", "limits")
    caps = value.get("limits")
    if not isinstance(caps, dict):
        raise RulesError(f"{label}:{document.line_of(('limits',))}: limits: expected a mapping")
    result = {}
    for name in LIMIT_FIELDS:
        cap = caps.get(name)
        if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= 2**40:
            line = document.line_of(("limits", name))
            raise RulesError(
                f"{label}:{line}: limits.{name}: expected a positive integer, got {cap!r}"
            )
        result[name] = cap
    return result

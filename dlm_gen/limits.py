"""The caps of rules/limits.yaml, read before anything they bound.

The document reader, the script writer, `compare` and `diff` take their size
caps from `rules/limits.yaml` before they read a byte of what the caps guard,
so this table is read on its own, not through the rule set. It is checked
here, with the file and line of anything wrong, so that an edited table (for
example under DLM_GEN_RULES) gives a RulesError, never a traceback.
"""

from __future__ import annotations

import functools
from pathlib import Path

from dlm_gen import yamlsrc
from dlm_gen.errors import DlmError, RulesError
from dlm_gen.files import read_table
from dlm_gen.resources import data_dir

LIMIT_FIELDS = (
    "max_document_bytes",
    "max_source_files_walked",
    "max_glob_chars",
    "max_globs_per_source",
    "max_glob_work",
    "max_rows",
    "max_adapters",
    "max_script_bytes",
    "max_script_literal_tokens",
    "max_config_bytes",
    "max_run_json_bytes",
    "max_run_json_containers",
    "max_plot_points",
    "max_nodes",
    "max_processes_per_node",
    "max_tokenizer_config_bytes",
    "max_tokenizer_config_containers",
    "max_base_billion_parameters",
    "max_base_layers",
    "max_safetensors_header_bytes",
    "max_safetensors_tensors",
    "max_safetensors_containers",
    "chat_template_cpu_seconds",
    "chat_template_memory_mb",
    "chat_template_wall_seconds",
    "git_wall_seconds",
)


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

"""The values of one plan's facts: a document's settings and corpus, and a target's.

`dlm_gen.facts` names the facts and their domains (what the rule tables may
test); this gathers what they are for one adapter of one document on one
target, for the engine.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from dlm_gen.document import Document, InstructionRow, PreferenceRow, TextRow
from dlm_gen.facts import block_model


def target_facts(
    name: str, profile: Mapping[str, object], processes: int | None = None
) -> dict[str, object]:
    """The profile's facts. `processes` (training processes per node) defaults to its GPU
    count; `target.processes` is the world size, over every node."""
    facts = {"target.name": name, **{f"target.{key}": value for key, value in profile.items()}}
    per_node = processes or max(1, int(profile["gpu_count"]))
    facts["target.nodes"] = nodes = int(profile.get("nodes") or 1)
    facts["target.processes_per_node"] = per_node
    facts["target.processes"] = per_node * nodes
    return facts


def document_facts(document: Document, adapter: str | None) -> dict[str, object]:
    """The training settings of one adapter, and the rows it trains on."""
    settings = document.training.for_adapter(adapter)
    rows = [row for row in document.rows if row.adapter in (None, adapter)]
    facts: dict[str, object] = {f"training.{key}": value for key, value in settings.items()}
    for name, field in type(document.training).model_fields.items():
        value = document.training.block_for(name, adapter)
        facts.update(_block_facts(f"training.{name}", field.annotation, value))
    facts.update(
        {
            "corpus.text_rows": sum(isinstance(r, TextRow) for r in rows),
            "corpus.instruction_rows": sum(isinstance(r, InstructionRow) for r in rows),
            "corpus.preference_rows": sum(isinstance(r, PreferenceRow) for r in rows),
            "corpus.sft_rows": sum(isinstance(r, (TextRow, InstructionRow)) for r in rows),
            "adapter.name": adapter,
            "adapter.count": len(document.training.adapters or {}) or 1,
        }
    )
    return facts


def _block_facts(prefix: str, annotation: object, value: object) -> dict[str, object]:
    """One fact per field of a nested block; null fields when the block is not written."""
    model = block_model(annotation)
    if model is None:
        return {}
    facts: dict[str, object] = {}
    for name, field in model.model_fields.items():
        inner = getattr(value, name) if value is not None else None
        facts[f"{prefix}.{name}"] = inner.model_dump() if isinstance(inner, BaseModel) else inner
        facts.update(_block_facts(f"{prefix}.{name}", field.annotation, inner))
    return facts

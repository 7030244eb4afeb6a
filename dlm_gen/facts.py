"""The facts a rule can test: the document, the base model, the target, the corpus.

Facts are flat, dotted names (`training.optimizer`, `base.params`,
`target.compute_capability`, `plan.precision`). This module names every fact
a rule may read (so a typo in a table fails when it loads) and gives, where
it is finite, the set of values a fact can take (so overlap checks are exact).
The hardware enters from the side: the document knows nothing of GPUs.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping

from pydantic import BaseModel

from dlm_gen.document import Document, InstructionRow, PreferenceRow, TextRow
from dlm_gen.schema import TrainingConfig

Domain = tuple[object, ...] | None

BASE_FACTS: dict[str, Domain] = {
    "base.key": None,
    "base.source": ("registry", "hub", "local"),
    "base.hub_id": None,
    "base.revision": None,
    "base.model_type": None,
    "base.architecture": None,
    "base.params": None,
    "base.target_modules": None,
    "base.max_position_embeddings": None,
    "base.decoder_layer": None,
    "base.shape": None,
    "base.chat_system_default": None,
    "base.config_from": None,
    "base.chat_template_problem": None,
}
TARGET_FACTS: dict[str, Domain] = {
    "target.name": None,
    "target.backend": ("cpu", "cuda"),
    "target.gpu": None,
    "target.compute_capability": None,
    "target.memory_gb": None,
    "target.bf16": (True, False),
    "target.flash_attn": (True, False),
    "target.gpu_count": None,
    "target.nodes": None,
    "target.processes_per_node": None,
    "target.processes": None,
}
CORPUS_FACTS: dict[str, Domain] = {
    "corpus.text_rows": None,
    "corpus.instruction_rows": None,
    "corpus.preference_rows": None,
    "corpus.sft_rows": None,
    "adapter.name": None,
    "adapter.count": None,
}


def _domain_of(annotation: object) -> Domain:
    """Finite values of a Literal (optionally | None) annotation, else None."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    values: list[object] = []
    for arg in typing.get_args(annotation) or (annotation,):
        if typing.get_origin(arg) is typing.Literal:
            values.extend(typing.get_args(arg))
        elif arg is type(None):
            values.append(None)
        else:
            return None
    return tuple(values) if values else None


def training_facts(training: type[TrainingConfig]) -> dict[str, Domain]:
    """The `training.*` facts of a rule set's training model (its vocabulary's enums);
    a block of the format (`training.gate`, ...) adds one fact per field inside it."""
    domains: dict[str, Domain] = {}
    for name, field in training.model_fields.items():
        if name != "adapters":
            domains[f"training.{name}"] = _domain_of(field.annotation)
            domains.update(_block_domains(f"training.{name}", field.annotation))
    return domains


def _block_model(annotation: object) -> type[BaseModel] | None:
    """The model of a nested block (`GateConfig | None` -> GateConfig), else None."""
    for arg in typing.get_args(annotation) or (annotation,):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _block_domains(prefix: str, annotation: object) -> dict[str, Domain]:
    model = _block_model(annotation)
    if model is None:
        return {}
    optional = type(None) in typing.get_args(annotation)
    domains: dict[str, Domain] = {}
    for name, field in model.model_fields.items():
        domain = _domain_of(field.annotation)
        if domain is not None and optional and None not in domain:
            domain = (*domain, None)  # an unwritten block leaves its fields null
        domains[f"{prefix}.{name}"] = domain
        domains.update(_block_domains(f"{prefix}.{name}", field.annotation))
    return domains


def _block_facts(prefix: str, annotation: object, value: object) -> dict[str, object]:
    """One fact per field of a nested block; null fields when the block is not written."""
    model = _block_model(annotation)
    if model is None:
        return {}
    facts: dict[str, object] = {}
    for name, field in model.model_fields.items():
        inner = getattr(value, name) if value is not None else None
        facts[f"{prefix}.{name}"] = inner.model_dump() if isinstance(inner, BaseModel) else inner
        facts.update(_block_facts(f"{prefix}.{name}", field.annotation, inner))
    return facts


def input_fact_domains(training: type[TrainingConfig]) -> dict[str, Domain]:
    """Every document, base, target and corpus fact, with its finite domain where it has one."""
    return {**training_facts(training), **BASE_FACTS, **TARGET_FACTS, **CORPUS_FACTS}


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

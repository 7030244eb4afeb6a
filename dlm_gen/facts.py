"""The facts a rule can test: the document, the base model, the target, the corpus.

Facts are flat, dotted names (`training.optimizer`, `base.params`,
`target.compute_capability`, `plan.precision`). This module names every fact
a rule may read (so a typo in a table fails when it loads) and gives, where
it is finite, the set of values a fact can take (so overlap checks are exact).
It knows the document's schema, never a document: the values of one plan's
facts are gathered in `dlm_gen.gather`. The hardware enters from the side:
the document knows nothing of GPUs.
"""

from __future__ import annotations

import typing

from pydantic import BaseModel

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
    "base.shape_from": None,
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


def block_model(annotation: object) -> type[BaseModel] | None:
    """The model of a nested block (`GateConfig | None` -> GateConfig), else None."""
    for arg in typing.get_args(annotation) or (annotation,):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _block_domains(prefix: str, annotation: object) -> dict[str, Domain]:
    model = block_model(annotation)
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


def input_fact_domains(training: type[TrainingConfig]) -> dict[str, Domain]:
    """Every document, base, target and corpus fact, with its finite domain where it has one."""
    return {**training_facts(training), **BASE_FACTS, **TARGET_FACTS, **CORPUS_FACTS}

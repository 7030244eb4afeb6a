"""From a document and a target to plans: one per adapter, explained.

`make_plans` gathers the facts (document settings, corpus counts, base model,
target profile), runs the engine and wraps the outcome in a `Plan`, the one
object the explainer and the renderer read. The reason line's token order is
the product contract: precision, attn, qlora, adapter (`reason_adapter`, set
by the adapter table when the adapter is not plain LoRA),
optim, then one warn= per warning.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from dlm_gen import basemodels, engine, facts
from dlm_gen.datatables import limits
from dlm_gen.document import Document
from dlm_gen.errors import DlmError, Problem
from dlm_gen.rules import Requirement, RuleSet

# Keys explain --json always has in "plan"; a refused plan may leave them null.
CONTRACT_PLAN_KEYS = ("adapter", "use_dora", "qlora", "precision", "attn", "optim")


@dataclass(frozen=True)
class Plan:
    """Everything decided for one adapter of one document on one target."""

    document: str
    adapter_name: str | None
    target: str
    target_profile: dict[str, object]
    base: basemodels.BaseModel
    settings: dict[str, object]  # the document's effective training settings
    fields: dict[str, object]  # the decided plan fields
    decisions: tuple[engine.Decision, ...]
    warnings: tuple[engine.Finding, ...]
    refusals: tuple[engine.Finding, ...]
    requirements: tuple[str, ...]
    requirement_specs: tuple[Requirement, ...] = ()
    memory: dict[str, object] | None = None  # the memory.* facts of the estimate
    fired: tuple[str, ...] = ()  # every rule that fired, requirement-only rows included

    @property
    def refused(self) -> bool:
        return bool(self.refusals)

    def reason(self) -> str:
        """The reason line without its `reason: ` prefix."""
        get = self.fields.get
        tokens = [
            f"precision={engine.show(get('precision'))}",
            f"attn={engine.show(get('attn'))}",
            f"qlora={'on' if get('qlora') else 'off'}",
        ]
        if get("reason_adapter"):  # adapter.yaml: none for plain LoRA
            tokens.append(f"adapter={engine.show(get('reason_adapter'))}")
        tokens.append(f"optim={engine.show(get('optim'))}")
        tokens += [f"warn={w.token}" for w in self.warnings]
        return ", ".join(tokens)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "reason": self.reason(),
            "plan": {**dict.fromkeys(CONTRACT_PLAN_KEYS), **self.fields},
            "warnings": [_finding_json(w) for w in self.warnings],
            "refusals": [_finding_json(r) for r in self.refusals],
            "requirements": list(self.requirements),
            "decisions": [
                {"field": d.field, "value": d.value, "rule": d.rule, "source": d.source}
                for d in self.decisions
            ],
            "settings": dict(self.settings),
            "base_model": {k.removeprefix("base."): v for k, v in self.base.facts().items()},
            "target": self.target,
            "memory": {k.removeprefix("memory."): v for k, v in (self.memory or {}).items()},
        }
        if self.adapter_name is not None:
            data = {"name": self.adapter_name, **data}
        return data


def _finding_json(finding: engine.Finding) -> dict[str, object]:
    data: dict[str, object] = {"id": finding.id, "message": finding.message}
    if finding.token is not None:
        data["token"] = finding.token
    if finding.field is not None:
        data["field"] = finding.field
    data["source"] = finding.source
    return data


HOST_TARGET = "host"


def resolve_target(rules: RuleSet, name: str | None) -> tuple[str, dict[str, object]]:
    """The target's name and profile, or an error with the known names.

    `host` is this machine as `dlm-gen doctor` sees it (imports torch; a plan
    for it is not reproducible on another machine).
    """
    name = name or rules.default_target
    if name in rules.targets:
        return name, rules.targets[name]
    if name == HOST_TARGET:
        from dlm_gen.doctor import detect_host

        return HOST_TARGET, detect_host()
    close = difflib.get_close_matches(name, list(rules.targets), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise DlmError.one(
        "--target",
        None,
        None,
        f"unknown target '{name}'{hint} (known: {', '.join(sorted(rules.targets))}, host)",
    )


def resolve_base(document: Document, rules: RuleSet) -> basemodels.BaseModel:
    """Registry key, `hf:org/name`, or a local directory written as a path.

    A registry key always means the registry's model; a local directory must
    be written as a path (`./tiny`, `../models/tiny`, `~/models/tiny`, or an
    absolute path), so a directory that happens to share a key's name never
    changes which model trains. A relative path is relative to the document
    and stays relative (normalized) in the plan and the script.
    """
    key = document.frontmatter.base_model
    families = rules.architectures
    line = document.line_of("base_model")

    def fail(message: str) -> DlmError:
        return DlmError.one(document.path, line, "base_model", message)

    if key in rules.base_models:
        return basemodels.from_registry(key, rules.base_models[key], families)
    if key.startswith(basemodels.HUB_PREFIX):
        hub_id = key.removeprefix(basemodels.HUB_PREFIX)
        for entry in rules.base_models.values():
            if entry["hub_id"] == hub_id:
                return basemodels.from_registry(key, entry, families)
        problem = basemodels.hub_id_problem(hub_id)
        if problem:
            raise fail(f"expected hf:org/name with a Hub repository id, got '{key}': {problem}")
        return basemodels.from_hub_id(key, hub_id)
    if not basemodels.is_written_as_path(key):
        close = difflib.get_close_matches(key, list(rules.base_models), n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        local = Path(document.path).parent / key
        if local.is_dir():
            hint += f"(a local directory is written as a path: ./{key}) "
        raise fail(
            f"unknown base model '{key}': {hint}expected a registry key "
            f"({', '.join(sorted(rules.base_models))}), hf:org/name, or the path of a "
            "directory with a config.json (./name, ../name, ~/name or /abs/name)"
        )
    written = basemodels.normalized_path(key)
    try:
        directory = Path(document.path).parent / Path(written).expanduser()
    except RuntimeError:  # "~someone" with no such user
        raise fail(f"cannot expand '{key}': no such user") from None
    if not directory.is_dir():
        raise fail(f"no directory '{written}' (relative to the document)")
    if not (directory / "config.json").exists():
        raise fail(f"directory '{written}' has no config.json")
    try:
        return basemodels.from_directory(written, directory, families, limits()["max_config_bytes"])
    except basemodels.BaseModelError as exc:
        label = f"{written}/{exc.file.relative_to(directory)}"
        field = f"{exc.field}: " if exc.field else ""
        raise fail(f"{label}: {field}{exc.message}") from None


def make_plans(
    document: Document, rules: RuleSet, target: str | None = None, processes: int | None = None
) -> list[Plan]:
    """One plan per adapter (a single-adapter document has one, unnamed).

    `processes` overrides the target's GPU count as the number of training
    processes (e.g. two CPU processes under torchrun).
    """
    target_name, profile = resolve_target(rules, target)
    base = resolve_base(document, rules)
    common = {**base.facts(), **facts.target_facts(target_name, profile, processes)}
    plans = []
    for adapter in document.adapter_names:
        known = {**common, **facts.document_facts(document, adapter)}
        outcome = engine.evaluate(rules, known)
        plans.append(
            Plan(
                document=document.path,
                adapter_name=adapter,
                target=target_name,
                target_profile=dict(profile),
                base=base,
                settings=document.training.for_adapter(adapter),
                fields=outcome.fields,
                decisions=outcome.decisions,
                warnings=outcome.warnings,
                refusals=outcome.refusals,
                requirements=merge_requirements(req for req, _ in outcome.requirements),
                requirement_specs=tuple(req for req, _ in outcome.requirements),
                memory=outcome.memory,
                fired=outcome.fired,
            )
        )
    return plans


def requirements_of(plans: list[Plan]) -> tuple[str, ...]:
    """The merged requirements of several plans (a multi-adapter document)."""
    return merge_requirements(spec for plan in plans for spec in plan.requirement_specs)


def merge_requirements(requirements) -> tuple[str, ...]:
    """One PEP 508 string per package (and marker), specifiers merged, sorted by name."""
    merged: dict[tuple[str, str | None], Requirement] = {}
    for req in requirements:
        key = (req.name, req.marker)
        if key in merged:
            known = merged[key]
            req = Requirement(
                req.name,
                tuple(sorted({*known.extras, *req.extras})),
                tuple(sorted({*known.specifiers, *req.specifiers})),
                req.marker,
            )
        merged[key] = req
    return tuple(str(merged[key]) for key in sorted(merged, key=lambda k: (k[0], k[1] or "")))


def refusal_error(document: Document, plans: list[Plan]) -> DlmError | None:
    """The refusals of the plans as one error, or None when every plan can train."""
    problems = [
        Problem(
            document.path,
            document.line_of(refusal.field) if refusal.field else document.frontmatter_line,
            refusal.field,
            f"refused ({refusal.id}"
            + (f", adapter {plan.adapter_name}" if plan.adapter_name else "")
            + f"): {' '.join(refusal.message.split())}",
        )
        for plan in plans
        for refusal in plan.refusals
    ]
    return DlmError(problems) if problems else None

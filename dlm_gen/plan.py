"""From a document and a target to plans: one per adapter, explained.

`make_plans` gathers the facts (document settings, corpus counts, base model,
target profile), runs the engine and wraps the outcome in a `Plan`, the one
object the explainer and the renderer read. The reason line's token order is
the product contract: precision, attn, qlora, adapter (`reason_adapter`, set
by the adapter table when the adapter is not plain LoRA),
optim, preference (the preference phase's method, when there is one), then
one warn= per warning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dlm_gen import basemodels, engine, gather
from dlm_gen.document import Document
from dlm_gen.errors import DlmError, Problem
from dlm_gen.resolve import resolve_base, resolve_target
from dlm_gen.rules import Requirement, RuleSet
from dlm_gen.shown import plain
from dlm_gen.sources import SourceReport
from dlm_gen.split import RowCounts, row_counts, script_rows

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
    rows: RowCounts | None = None  # the split the script will make (None: undecided plan)
    system_prompt: dict[str, object] | None = None  # {"text", "source"}: what training sees
    export: dict[str, object] | None = None  # the document's export: block, kept as is
    sources: tuple[SourceReport, ...] = ()  # what training.sources read
    # The document's rows as the script embeds them (every adapter's plan holds the same).
    script_rows: tuple[dict[str, object], ...] = ()

    @property
    def refused(self) -> bool:
        return bool(self.refusals)

    def reason(self) -> str:
        """The reason line without its `reason: ` prefix."""
        get = self.fields.get
        tokens = [
            f"precision={plain(get('precision'))}",
            f"attn={plain(get('attn'))}",
            f"qlora={'on' if get('qlora') else 'off'}",
        ]
        if get("reason_adapter"):  # adapter.yaml: none for plain LoRA
            tokens.append(f"adapter={plain(get('reason_adapter'))}")
        tokens.append(f"optim={plain(get('optim'))}")
        if get("preference_method"):  # preference.yaml: none without a preference phase
            tokens.append(f"preference={plain(get('preference_method'))}")
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
            "rows": self.rows.to_json() if self.rows else None,
            "system_prompt": self.system_prompt,
            "export": self.export,
            "sources": [report.to_json() for report in self.sources],
        }
        if self.adapter_name is not None:
            data = {"name": self.adapter_name, **data}
        return data


def _located(finding: engine.Finding, document: Document) -> engine.Finding:
    """The finding with the line of its field, when the document writes that field."""
    line = document.written_line(finding.field) if finding.field else None
    return dataclasses.replace(finding, line=line) if line is not None else finding


def _finding_json(finding: engine.Finding) -> dict[str, object]:
    data: dict[str, object] = {"id": finding.id, "message": finding.message}
    if finding.token is not None:
        data["token"] = finding.token
    if finding.field is not None:
        data["field"] = finding.field
    if finding.line is not None:
        data["line"] = finding.line
    data["source"] = finding.source
    return data


def make_plans(
    document: Document, rules: RuleSet, target: str | None = None, processes: int | None = None
) -> list[Plan]:
    """One plan per adapter (a single-adapter document has one, unnamed).

    `processes` overrides the target's GPU count as the number of training
    processes (e.g. two CPU processes under torchrun).
    """
    target_name, profile = resolve_target(rules, target)
    base = resolve_base(document, rules)
    common = {**base.facts(), **gather.target_facts(target_name, profile, processes)}
    rows = tuple(script_rows(document))
    system_prompt = effective_system_prompt(document, base)
    plans = []
    for adapter in document.adapter_names:
        known = {**common, **gather.document_facts(document, adapter)}
        known.update(rules.optimizer_facts(str(known["training.optimizer"])))
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
                warnings=tuple(_located(w, document) for w in outcome.warnings),
                refusals=outcome.refusals,
                requirements=merge_requirements(req for req, _ in outcome.requirements),
                requirement_specs=tuple(req for req, _ in outcome.requirements),
                memory=outcome.memory,
                fired=outcome.fired,
                system_prompt=system_prompt,
                export=document.frontmatter.export.model_dump(),
                sources=document.sources,
                script_rows=rows,
                rows=row_counts(
                    list(rows),
                    adapter,
                    outcome.fields.get("seed"),
                    outcome.fields.get("eval_fraction"),
                    outcome.fields.get("preference_eval_fraction"),
                    preference_on=outcome.fields.get("preference_method") is not None,
                ),
            )
        )
    return plans


def effective_system_prompt(document: Document, base: basemodels.BaseModel) -> dict[str, object]:
    """The system prompt instruction rows train under: the document's, else the one the
    base's chat template injects (SmolLM2's does), else none that planning can see (the
    script records what the real tokenizer does)."""
    if document.frontmatter.system_prompt:
        return {"text": document.frontmatter.system_prompt, "source": "document"}
    if base.chat_system_default:
        return {"text": base.chat_system_default, "source": "chat template default"}
    return {"text": None, "source": "none known before the run"}


def describe_system_prompt(system_prompt: dict[str, object] | None) -> str:
    """`"text" (source)`, or the source alone when there is no text."""
    if not system_prompt or system_prompt.get("text") is None:
        return str((system_prompt or {}).get("source", "none"))
    return f"{system_prompt['text']!r} ({system_prompt['source']})"


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
                _tightest(known.specifiers + req.specifiers),
                req.marker,
            )
        merged[key] = req
    return tuple(str(merged[key]) for key in sorted(merged, key=lambda k: (k[0], k[1] or "")))


def _tightest(specifiers: tuple[str, ...]) -> tuple[str, ...]:
    """The specifiers, with only the highest of several lower bounds (`>=2.2` and `>=2.8`
    mean `>=2.8`); every other specifier is kept as written."""
    lower = [s for s in set(specifiers) if s.startswith(">=")]
    kept = {s for s in specifiers if not s.startswith(">=")}
    if lower:
        from packaging.version import InvalidVersion, Version

        try:
            kept.add(max(lower, key=lambda s: Version(s[2:])))
        except InvalidVersion:  # a wildcard or local version: keep them all
            kept.update(lower)
    return tuple(sorted(kept))


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

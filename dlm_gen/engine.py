"""Evaluate the rule tables against facts: pure, total and deterministic.

The engine knows no policy. It walks the tables in dependency order; in a
`collect` table every matching row fires, in a `first` table only the first
matching row does. A row's effects are: set plan fields (each decision keeps
the rule id and its file:line), add a warning, add a refusal, add package
requirements. Same facts in, same outcome out; no input makes it raise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dlm_gen import conditions
from dlm_gen.basemodels import format_size
from dlm_gen.memory import ESTIMATES
from dlm_gen.rules import PLACEHOLDER, FactRef, Requirement, Rule, RuleSet
from dlm_gen.shown import one_line, plain


@dataclass(frozen=True)
class Decision:
    field: str
    value: object
    rule: str
    source: str


@dataclass(frozen=True)
class Finding:
    """A warning (with its reason token) or a refusal, with the rule that raised it."""

    id: str
    message: str
    source: str
    token: str | None = None
    field: str | None = None
    line: int | None = None  # the field's line in the document, where it is written there


@dataclass(frozen=True)
class Outcome:
    fields: dict[str, object]
    decisions: tuple[Decision, ...]
    warnings: tuple[Finding, ...]
    refusals: tuple[Finding, ...]
    requirements: tuple[tuple[Requirement, str], ...]  # (requirement, rule id)
    fired: tuple[str, ...]  # ids of every rule that fired, in order
    memory: dict[str, object]  # the memory estimate's facts (empty without one)


def evaluate(rules: RuleSet, facts: Mapping[str, object]) -> Outcome:
    """Run every table over `facts`; plan fields become facts for later tables."""
    known = dict(facts)
    fields: dict[str, object] = {}
    decisions: list[Decision] = []
    warnings: list[Finding] = []
    refusals: list[Finding] = []
    requirements: list[tuple[Requirement, str]] = []
    fired: list[str] = []
    tables = {table.name: table for table in rules.tables}
    for step in rules.order or [table.name for table in rules.tables]:
        if step in ESTIMATES:  # a fact provider: memory.* facts from the plan so far
            known.update(ESTIMATES[step](known, rules.memory or {}))
            continue
        table = tables[step]
        for rule in table.rules:
            if not conditions.holds(rule.condition, known):
                continue
            fired.append(rule.id)
            for name, value in rule.sets.items():
                resolved = value.resolve(known) if isinstance(value, FactRef) else value
                fields[name] = resolved
                known[f"plan.{name}"] = resolved
                decisions.append(Decision(name, resolved, rule.id, rule.source))
            if rule.warn:
                token, message = (fill(text, known) for text in rule.warn)
                blamed = _first_document_field(rule)
                warnings.append(Finding(rule.id, message, rule.source, token=token, field=blamed))
            if rule.refuse:
                message, blamed = rule.refuse
                blamed = blamed or _first_document_field(rule)
                refusals.append(Finding(rule.id, fill(message, known), rule.source, field=blamed))
            requirements.extend((req, rule.id) for req in rule.require)
            if table.hit_policy == "first":
                break
    # A refused plan may leave fields open (nothing will be trained); otherwise
    # an undecided field is a gap in the tables, and it is reported as one.
    for name in rules.plan_fields if not refusals else ():
        if name not in fields:
            refusals.append(
                Finding(
                    "undecided-plan-field",
                    f"no rule decided plan.{name} for these facts; the rule tables have a gap",
                    "rules/",
                )
            )
    memory = {k: v for k, v in known.items() if k.startswith("memory.")}
    return Outcome(
        fields,
        tuple(decisions),
        tuple(warnings),
        tuple(refusals),
        tuple(requirements),
        tuple(fired),
        memory,
    )


def _first_document_field(rule: Rule) -> str | None:
    """The document field a finding points at: the first training.* fact it tests."""
    for test in rule.condition:
        if test.fact.startswith("training."):
            return test.fact
    return None


def fill(template: str, facts: Mapping[str, object]) -> str:
    """Put fact values into `{fact}` / `{fact|size}` placeholders (no eval, no format())."""

    def replace(match) -> str:
        value = facts.get(match.group(1))
        if match.group(2) == "size":
            return format_size(value if isinstance(value, (int, float)) else None)
        if match.group(2) == "gb":
            return f"{value:.1f} GB" if isinstance(value, (int, float)) else "unknown"
        return one_line(plain(value))  # a fact may hold input text (a path, a name)

    return PLACEHOLDER.sub(replace, template)

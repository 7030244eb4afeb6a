"""The rule tables as data: rows (`Rule`), tables, and the checked `RuleSet`.

Plain frozen dataclasses, built by `dlm_gen.rules` from the YAML tables and
read by the engine, the explainer and the renderer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from dlm_gen import conditions
from dlm_gen.schema import FrontmatterModels, frontmatter_models

# `{fact}` or `{fact|formatter}` in a message; a fact name has two or more dotted
# parts (`training.preference.loss_type`). Any other `{...}` in a message is
# refused when the tables load (rulechecks.check_rules), never printed raw.
PLACEHOLDER = re.compile(r"\{([a-z_]+(?:\.[a-z0-9_]+)+)(?:\|([a-z]+))?\}")
BRACED = re.compile(r"\{[^{}]*\}")


FORMATTERS = ("size", "gb")

# The columns of rules/optimizers.yaml that rules read as `optimizer.<column>` facts.
OPTIMIZER_FACT_COLUMNS = (
    "hf_name",
    "family",
    "layerwise",
    "eight_bit",
    "needs_cuda",
    "state_bytes",
)


@dataclass(frozen=True)
class FactRef:
    """A `set` value taken from a fact: `{fact: training.galore_rank, default: 128}`.

    `default` (when `has_default`) is the value where the fact is null: the
    document's knob, else the library's default, in one row.
    """

    fact: str
    has_default: bool = False
    default: object = None

    def resolve(self, facts: Mapping[str, object]) -> object:
        value = facts.get(self.fact)
        return self.default if value is None and self.has_default else value


@dataclass(frozen=True)
class Requirement:
    """A PEP 508 requirement, parsed once when the tables load (by `packaging`)."""

    name: str  # canonical: lower case, '-' for '_'
    extras: tuple[str, ...]
    specifiers: tuple[str, ...]
    marker: str | None

    def __str__(self) -> str:
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        marker = f"; {self.marker}" if self.marker else ""
        return f"{self.name}{extras}{','.join(self.specifiers)}{marker}"


@dataclass(frozen=True)
class Rule:
    id: str
    table: str
    source: str  # "rules/precision.yaml:12"
    condition: conditions.Condition
    sets: dict[str, object] = field(default_factory=dict)
    warn: tuple[str, str] | None = None  # (token template, message template)
    refuse: tuple[str, str | None] | None = None  # (message template, blamed field)
    require: tuple[Requirement, ...] = ()
    why: str | None = None
    evidence: str | None = None
    probe: str | None = None  # dlm_gen/probes.py re-measures the evidence

    def reads(self) -> set[str]:
        """Every fact this rule looks at: its condition, its values, its templates."""
        facts = conditions.reads(self.condition)
        facts |= {v.fact for v in self.sets.values() if isinstance(v, FactRef)}
        for text in self.templates():
            facts |= {m.group(1) for m in PLACEHOLDER.finditer(text)}
        return facts

    def templates(self) -> list[str]:
        texts = list(self.warn or ())
        if self.refuse:
            texts.append(self.refuse[0])
        return texts


@dataclass(frozen=True)
class Table:
    name: str
    file: str
    hit_policy: str  # "collect": every matching row fires, setters exclusive; "first"
    rules: tuple[Rule, ...]
    id_prefix: str = ""  # every rule id starts with `<id_prefix>-`: the id names its table

    @property
    def sets(self) -> set[str]:
        return {name for rule in self.rules for name in rule.sets}

    def plan_reads(self) -> set[str]:
        return {
            fact.removeprefix("plan.")
            for rule in self.rules
            for fact in rule.reads()
            if fact.startswith("plan.")
        }


@dataclass(frozen=True)
class RuleSet:
    """The whole policy, validated, with tables in the order they must run."""

    tables: tuple[Table, ...]
    base_models: dict[str, dict]
    architectures: dict[str, dict]
    targets: dict[str, dict]
    default_target: str
    plan_fields: tuple[str, ...]
    version: str  # content hash of every table file
    verdicts: tuple[dict, ...] = ()
    memory: dict | None = None  # coefficients of the memory estimate (rules/memory.yaml)
    order: tuple[str, ...] = ()  # tables and fact providers, in evaluation order
    # The values each enumerated training field accepts (vocabulary.yaml, optimizers.yaml).
    vocabulary: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    optimizers: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    # Registry keys of bases dlm-gen cannot train (vision, audio), with why.
    unsupported_bases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def models(self) -> FrontmatterModels:
        """The frontmatter models that accept what this rule set's vocabulary names."""
        return frontmatter_models(self.vocabulary)

    def optimizer_facts(self, optimizer: str) -> dict[str, object]:
        """The `optimizer.*` facts of one optimizer: its columns in optimizers.yaml."""
        entry = self.optimizers[optimizer]
        return {f"optimizer.{column}": entry[column] for column in OPTIMIZER_FACT_COLUMNS}

    def rule(self, rule_id: str) -> Rule:
        return next(r for t in self.tables for r in t.rules if r.id == rule_id)

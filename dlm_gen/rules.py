"""Load the rule tables in `rules/`, validate them, and prove them unambiguous.

Every file is checked against `schema/rules.schema.json`; then the loader
checks what a schema cannot: fact names exist, each plan field is owned by one
table, no two rows of a `unique` table can both set a field for the same facts,
the tables have no dependency cycle, requirements are PEP 508, message
templates name real facts. All problems are reported at once, each with its
file, line and rule id. The result is an immutable `RuleSet` whose tables are
in evaluation (dependency) order.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from dlm_gen import conditions, yamlsrc
from dlm_gen.errors import DlmError, RulesError
from dlm_gen.facts import Domain, input_fact_domains
from dlm_gen.resources import data_dir

PLACEHOLDER = re.compile(r"\{([a-z_]+\.[a-z0-9_]+)(?:\|([a-z]+))?\}")
FORMATTERS = ("size",)


@dataclass(frozen=True)
class FactRef:
    """A `set` value taken from a fact: `{fact: training.lora_r}`."""

    fact: str


@dataclass(frozen=True)
class Rule:
    id: str
    table: str
    source: str  # "rules/precision.yaml:12"
    condition: conditions.Condition
    sets: dict[str, object] = field(default_factory=dict)
    warn: tuple[str, str] | None = None  # (token template, message template)
    refuse: tuple[str, str | None] | None = None  # (message template, blamed field)
    require: tuple[str, ...] = ()
    why: str | None = None
    evidence: str | None = None

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
    hit_policy: str  # "unique": rows never overlap, all matching rows fire; "first"
    rules: tuple[Rule, ...]

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

    def rule(self, rule_id: str) -> Rule:
        return next(r for t in self.tables for r in t.rules if r.id == rule_id)


@functools.lru_cache(maxsize=4)
def load_rules(directory: Path | None = None) -> RuleSet:
    """Load and check every `*.yaml` in the rules directory (default: the shipped one)."""
    directory = Path(directory) if directory is not None else data_dir("rules")
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise RulesError(f"{directory}: no rule tables (*.yaml) found")
    problems: list[str] = []
    loaded: list[tuple[str, yamlsrc.SourcedYaml]] = []
    digest = hashlib.sha256()
    for file in files:
        label = f"rules/{file.name}"
        text = file.read_text(encoding="utf-8")
        digest.update(file.name.encode() + b"\0" + text.encode() + b"\0")
        try:
            document = yamlsrc.load(text, label)
        except DlmError as exc:
            problems.extend(str(p) for p in exc.problems)
            continue
        schema_problems = _schema_problems(label, document)
        problems.extend(schema_problems)
        if not schema_problems:
            loaded.append((label, document))
    if problems:
        raise RulesError(_report(problems))
    return _build(loaded, digest.hexdigest()[:16])


def _schema_problems(label: str, document: yamlsrc.SourcedYaml) -> list[str]:
    validator = _validator()
    problems = []
    for error in sorted(validator.iter_errors(document.value), key=lambda e: list(e.path)):
        path = tuple(error.absolute_path)
        line = document.line_of(path)
        rule_id = _rule_id_at(document.value, path)
        where = f" (rule {rule_id})" if rule_id else ""
        at = "/".join(str(p) for p in path) or "top level"
        problems.append(f"{label}:{line}: {at}{where}: {_best_message(error)}")
    return problems


def _best_message(error) -> str:
    if error.context:
        deepest = max(error.context, key=lambda e: len(e.absolute_path))
        return deepest.message
    return error.message


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema  # imported here: only loading tables needs it

    schema = json.loads((data_dir("schema") / "rules.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _rule_id_at(value: object, path: tuple) -> str | None:
    if len(path) >= 2 and path[0] == "rules" and isinstance(value, dict):
        rules = value.get("rules")
        if isinstance(rules, list) and isinstance(path[1], int) and path[1] < len(rules):
            rule = rules[path[1]]
            if isinstance(rule, dict) and isinstance(rule.get("id"), str):
                return rule["id"]
    return None


def _report(problems: list[str]) -> str:
    return "broken rule tables:\n" + "\n".join(f"  {p}" for p in problems)


def _build(loaded: list[tuple[str, yamlsrc.SourcedYaml]], version: str) -> RuleSet:
    tables: list[Table] = []
    base_models: dict[str, dict] = {}
    architectures: dict[str, dict] = {}
    targets: dict[str, dict] = {}
    default_target: str | None = None
    problems: list[str] = []
    for label, document in loaded:
        value = document.value
        kind = value["kind"]
        if kind == "rules":
            tables.append(_table(label, document))
        elif kind == "base_models":
            base_models.update(value["models"])
        elif kind == "architectures":
            architectures.update(value["model_types"])
        else:
            targets.update(value["targets"])
            default_target = value["default"]
            if default_target not in value["targets"]:
                line = document.line_of(("default",))
                problems.append(f"{label}:{line}: default target '{default_target}' is not listed")
    if default_target is None:
        problems.append("rules/: no targets table (kind: targets)")
    for key, entry in base_models.items():
        if entry["model_type"] not in architectures and "target_modules" not in entry:
            problems.append(f"base model '{key}': model_type '{entry['model_type']}' unknown")
    plan_domains = _plan_domains(tables)
    domains = {**input_fact_domains(), **{f"plan.{k}": v for k, v in plan_domains.items()}}
    problems += _check_ids(tables)
    problems += _check_rules(tables, domains)
    problems += _check_ownership(tables)
    problems += _check_overlaps(tables, domains)
    problems += [p for table in tables for p in _check_reads_within(table)]
    order, cycle_problems = _evaluation_order(tables)
    problems += cycle_problems
    if problems:
        raise RulesError(_report(problems))
    return RuleSet(
        tables=tuple(order),
        base_models=base_models,
        architectures=architectures,
        targets=targets,
        default_target=default_target or "",
        plan_fields=tuple(name for table in order for name in sorted(table.sets)),
        version=version,
    )


def _table(label: str, document: yamlsrc.SourcedYaml) -> Table:
    name = Path(label).stem
    rules = []
    for index, raw in enumerate(document.value["rules"]):
        line = document.line_of(("rules", index))
        sets = {
            key: FactRef(value["fact"]) if isinstance(value, dict) else value
            for key, value in (raw.get("set") or {}).items()
        }
        warn = raw.get("warn")
        refuse = raw.get("refuse")
        rules.append(
            Rule(
                id=raw["id"],
                table=name,
                source=f"{label}:{line}",
                condition=conditions.parse_condition(raw.get("when")),
                sets=sets,
                warn=(warn["token"], warn["message"]) if warn else None,
                refuse=(refuse["message"], refuse.get("field")) if refuse else None,
                require=tuple(raw.get("require") or ()),
                why=raw.get("why"),
                evidence=raw.get("evidence"),
            )
        )
    return Table(name, label, document.value["hit_policy"], tuple(rules))


def _plan_domains(tables: list[Table]) -> dict[str, Domain]:
    """A plan field's values are those its rules set, unless one copies a fact."""
    values: dict[str, list[object] | None] = {}
    for table in tables:
        for rule in table.rules:
            for name, value in rule.sets.items():
                known = values.setdefault(name, [])
                if known is None:
                    continue
                if isinstance(value, FactRef) or isinstance(value, list):
                    values[name] = None
                elif not any(conditions.same(value, k) for k in known):
                    known.append(value)
    return {k: (tuple(v) if v is not None else None) for k, v in values.items()}


def _check_ids(tables: list[Table]) -> list[str]:
    seen: dict[str, str] = {}
    problems = []
    for table in tables:
        for rule in table.rules:
            if rule.id in seen:
                problems.append(
                    f"{rule.source}: rule id '{rule.id}' is also used at {seen[rule.id]}"
                )
            seen.setdefault(rule.id, rule.source)
    return problems


def _check_rules(tables: list[Table], domains: dict[str, Domain]) -> list[str]:
    from packaging.requirements import InvalidRequirement, Requirement

    problems = []
    for table in tables:
        for rule in table.rules:
            for fact in sorted(rule.reads()):
                if fact not in domains:
                    close = difflib.get_close_matches(fact, list(domains), n=1)
                    hint = f"; did you mean '{close[0]}'?" if close else ""
                    problems.append(f"{rule.source}: rule {rule.id}: unknown fact '{fact}'{hint}")
            for text in rule.templates():
                for match in PLACEHOLDER.finditer(text):
                    if match.group(2) and match.group(2) not in FORMATTERS:
                        problems.append(
                            f"{rule.source}: rule {rule.id}: unknown formatter "
                            f"'|{match.group(2)}' (known: {', '.join(FORMATTERS)})"
                        )
            for requirement in rule.require:
                try:
                    Requirement(requirement)
                except InvalidRequirement as exc:
                    problems.append(
                        f"{rule.source}: rule {rule.id}: '{requirement}' is not PEP 508: {exc}"
                    )
    return problems


def _check_ownership(tables: list[Table]) -> list[str]:
    owner: dict[str, Rule] = {}
    problems = []
    for table in tables:
        for rule in table.rules:
            for name in rule.sets:
                first = owner.setdefault(name, rule)
                if first.table != table.name:
                    problems.append(
                        f"{rule.source}: rule {rule.id} sets plan.{name}, which table "
                        f"'{first.table}' owns (rule {first.id} at {first.source}); "
                        "one table decides each field"
                    )
    return problems


def _check_overlaps(tables: list[Table], domains: dict[str, Domain]) -> list[str]:
    """Two rows of a unique table that can both set one field for the same facts."""
    problems = []
    for table in tables:
        if table.hit_policy != "unique":
            continue
        setters = [rule for rule in table.rules if rule.sets]
        for i, first in enumerate(setters):
            for second in setters[i + 1 :]:
                shared = sorted(set(first.sets) & set(second.sets))
                if not shared or not conditions.can_overlap(
                    first.condition, second.condition, domains
                ):
                    continue
                name = shared[0]
                problems.append(
                    f"{second.source}: rules {first.id} ({first.source}) and {second.id} "
                    f"({second.source}) can both hold for the same facts and both set "
                    f"plan.{name} (to {_show(first.sets[name])} and "
                    f"{_show(second.sets[name])}); make their conditions exclusive or "
                    "give the table hit_policy: first"
                )
    return problems


def _check_reads_within(table: Table) -> list[str]:
    """A row may read a field of its own table only after every row that sets it."""
    problems = []
    for index, reader in enumerate(table.rules):
        for fact in sorted(reader.reads()):
            name = fact.removeprefix("plan.")
            if not fact.startswith("plan.") or name not in table.sets:
                continue
            later = [r for r in table.rules[index:] if name in r.sets]
            if table.hit_policy == "first" or later:
                setter = later[0] if later else next(r for r in table.rules if name in r.sets)
                problems.append(
                    f"{reader.source}: rule {reader.id} reads {fact}, which rule {setter.id} "
                    f"({setter.source}) of the same table sets "
                    + ("in a first-hit table" if table.hit_policy == "first" else "after it")
                    + "; move the reading rule below every rule that sets the field"
                )
    return problems


def _show(value: object) -> str:
    return f"fact {value.fact}" if isinstance(value, FactRef) else json.dumps(value)


def _evaluation_order(tables: list[Table]) -> tuple[list[Table], list[str]]:
    """Tables sorted so that each runs after the tables owning the plan fields it reads."""
    owner = {name: table for table in tables for name in table.sets}
    needs = {
        table.name: {owner[f].name for f in table.plan_reads() if f in owner} - {table.name}
        for table in tables
    }
    by_name = {table.name: table for table in tables}
    order: list[Table] = []
    done: set[str] = set()
    pending = sorted(by_name)
    while pending:
        ready = [name for name in pending if needs[name] <= done]
        if not ready:
            return order, [_cycle_message(pending, needs, by_name, owner)]
        for name in ready:
            order.append(by_name[name])
            done.add(name)
        pending = [name for name in pending if name not in done]
    return order, []


def _cycle_message(pending, needs, by_name, owner) -> str:
    """Name the rules that close the loop: 'a reads plan.x, set by b, which reads ...'."""
    start = pending[0]
    path = [start]
    while True:
        following = sorted(needs[path[-1]] & set(pending))[0]
        if following in path:
            path = path[path.index(following) :] + [following]
            break
        path.append(following)
    steps = []
    for here, there in zip(path, path[1:]):
        reader = next(
            (r, f)
            for r in by_name[here].rules
            for f in sorted(r.reads())
            if f.startswith("plan.") and owner.get(f.removeprefix("plan.")) is by_name[there]
        )
        setter = next(r for r in by_name[there].rules if reader[1].removeprefix("plan.") in r.sets)
        steps.append(
            f"rule {reader[0].id} ({reader[0].source}) reads {reader[1]}, "
            f"set by rule {setter.id} ({setter.source})"
        )
    return "dependency cycle between tables: " + "; ".join(steps)

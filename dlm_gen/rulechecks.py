"""What the loader proves about the rule tables before any plan is made.

Each check takes the built tables and returns problems (file:line, rule id,
the fix), all collected before reporting: JSON-Schema validation, unique ids,
known facts and formatters, PEP 508 requirements, one owner per plan field,
no overlapping setters in a `collect` table, rows that can fire, reads after
writes within a table, and an evaluation order without cycles.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import json

from dlm_gen import conditions, yamlsrc
from dlm_gen.facts import Domain
from dlm_gen.memory import Provider
from dlm_gen.resources import data_dir
from dlm_gen.rulemodel import (
    BRACED,
    FORMATTERS,
    PLACEHOLDER,
    FactRef,
    Requirement,
    Rule,
    Table,
)
from dlm_gen.shown import quoted


def schema_problems(label: str, document: yamlsrc.SourcedYaml) -> list[str]:
    validator = _validator_for(document.value)
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
def _validators() -> dict[str | None, object]:
    """One validator per table kind, `$ref`s inlined (twice as fast), plus the whole schema.

    The whole schema (key None) checks a table whose `kind` is missing or unknown.
    """
    import jsonschema  # imported here: only checking tables needs it

    schema = json.loads((data_dir("schema") / "rules.schema.json").read_text(encoding="utf-8"))
    definitions = schema.get("$defs", {})

    def inline(node: object, seen: tuple[str, ...]) -> object:
        if isinstance(node, dict):
            reference = node.get("$ref")
            if len(node) == 1 and isinstance(reference, str) and reference.startswith("#/$defs/"):
                name = reference.removeprefix("#/$defs/")
                if name not in seen:
                    return inline(definitions[name], (*seen, name))
            return {key: inline(value, seen) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value, seen) for value in node]
        return node

    validators: dict[str | None, object] = {None: jsonschema.Draft202012Validator(schema)}
    for branch in schema.get("allOf", []):
        kind = branch["if"]["properties"]["kind"]["const"]
        inlined = inline(branch["then"], ())
        if isinstance(inlined, dict):
            inlined = {**inlined, "$defs": definitions}  # for any reference left (recursion)
        validators[kind] = jsonschema.Draft202012Validator(inlined)
    return validators


def _validator_for(value: object):
    validators = _validators()
    kind = value.get("kind") if isinstance(value, dict) else None
    return validators.get(kind if isinstance(kind, str) else None, validators[None])


def _rule_id_at(value: object, path: tuple) -> str | None:
    if len(path) >= 2 and path[0] == "rules" and isinstance(value, dict):
        rules = value.get("rules")
        if isinstance(rules, list) and isinstance(path[1], int) and path[1] < len(rules):
            rule = rules[path[1]]
            if isinstance(rule, dict) and isinstance(rule.get("id"), str):
                return rule["id"]
    return None


def check_ids(tables: list[Table]) -> list[str]:
    """Ids are unique, and each starts with its table's `id_prefix` (one convention)."""
    seen: dict[str, str] = {}
    problems = []
    for table in tables:
        for rule in table.rules:
            if not rule.id.startswith(f"{table.id_prefix}-"):
                problems.append(
                    f"{rule.source}: rule id '{rule.id}' does not start with "
                    f"'{table.id_prefix}-', the id_prefix of {table.file}"
                )
            if rule.id in seen:
                problems.append(
                    f"{rule.source}: rule id '{rule.id}' is also used at {seen[rule.id]}"
                )
            seen.setdefault(rule.id, rule.source)
    return problems


def check_rules(tables: list[Table], domains: dict[str, Domain]) -> list[str]:
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as Pep508

    problems = []
    for table in tables:
        for rule in table.rules:
            for fact in sorted(rule.reads()):
                if fact not in domains:
                    close = difflib.get_close_matches(fact, list(domains), n=1)
                    hint = f"; did you mean '{close[0]}'?" if close else ""
                    problems.append(f"{rule.source}: rule {rule.id}: unknown fact '{fact}'{hint}")
            for text in rule.templates():
                for braced in BRACED.finditer(text):
                    if not PLACEHOLDER.fullmatch(braced.group(0)):
                        problems.append(
                            f"{rule.source}: rule {rule.id}: '{braced.group(0)}' is not a "
                            "placeholder: write {table.fact} or {table.fact|formatter}"
                        )
                for match in PLACEHOLDER.finditer(text):
                    if match.group(2) and match.group(2) not in FORMATTERS:
                        problems.append(
                            f"{rule.source}: rule {rule.id}: unknown formatter "
                            f"'|{match.group(2)}' (known: {', '.join(FORMATTERS)})"
                        )
            for requirement in rule.require:
                if isinstance(requirement, Requirement):
                    continue
                try:
                    Pep508(requirement)
                except InvalidRequirement as exc:
                    problems.append(
                        f"{rule.source}: rule {rule.id}: '{requirement}' is not PEP 508: {exc}"
                    )
    return problems


def check_ownership(tables: list[Table]) -> list[str]:
    """Each plan field is decided by the rows of one table only."""
    setters: dict[str, dict[str, Rule]] = {}
    for table in tables:
        for rule in table.rules:
            for name in rule.sets:
                setters.setdefault(name, {}).setdefault(table.name, rule)
    problems = []
    for name, by_table in sorted(setters.items()):
        if len(by_table) > 1:
            owners = ", ".join(
                f"'{table}' (rule {rule.id} at {rule.source})" for table, rule in by_table.items()
            )
            problems.append(
                f"plan.{name} is set by more than one table: {owners}; one table decides each field"
            )
    return problems


def check_overlaps(tables: list[Table], domains: dict[str, Domain]) -> list[str]:
    """Two rows of a collect table that can both set one field for the same facts."""
    problems = []
    for table in tables:
        if table.hit_policy != "collect":
            continue
        setters = [rule for rule in table.rules if rule.sets]
        conditions_of = [rule.condition for rule in setters]
        for i, j in conditions.candidate_pairs(conditions_of):
            first, second = setters[i], setters[j]
            shared = sorted(set(first.sets) & set(second.sets))
            if not shared or not conditions.can_overlap(first.condition, second.condition, domains):
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


def check_can_fire(tables: list[Table], domains: dict[str, Domain]) -> list[str]:
    """A row whose tests exclude each other, or ask a plan field for a value no row
    sets, can never fire: dead policy that reads like a promise."""
    problems = []
    for table in tables:
        for rule in table.rules:
            if not conditions.can_overlap(rule.condition, (), domains):
                problems.append(
                    f"{rule.source}: rule {rule.id} can never fire: no facts pass all of its "
                    f"tests ({conditions.describe(rule.condition)}); a plan.* test must ask "
                    "for a value some row sets"
                )
    return problems


def check_reads_within(table: Table) -> list[str]:
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
    if isinstance(value, FactRef):
        default = f", default {quoted(value.default)}" if value.has_default else ""
        return f"fact {value.fact}{default}"
    return quoted(value)


def evaluation_order(
    tables: list[Table], providers: list[Provider]
) -> tuple[list[Table | Provider], list[str]]:
    """Tables and fact providers, each after whatever owns the facts it reads."""
    owner: dict[str, Table | Provider] = {
        f"plan.{name}": table for table in tables for name in table.sets
    }
    owner.update({fact: provider for provider in providers for fact in provider.provides})
    reads: dict[str, set[str]] = {
        table.name: {fact for rule in table.rules for fact in rule.reads()} for table in tables
    }
    reads.update({provider.name: set(provider.reads) for provider in providers})
    needs = {
        name: {owner[fact].name for fact in facts if fact in owner} - {name}
        for name, facts in reads.items()
    }
    by_name: dict[str, Table | Provider] = {t.name: t for t in tables}
    by_name.update({p.name: p for p in providers})
    order: list[Table | Provider] = []
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
            path = [*path[path.index(following) :], following]
            break
        path.append(following)
    steps = []
    for here, there in itertools.pairwise(path):
        reader, fact = _reader_of(by_name[here], by_name[there], owner)
        setter = _setter_of(by_name[there], fact)
        steps.append(f"{reader} reads {fact}, set by {setter}")
    return "dependency cycle between tables: " + "; ".join(steps)


def _reader_of(node, other, owner) -> tuple[str, str]:
    if isinstance(node, Provider):
        fact = next(f for f in sorted(node.reads) if owner.get(f) is other)
        return f"fact provider {node.name}", fact
    for rule in node.rules:
        for fact in sorted(rule.reads()):
            if owner.get(fact) is other:
                return f"rule {rule.id} ({rule.source})", fact
    raise AssertionError("no reader")  # unreachable: needs came from these reads


def _setter_of(node, fact: str) -> str:
    if isinstance(node, Provider):
        return f"fact provider {node.name}"
    field = fact.removeprefix("plan.")
    rule = next(r for r in node.rules if field in r.sets)
    return f"rule {rule.id} ({rule.source})"


def check_memory_coverage(memory: dict | None, domains: dict[str, Domain]) -> list[str]:
    """memory.yaml prices every load dtype the tables set: a missing one would be a
    silent guess in the estimate. (optimizers.yaml prices each optimizer's state.)"""
    if memory is None:
        return []
    problems = []
    for fact, column in (("plan.torch_dtype", "weight_bytes"),):
        missing = [v for v in domains.get(fact) or () if v is not None and v not in memory[column]]
        if missing:
            problems.append(
                f"rules/memory.yaml: {column} has no entry for {', '.join(map(str, missing))} "
                f"({fact} can take it); add one"
            )
    return problems

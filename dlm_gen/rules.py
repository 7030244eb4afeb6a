"""Load the rule tables in `rules/` into a checked `RuleSet`.

Reads every table (bounded, UTF-8), parses it with lines, builds the rows
(named sets resolved, requirements parsed) and runs the checks of
`dlm_gen.rulechecks` unless a receipt (`dlm_gen.rulecache`) says these exact
bytes passed them before. All problems are reported at once, each with its
file, line and rule id. The result's tables are in evaluation order.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dlm_gen import conditions, rulecache, rulechecks, yamlsrc
from dlm_gen.errors import DlmError, RulesError
from dlm_gen.facts import Domain, input_fact_domains
from dlm_gen.files import read_tables
from dlm_gen.memory import PROVIDERS as MEMORY_PROVIDERS
from dlm_gen.resources import data_dir

# The model lives in rulemodel; importers of dlm_gen.rules keep finding it here.
from dlm_gen.rulemodel import (  # noqa: F401
    FORMATTERS,
    OPTIMIZER_FACT_COLUMNS,
    PLACEHOLDER,
    FactRef,
    Requirement,
    Rule,
    RuleSet,
    Table,
)
from dlm_gen.schema import frontmatter_models

# Tables written before the rename keep loading: `unique` is what `collect` was called.
HIT_POLICY_ALIASES = {"unique": "collect"}


def load_rules(directory: Path | None = None) -> RuleSet:
    """The checked rule set of a directory (default: the shipped one, or $DLM_GEN_RULES)."""
    return _load_rules_at(Path(directory) if directory is not None else data_dir("rules"))


def forget_loaded_rules() -> None:
    """Drop the in-process cache of loaded rule sets (for tests that edit tables in place)."""
    _load_rules_at.cache_clear()


@functools.lru_cache(maxsize=4)
def _load_rules_at(directory: Path) -> RuleSet:
    """Load and check every `*.yaml` in the rules directory (default: the shipped one).

    The rule set is always built from the tables' bytes. Checking them (JSON
    Schema, overlaps, cycles) costs more than explaining a plan, so once a set
    of tables has passed, a *receipt* is cached: a JSON file that names the
    SHA-256 of every table, the schema and dlm-gen's source. A receipt can only
    let a later load skip the checks of those exact bytes; it holds no policy,
    so a tampered, truncated or foreign cache file can cost speed, never
    change a plan. The receipt is parsed as JSON; no cached object is ever loaded.
    """
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise RulesError(f"{directory}: no rule tables (*.yaml) found")
    texts = read_tables(directory, files)
    key = rulecache.cache_key(texts)
    if rulecache.has_receipt(key):
        try:
            return _check_and_build(texts, key[:16], checked=True)
        except Exception:  # a receipt only skips work: on anything odd, do the work
            pass
    rules = _check_and_build(texts, key[:16], checked=False)
    rulecache.write_receipt(key)
    return rules


def _check_and_build(texts: list[tuple[str, str]], version: str, checked: bool = False) -> RuleSet:
    """Parse the tables; prove them unless `checked` (these bytes passed before)."""
    problems: list[str] = []
    loaded: list[tuple[str, yamlsrc.SourcedYaml]] = []
    for name, text in texts:
        label = f"rules/{name}"
        try:
            document = yamlsrc.load(text, label)
        except DlmError as exc:
            problems.extend(str(p) for p in exc.problems)
            continue
        schema_problems = [] if checked else rulechecks.schema_problems(label, document)
        problems.extend(schema_problems)
        if not schema_problems:
            loaded.append((label, document))
    if problems:
        raise RulesError(_report(problems))
    return _build(loaded, version, checked)


def _report(problems: list[str]) -> str:
    return "broken rule tables:\n" + "\n".join(f"  {p}" for p in problems)


@dataclass
class _Collected:
    """What the tables of each kind contribute, gathered before the set is proven."""

    sets: dict[str, tuple]
    checked: bool
    tables: list[Table] = field(default_factory=list)
    base_models: dict[str, dict] = field(default_factory=dict)
    unsupported_bases: dict[str, dict] = field(default_factory=dict)
    model_lines: dict[str, str] = field(default_factory=dict)  # key -> "rules/x.yaml:LINE"
    architectures: dict[str, dict] = field(default_factory=dict)
    targets: dict[str, dict] = field(default_factory=dict)
    default_target: str | None = None
    verdicts: list[dict] = field(default_factory=list)
    memory: dict | None = None
    vocabulary: dict[str, tuple[str, ...]] = field(default_factory=dict)
    optimizers: dict[str, dict] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _read_rules(into: _Collected, label: str, document: yamlsrc.SourcedYaml) -> None:
    into.tables.append(_table(label, document, into.checked, into.sets))


def _read_base_models(into: _Collected, label: str, document: yamlsrc.SourcedYaml) -> None:
    value = document.value
    into.base_models.update(value["models"])
    into.unsupported_bases.update(value.get("unsupported", {}))
    for key in value["models"]:
        into.model_lines[key] = f"{label}:{document.line_of(('models', key, 'model_type'))}"


def _read_architectures(into: _Collected, label: str, document: yamlsrc.SourcedYaml) -> None:
    into.architectures.update(document.value["model_types"])


def _read_vocabulary(into: _Collected, label: str, document: yamlsrc.SourcedYaml) -> None:
    into.vocabulary.update({k: tuple(v) for k, v in document.value["fields"].items()})


def _read_optimizers(into: _Collected, label: str, document: yamlsrc.SourcedYaml) -> None:
    into.optimizers.update(document.value["optimizers"])
    into.tables.append(_optimizer_table(label, document, into.checked))


def _read_verdicts(into: _Collected, label: str, document: yamlsrc.SourcedYaml) -> None:
    into.verdicts.extend(document.value["verdicts"])


def _read_memory(into: _Collected, label: str, document: yamlsrc.SourcedYaml) -> None:
    into.memory = document.value


def _read_targets(into: _Collected, label: str, document: yamlsrc.SourcedYaml) -> None:
    value = document.value
    into.targets.update(value["targets"])
    into.default_target = value["default"]
    if into.default_target not in value["targets"]:
        line = document.line_of(("default",))
        into.problems.append(
            f"{label}:{line}: default target '{into.default_target}' is not listed"
        )


def _read_elsewhere(into: _Collected, label: str, document: yamlsrc.SourcedYaml) -> None:
    """limits: read by dlm_gen.limits; sets: resolved into the rows that name them."""


# Each kind of table (its `kind:`, which the schema restricts to these) and what reads it.
_READERS = {
    "rules": _read_rules,
    "base_models": _read_base_models,
    "architectures": _read_architectures,
    "vocabulary": _read_vocabulary,
    "optimizers": _read_optimizers,
    "verdicts": _read_verdicts,
    "memory": _read_memory,
    "targets": _read_targets,
    "limits": _read_elsewhere,
    "sets": _read_elsewhere,
}


def _missing_parts(collected: _Collected) -> list[str]:
    """What a rule set must have, and what its base models must agree on."""
    problems = []
    if collected.default_target is None:
        problems.append("rules/: no targets table (kind: targets)")
    for key, entry in collected.base_models.items():
        if entry["model_type"] not in collected.architectures and "target_modules" not in entry:
            problems.append(
                f"{collected.model_lines.get(key, 'rules/')}: models/{key}/model_type: "
                f"'{entry['model_type']}' is not a family of architectures.yaml and the model "
                "lists no target_modules"
            )
    for key in sorted(set(collected.base_models) & set(collected.unsupported_bases)):
        problems.append(
            f"{collected.model_lines[key]}: models/{key}: also listed under unsupported"
        )
    if not collected.vocabulary:
        problems.append("rules/: no vocabulary table (kind: vocabulary)")
    if not collected.optimizers:
        problems.append("rules/: no optimizers table (kind: optimizers)")
    return problems


def _build(
    loaded: list[tuple[str, yamlsrc.SourcedYaml]], version: str, checked: bool = False
) -> RuleSet:
    sets, set_problems = _named_sets(loaded)
    collected = _Collected(sets, checked, problems=set_problems)
    for label, document in loaded:
        _READERS[document.value["kind"]](collected, label, document)
    problems = collected.problems + _missing_parts(collected)
    if problems:
        raise RulesError(_report(problems))
    tables, memory_table, optimizers = collected.tables, collected.memory, collected.optimizers
    vocabulary = {**collected.vocabulary, "optimizer": tuple(optimizers)}
    models = frontmatter_models(vocabulary)
    plan_domains = _plan_domains(tables)
    providers = list(MEMORY_PROVIDERS) if memory_table is not None else []
    domains = {
        **input_fact_domains(models.training),
        **_optimizer_domains(optimizers),
        **{f"plan.{k}": v for k, v in plan_domains.items()},
        **{name: d for provider in providers for name, d in provider.provides.items()},
    }
    if not checked:
        problems += rulechecks.check_ids(tables)
        problems += rulechecks.check_rules(tables, domains)
        problems += rulechecks.check_ownership(tables)
        problems += rulechecks.check_overlaps(tables, domains)
        problems += rulechecks.check_can_fire(tables, domains)
        problems += rulechecks.check_memory_coverage(memory_table, domains)
        problems += [p for table in tables for p in rulechecks.check_reads_within(table)]
    order, cycle_problems = rulechecks.evaluation_order(tables, providers)
    problems += cycle_problems
    if problems:
        raise RulesError(_report(problems))
    ordered_tables = [step for step in order if isinstance(step, Table)]
    return RuleSet(
        tables=tuple(ordered_tables),
        base_models=collected.base_models,
        unsupported_bases=collected.unsupported_bases,
        architectures=collected.architectures,
        targets=collected.targets,
        default_target=collected.default_target or "",
        plan_fields=tuple(name for table in ordered_tables for name in sorted(table.sets)),
        version=version,
        verdicts=tuple(collected.verdicts),
        memory=memory_table,
        order=tuple(step.name for step in order),
        vocabulary=vocabulary,
        optimizers=optimizers,
    )


def _named_sets(
    loaded: list[tuple[str, yamlsrc.SourcedYaml]],
) -> tuple[dict[str, tuple], list[str]]:
    """The named value sets (kind: sets), and every row that names an unknown one."""
    sets: dict[str, tuple] = {}
    for _, document in loaded:
        if document.value["kind"] == "sets":
            sets.update({name: tuple(values) for name, values in document.value["sets"].items()})
    problems = []
    for label, document in loaded:
        if document.value["kind"] != "rules":
            continue
        for index, raw in enumerate(document.value["rules"]):
            for fact, test in (raw.get("when") or {}).items():
                for op in ("in_set", "not_in_set"):
                    name = test.get(op) if isinstance(test, dict) else None
                    if name is not None and name not in sets:
                        line = document.line_of(("rules", index, "when", fact))
                        close = difflib.get_close_matches(name, list(sets), n=1)
                        hint = f"; did you mean '{close[0]}'?" if close else ""
                        problems.append(
                            f"{label}:{line}: rule {raw['id']}: unknown set '{name}' "
                            f"(rules/sets.yaml declares: {', '.join(sorted(sets))}){hint}"
                        )
    return sets, problems


def _optimizer_table(label: str, document: yamlsrc.SourcedYaml, checked: bool) -> Table:
    """optimizers.yaml as the decision of `optim`: one row per entry, `optim-<name>`."""
    rules = []
    for name, entry in document.value["optimizers"].items():
        rules.append(
            Rule(
                id="optim-" + name.replace("_", "-"),
                table="optimizers",
                source=f"{label}:{document.line_of(('optimizers', name))}",
                condition=conditions.parse_condition({"training.optimizer": name}),
                sets={"optim": entry["hf_name"]},
                require=tuple(_requirement(t, checked) for t in entry["require"]),
                why=entry["why"],
                evidence=entry.get("evidence"),
                probe=entry.get("probe"),
            )
        )
    return Table("optimizers", label, "collect", tuple(rules), id_prefix="optim")


def _optimizer_domains(optimizers: Mapping[str, Mapping[str, object]]) -> dict[str, Domain]:
    """The values each `optimizer.*` fact takes: the table's own, so overlap proofs stay exact."""
    domains: dict[str, Domain] = {}
    for column in OPTIMIZER_FACT_COLUMNS:
        values: dict[object, object] = {}
        for entry in optimizers.values():
            values.setdefault(conditions.value_key(entry[column]), entry[column])
        domains[f"optimizer.{column}"] = tuple(values.values())
    return domains


def _table(
    label: str,
    document: yamlsrc.SourcedYaml,
    checked: bool = False,
    named_sets: Mapping[str, tuple] | None = None,
) -> Table:
    name = Path(label).stem
    rules = []
    for index, raw in enumerate(document.value["rules"]):
        line = document.line_of(("rules", index))
        sets = {
            key: FactRef(value["fact"], "default" in value, value.get("default"))
            if isinstance(value, dict)
            else value
            for key, value in (raw.get("set") or {}).items()
        }
        warn = raw.get("warn")
        refuse = raw.get("refuse")
        rules.append(
            Rule(
                id=raw["id"],
                table=name,
                source=f"{label}:{line}",
                condition=conditions.parse_condition(raw.get("when"), named_sets),
                sets=sets,
                warn=(warn["token"], warn["message"]) if warn else None,
                refuse=(refuse["message"], refuse.get("field")) if refuse else None,
                require=tuple(_requirement(t, checked) for t in raw.get("require") or ()),
                why=raw.get("why"),
                evidence=raw.get("evidence"),
                probe=raw.get("probe"),
            )
        )
    policy = document.value["hit_policy"]
    policy = HIT_POLICY_ALIASES.get(policy, policy)
    return Table(name, label, policy, tuple(rules), id_prefix=document.value["id_prefix"])


# The plain form `name[extra,...]>=1.0,<2` without a marker or URL: read without
# importing packaging, whose grammar compiles for longer than a warm explain
# takes. The result equals packaging's (a test checks every shipped string).


_PLAIN_REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*"
    r"(?:\[(?P<extras>\s*[A-Za-z0-9._-]+(?:\s*,\s*[A-Za-z0-9._-]+)*\s*)\])?\s*"
    r"(?P<specifiers>(?:(?:===|~=|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*,?\s*)*)$"
)


_SPECIFIER = re.compile(r"(===|~=|==|!=|<=|>=|<|>)\s*([A-Za-z0-9.*+!_-]+)")


def _plain_requirement(text: str) -> Requirement | None:
    match = _PLAIN_REQUIREMENT.match(text)
    if match is None or match["specifiers"].rstrip().endswith(","):
        return None
    specifiers = _SPECIFIER.findall(match["specifiers"])
    if len(specifiers) != match["specifiers"].count(",") + bool(specifiers):
        return None
    extras = [e.strip() for e in (match["extras"] or "").split(",") if e.strip()]
    return Requirement(
        name=re.sub(r"[-_.]+", "-", match["name"]).lower(),
        extras=tuple(sorted(set(extras))),
        specifiers=tuple(sorted(f"{op}{version}" for op, version in specifiers)),
        marker=None,
    )


def _requirement(text: str, checked: bool = False) -> Requirement | str:
    """Parse a PEP 508 string; an invalid one stays a string for the checks to report."""
    if checked:  # packaging accepted these bytes before; the plain form needs no grammar
        plain = _plain_requirement(text)
        if plain is not None:
            return plain
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as Pep508

    try:
        parsed = Pep508(text)
    except InvalidRequirement:
        return text
    return Requirement(
        name=re.sub(r"[-_.]+", "-", parsed.name).lower(),
        extras=tuple(sorted(parsed.extras)),
        specifiers=tuple(sorted(str(s) for s in parsed.specifier)),
        marker=str(parsed.marker) if parsed.marker else None,
    )


def _plan_domains(tables: list[Table]) -> dict[str, Domain]:
    """A plan field's values are those its rules set, unless one copies a fact."""
    values: dict[str, dict[object, object] | None] = {}
    for table in tables:
        for rule in table.rules:
            for name, value in rule.sets.items():
                known = values.setdefault(name, {})
                if known is None:
                    continue
                if isinstance(value, (FactRef, list)):
                    values[name] = None
                else:
                    known.setdefault(conditions.value_key(value), value)
    return {k: (tuple(v.values()) if v is not None else None) for k, v in values.items()}

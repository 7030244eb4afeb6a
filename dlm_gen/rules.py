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
import itertools
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dlm_gen import conditions, yamlsrc
from dlm_gen.errors import DlmError, RulesError
from dlm_gen.facts import Domain, input_fact_domains
from dlm_gen.files import InputFileError, read_bounded, read_table
from dlm_gen.memory import PROVIDER as MEMORY_PROVIDER
from dlm_gen.memory import Provider
from dlm_gen.resources import data_dir

PLACEHOLDER = re.compile(r"\{([a-z_]+\.[a-z0-9_]+)(?:\|([a-z]+))?\}")
FORMATTERS = ("size", "gb")


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
    verdicts: tuple[dict, ...] = ()
    memory: dict | None = None  # coefficients of the memory estimate (rules/memory.yaml)
    order: tuple[str, ...] = ()  # tables and fact providers, in evaluation order

    def rule(self, rule_id: str) -> Rule:
        return next(r for t in self.tables for r in t.rules if r.id == rule_id)


CACHE_ENV = "DLM_GEN_CACHE_DIR"
RECEIPT_FORMAT = "dlm-gen checked-rules receipt 1"


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
    texts = [(file.name, read_table(file)) for file in files]
    key = _cache_key(texts)
    checked = _has_receipt(key)
    rules = _check_and_build(texts, key[:16], checked=checked)
    if not checked:
        _write_receipt(key)
    return rules


def _cache_key(texts: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for name, text in texts:
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    digest.update((data_dir("schema") / "rules.schema.json").read_bytes())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _cache_file(key: str) -> Path | None:
    configured = os.environ.get(CACHE_ENV)
    if configured is not None and configured.strip() in ("", "off"):
        return None
    if configured:
        base = Path(configured)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlm-gen"
    return base / f"rules-{key[:32]}.json"


def _has_receipt(key: str) -> bool:
    """Whether these exact bytes passed the checks before (a damaged file: no)."""
    path = _cache_file(key)
    if path is None:
        return False
    try:
        receipt = json.loads(read_bounded(path, 4096))
    except (InputFileError, ValueError, RecursionError):
        return False
    return receipt == {"format": RECEIPT_FORMAT, "key": key}


def _write_receipt(key: str) -> None:
    path = _cache_file(key)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as handle:
            json.dump({"format": RECEIPT_FORMAT, "key": key}, handle)
        os.replace(handle.name, path)
    except OSError:
        pass  # a read-only home only costs speed


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
        schema_problems = [] if checked else _schema_problems(label, document)
        problems.extend(schema_problems)
        if not schema_problems:
            loaded.append((label, document))
    if problems:
        raise RulesError(_report(problems))
    return _build(loaded, version, checked)


def _schema_problems(label: str, document: yamlsrc.SourcedYaml) -> list[str]:
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


def _report(problems: list[str]) -> str:
    return "broken rule tables:\n" + "\n".join(f"  {p}" for p in problems)


def _build(
    loaded: list[tuple[str, yamlsrc.SourcedYaml]], version: str, checked: bool = False
) -> RuleSet:
    tables: list[Table] = []
    base_models: dict[str, dict] = {}
    model_lines: dict[str, str] = {}  # base model key -> "rules/base_models.yaml:LINE"
    architectures: dict[str, dict] = {}
    targets: dict[str, dict] = {}
    verdicts: list[dict] = []
    memory_table: dict | None = None
    default_target: str | None = None
    problems: list[str] = []
    sets, set_problems = _named_sets(loaded)
    problems.extend(set_problems)
    for label, document in loaded:
        value = document.value
        kind = value["kind"]
        if kind == "rules":
            tables.append(_table(label, document, checked, sets))
        elif kind == "base_models":
            base_models.update(value["models"])
            for key in value["models"]:
                model_lines[key] = f"{label}:{document.line_of(('models', key, 'model_type'))}"
        elif kind == "architectures":
            architectures.update(value["model_types"])
        elif kind in ("vocabulary", "limits", "sets"):
            continue  # read by dlm_gen.datatables, before the rule set
        elif kind == "verdicts":
            verdicts.extend(value["verdicts"])
        elif kind == "memory":
            memory_table = value
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
            problems.append(
                f"{model_lines.get(key, 'rules/')}: models/{key}/model_type: "
                f"'{entry['model_type']}' is not a family of architectures.yaml and the model "
                "lists no target_modules"
            )
    plan_domains = _plan_domains(tables)
    providers = [MEMORY_PROVIDER] if memory_table is not None else []
    domains = {
        **input_fact_domains(),
        **{f"plan.{k}": v for k, v in plan_domains.items()},
        **{name: d for provider in providers for name, d in provider.provides.items()},
    }
    if not checked:
        problems += _check_ids(tables)
        problems += _check_rules(tables, domains)
        problems += _check_ownership(tables)
        problems += _check_overlaps(tables, domains)
        problems += _check_can_fire(tables, domains)
        problems += [p for table in tables for p in _check_reads_within(table)]
    order, cycle_problems = _evaluation_order(tables, providers)
    problems += cycle_problems
    if problems:
        raise RulesError(_report(problems))
    ordered_tables = [step for step in order if isinstance(step, Table)]
    return RuleSet(
        tables=tuple(ordered_tables),
        base_models=base_models,
        architectures=architectures,
        targets=targets,
        default_target=default_target or "",
        plan_fields=tuple(name for table in ordered_tables for name in sorted(table.sets)),
        version=version,
        verdicts=tuple(verdicts),
        memory=memory_table,
        order=tuple(step.name for step in order),
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
            )
        )
    return Table(name, label, document.value["hit_policy"], tuple(rules))


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
    """Parse a PEP 508 string; an invalid one stays a string for _check_rules to report."""
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


def _check_ownership(tables: list[Table]) -> list[str]:
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


def _check_overlaps(tables: list[Table], domains: dict[str, Domain]) -> list[str]:
    """Two rows of a unique table that can both set one field for the same facts."""
    problems = []
    for table in tables:
        if table.hit_policy != "unique":
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


def _check_can_fire(tables: list[Table], domains: dict[str, Domain]) -> list[str]:
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
    if isinstance(value, FactRef):
        default = f", default {json.dumps(value.default)}" if value.has_default else ""
        return f"fact {value.fact}{default}"
    return json.dumps(value)


def _evaluation_order(
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

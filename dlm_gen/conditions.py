"""The condition language of the rule tables, and what can be proved about it.

A condition is a conjunction of tests on facts, written as a YAML mapping:

    when:
      training.optimizer: {in: [galore_adamw, galore_adamw_8bit]}
      base.params: {lt: 1000000000}

A bare scalar means equality. Operators: eq, ne, in, not_in, lt, le, gt, ge;
several operators on one fact all have to hold. An empty `when` always holds.
Nothing is ever `eval`ed. Because the language is this small, the loader can
decide exactly whether two conditions can hold for the same facts
(`can_overlap`), which is how ambiguous tables are caught when they load.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from dlm_gen.shown import plain

OPERATORS = ("eq", "ne", "in", "not_in", "lt", "le", "gt", "ge")
ORDER_OPERATORS = ("lt", "le", "gt", "ge")


@dataclass(frozen=True)
class Clause:
    fact: str
    op: str
    value: object


Condition = tuple[Clause, ...]


SET_OPERATORS = {"in_set": "in", "not_in_set": "not_in"}


def parse_condition(
    when: Mapping[str, object] | None, sets: Mapping[str, tuple] | None = None
) -> Condition:
    """Turn a validated `when` mapping into tests, in a stable order.

    `{in_set: NAME}` is `{in: [the values of the named set]}` (rules/sets.yaml),
    so the overlap proof sees plain `in` / `not_in` tests.
    """
    tests: list[Clause] = []
    for fact, spec in (when or {}).items():
        if isinstance(spec, Mapping):
            for op, value in spec.items():
                if op in SET_OPERATORS:
                    op, value = SET_OPERATORS[op], (sets or {}).get(value, ())
                if op in ("in", "not_in"):
                    value = tuple(value)
                tests.append(Clause(fact, op, value))
        else:
            tests.append(Clause(fact, "eq", spec))
    return tuple(tests)


def same(a: object, b: object) -> bool:
    """Equality that keeps `True` apart from `1` and `None` apart from everything."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return (a == b and type(a) is not type(None)) or (a is None and b is None)


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def passes(test: Clause, value: object) -> bool:
    """Whether a fact's value passes one test."""
    op, want = test.op, test.value
    if op == "eq":
        return same(value, want)
    if op == "ne":
        return not same(value, want)
    if op == "in":
        return any(same(value, w) for w in want)
    if op == "not_in":
        return not any(same(value, w) for w in want)
    if not (_number(value) and _number(want)):
        return False  # an order test on a missing or non-numeric fact never holds
    return {
        "lt": value < want,
        "le": value <= want,
        "gt": value > want,
        "ge": value >= want,
    }[op]


def holds(condition: Condition, facts: Mapping[str, object]) -> bool:
    return all(passes(test, facts.get(test.fact)) for test in condition)


def can_overlap(
    a: Condition, b: Condition, domains: Mapping[str, tuple[object, ...] | None]
) -> bool:
    """Whether some assignment of facts satisfies both conditions.

    Exact for this language: per fact, the tests of both conditions must be
    jointly satisfiable; facts are independent of each other. `domains` gives
    the finite set of values a fact can take, or None when it is open-ended.
    """
    by_fact: dict[str, list[Clause]] = {}
    for test in (*a, *b):
        by_fact.setdefault(test.fact, []).append(test)
    return all(_satisfiable(tests, domains.get(fact)) for fact, tests in by_fact.items())


def _satisfiable(tests: list[Clause], domain: tuple[object, ...] | None) -> bool:
    candidates: list[object] | None = None
    if domain is not None:
        candidates = list(domain)
    for test in tests:
        if test.op == "eq":
            candidates = [test.value] if candidates is None else candidates
        elif test.op == "in":
            candidates = list(test.value) if candidates is None else candidates
    if candidates is not None:
        return any(all(passes(t, value) for t in tests) for value in candidates)
    return _open_domain_satisfiable(tests)


def _open_domain_satisfiable(tests: list[Clause]) -> bool:
    """No finite candidate set: only ne / not_in / order tests constrain the value."""
    excluded = [t.value for t in tests if t.op == "ne"]
    excluded += [v for t in tests if t.op == "not_in" for v in t.value]
    order = [t for t in tests if t.op in ORDER_OPERATORS]
    if not order:
        return True  # an open domain always has a value outside a finite exclusion
    low, low_open, high, high_open = -math.inf, True, math.inf, True
    for test in order:
        if test.op in ("gt", "ge") and (
            test.value > low or (test.value == low and test.op == "gt")
        ):
            low, low_open = test.value, test.op == "gt"
        if test.op in ("lt", "le") and (
            test.value < high or (test.value == high and test.op == "lt")
        ):
            high, high_open = test.value, test.op == "lt"
    if low > high or (low == high and (low_open or high_open)):
        return False
    if low == high:
        return not any(same(low, x) for x in excluded)
    return True  # a real interval holds infinitely many values


def value_key(value: object) -> object:
    """A hashable key under which values that `same` calls equal collide."""
    if isinstance(value, bool):
        return ("bool", value)
    if value is None:
        return ("none",)
    if _number(value):
        return ("number", value)
    try:
        hash(value)
    except TypeError:
        return ("unhashable", id(value))
    return (type(value).__name__, value)


# Below this many rows a group is compared pair by pair.
_SMALL_GROUP = 8


def candidate_pairs(conditions: list[Condition]) -> list[tuple[int, int]]:
    """Index pairs (i < j) that may overlap; every pair left out provably cannot.

    Two conditions that test one fact for equality with different values can
    never hold together. Rows are bucketed by such a fact (the one most rows
    test with `eq`), recursively: only rows in one bucket, and rows that do not
    test the fact against everything, are compared. A table of N rows keyed on
    one fact costs O(N) instead of O(N^2) overlap proofs.
    """
    pairs: list[tuple[int, int]] = []
    equalities = [
        {t.fact: value_key(t.value) for t in condition if t.op == "eq"} for condition in conditions
    ]

    def split(group: list[int], used: frozenset[str]) -> None:
        counts: dict[str, int] = {}
        for index in group:
            for fact in equalities[index]:
                if fact not in used:
                    counts[fact] = counts.get(fact, 0) + 1
        best = max(sorted(counts), key=lambda fact: counts[fact], default=None)
        if len(group) <= _SMALL_GROUP or best is None or counts[best] < 2:
            pairs.extend((a, b) for position, a in enumerate(group) for b in group[position + 1 :])
            return
        buckets: dict[object, list[int]] = {}
        wild: list[int] = []
        for index in group:
            if best in equalities[index]:
                buckets.setdefault(equalities[index][best], []).append(index)
            else:
                wild.append(index)
        deeper = used | {best}
        for bucket in buckets.values():
            split(bucket, deeper)
            pairs.extend((min(a, b), max(a, b)) for a in wild for b in bucket)
        split(wild, deeper)

    split(list(range(len(conditions))), frozenset())
    return sorted(pairs)


def reads(condition: Condition) -> set[str]:
    return {test.fact for test in condition}


def describe(condition: Condition) -> str:
    """A short human reading of a condition, for explain --verbose."""
    if not condition:
        return "always"
    symbols = {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
    parts = []
    for test in condition:
        if test.op in symbols:
            parts.append(f"{test.fact}{symbols[test.op]}{plain(test.value)}")
        else:
            word = "in" if test.op == "in" else "not in"
            values = ",".join(plain(v) for v in test.value)
            parts.append(f"{test.fact} {word} [{values}]")
    return " and ".join(parts)

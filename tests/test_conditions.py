"""The condition language: evaluation, and the exactness of the overlap proof."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dlm_gen import conditions
from dlm_gen.conditions import Clause, can_overlap, holds, parse_condition

NUMBERS = st.integers(min_value=0, max_value=5)
ORDER_OPS = ["lt", "le", "gt", "ge"]


def number_tests(fact: str):
    scalar = st.builds(Clause, st.just(fact), st.sampled_from(["eq", "ne", *ORDER_OPS]), NUMBERS)
    sets = st.builds(
        Clause,
        st.just(fact),
        st.sampled_from(["in", "not_in"]),
        st.lists(NUMBERS, min_size=1, max_size=3).map(tuple),
    )
    return st.one_of(scalar, sets)


conditions_on_two_facts = st.lists(
    st.one_of(number_tests("training.lora_r"), number_tests("base.params")), max_size=4
).map(tuple)

# Values that witness every region the tests above can carve out of the line.
CANDIDATES = [None, "other", *[k / 2 for k in range(-2, 13)]]


def brute_force_overlap(a, b) -> bool:
    return any(
        holds(a + b, {"training.lora_r": x, "base.params": y})
        for x in CANDIDATES
        for y in CANDIDATES
    )


@given(conditions_on_two_facts, conditions_on_two_facts)
def test_overlap_proof_is_exact_on_open_numeric_facts(a, b):
    assert can_overlap(a, b, {}) == brute_force_overlap(a, b)


BACKENDS = ("cpu", "cuda")
backend_tests = st.one_of(
    st.builds(
        Clause, st.just("target.backend"), st.sampled_from(["eq", "ne"]), st.sampled_from(BACKENDS)
    ),
    st.builds(
        Clause,
        st.just("target.backend"),
        st.sampled_from(["in", "not_in"]),
        st.lists(st.sampled_from(BACKENDS), min_size=1, max_size=2).map(tuple),
    ),
)


@given(
    st.lists(backend_tests, max_size=3).map(tuple), st.lists(backend_tests, max_size=3).map(tuple)
)
def test_overlap_proof_is_exact_on_finite_domains(a, b):
    domains = {"target.backend": BACKENDS}
    expected = any(holds(a + b, {"target.backend": value}) for value in BACKENDS)
    assert can_overlap(a, b, domains) == expected


def test_ne_over_a_whole_finite_domain_cannot_overlap():
    a = parse_condition({"target.backend": {"ne": "cpu"}})
    b = parse_condition({"target.backend": {"ne": "cuda"}})
    assert not can_overlap(a, b, {"target.backend": BACKENDS})
    assert can_overlap(a, b, {})  # with an open domain some third value satisfies both


def test_booleans_are_not_numbers():
    condition = parse_condition({"target.bf16": True})
    assert holds(condition, {"target.bf16": True})
    assert not holds(condition, {"target.bf16": 1})
    assert not holds(parse_condition({"base.params": {"lt": 10}}), {"base.params": True})


def test_order_tests_on_missing_facts_never_hold():
    assert not holds(parse_condition({"base.params": {"lt": 1_000_000_000}}), {"base.params": None})
    assert holds(parse_condition({"base.params": None}), {"base.params": None})


def test_describe_reads_like_the_table():
    condition = parse_condition(
        {"training.optimizer": {"in": ["a", "b"]}, "base.params": {"lt": 5}}
    )
    assert conditions.describe(condition) == "training.optimizer in [a,b] and base.params<5"


@given(st.lists(conditions_on_two_facts, min_size=0, max_size=24))
def test_bucketed_pairs_never_skip_a_pair_that_can_overlap(rows):
    """The loader compares only candidate pairs: every pair left out must be disjoint."""
    candidates = set(conditions.candidate_pairs(list(rows)))
    for i, first in enumerate(rows):
        for j in range(i + 1, len(rows)):
            if (i, j) not in candidates:
                assert not brute_force_overlap(first, rows[j]), (first, rows[j])


def test_bucketing_keeps_a_keyed_table_linear():
    rows = [(Clause("training.seed", "eq", i),) for i in range(2400)]
    rows += [(Clause("training.lora_r", "eq", 8),)]  # one row that tests another fact
    assert len(conditions.candidate_pairs(rows)) == 2400  # the odd row against each bucket

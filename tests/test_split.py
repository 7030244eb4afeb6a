"""The held-out split: a plan decision (runtime.yaml), known before the script runs."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from dlm_gen import split
from dlm_gen.runtime import rows as rows_module
from tests.conftest import plan_of, run_dlm_gen, script_constant, script_plans, write_dlm

PAIR = "### Q\nQuestion {i}?\n### A\nAnswer {i}.\n"


def pairs(count: int) -> str:
    return "::instruction::\n" + "\n".join(PAIR.format(i=i) for i in range(count))


def document(tmp_path, count: int, **training) -> Path:
    return write_dlm(tmp_path, {"base_model": "smollm2-135m", "training": training}, pairs(count))


def planned(tmp_path, count: int, **training):
    return plan_of(tmp_path, training, body=pairs(count))


def test_a_small_document_trains_every_row_and_says_where_it_evaluates(tmp_path):
    plan = planned(tmp_path, 2)
    assert plan.fields["eval_fraction"] == 0.0
    assert {d.field: d.rule for d in plan.decisions}["eval_fraction"] == (
        "runtime-eval-on-training-rows"
    )
    assert plan.rows.to_json() == {"train": 2, "held_out": 0, "eval_on": "training rows"}


def test_from_twenty_rows_a_tenth_is_held_out(tmp_path):
    plan = planned(tmp_path, 40)
    assert plan.fields["eval_fraction"] == 0.1
    assert plan.rows.held_out >= 1 and plan.rows.train + plan.rows.held_out == 40
    below = planned(tmp_path, 19)
    assert below.fields["eval_fraction"] == 0.0 and below.rows.held_out == 0


def test_the_document_decides_when_it_says(tmp_path):
    plan = planned(tmp_path, 4, eval_fraction=0.25)
    assert plan.fields["eval_fraction"] == 0.25
    assert plan.rows.held_out >= 1  # a positive fraction holds out at least one row of two
    none = planned(tmp_path, 40, eval_fraction=0)
    assert none.rows.to_json() == {"train": 40, "held_out": 0, "eval_on": "training rows"}


def test_explain_and_the_header_show_the_counts(tmp_path):
    path = document(tmp_path, 2)
    done = run_dlm_gen("explain", path, "--json")
    assert json.loads(done.stdout)["rows"] == {
        "train": 2,
        "held_out": 0,
        "eval_on": "training rows",
    }
    verbose = run_dlm_gen("explain", path, "--verbose").stdout
    assert "rows: 2 train, none held out: the eval loss is measured on training rows" in verbose
    out = tmp_path / "generated"
    script = run_dlm_gen("render", path, "--out", out).stdout.strip()
    header = Path(script).read_text(encoding="utf-8").split('"""', 1)[0]
    assert "# Rows:" in header and "none held out" in header


rows = st.lists(
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["text", "instruction", "preference"]),
            "adapter": st.just(None),
            "line": st.integers(1, 10_000),
            "text": st.text(max_size=20),
            "question": st.text(max_size=20),
            "answer": st.text(max_size=20),
            "prompt": st.text(max_size=20),
            "chosen": st.text(max_size=20),
            "rejected": st.text(max_size=20),
        }
    ),
    max_size=30,
    unique_by=lambda row: tuple(row[k] for k in sorted(row) if k not in ("line", "adapter")),
)


def test_the_script_splits_exactly_as_the_plan_says(tmp_path):
    """The plan's counts (explain, the header) are what the script's own split of its
    embedded rows makes: one split_rows, the runtime's, for both."""
    assert split.split_rows is rows_module.split_rows
    path = document(tmp_path, 30)
    out = tmp_path / "generated"
    text = Path(run_dlm_gen("render", path, "--out", out).stdout.strip()).read_text()
    [plan] = script_plans(text)
    sft_rows, _ = rows_module.sft_rows_and_triples(script_constant(text, "ROWS"))
    train, held_out = rows_module.split_rows(sft_rows, plan["seed"], plan["eval_fraction"])
    counts = planned(tmp_path, 30).rows  # the same document, planned
    assert (len(train), len(held_out)) == (counts.train, counts.held_out)
    assert held_out, "30 rows hold some out"

    @settings(max_examples=200, deadline=None)
    @given(rows=rows, seed=st.integers(0, 2**32 - 1), fraction=st.sampled_from([0, 0.1, 0.5]))
    def split_is_a_partition(rows, seed, fraction):
        train, held_out = rows_module.split_rows(rows, seed, fraction)
        assert sorted(map(repr, train + held_out)) == sorted(map(repr, rows))

    split_is_a_partition()


def test_triples_are_held_out_by_their_own_text(tmp_path):
    """Each triple keys on its prompt, chosen and rejected: a tenth of 40 is held out, not
    all of them or none (a key blind to them would give every triple the same one)."""
    body = "".join(
        f"::preference::\n### Prompt\np{i}\n### Chosen\nc{i}\n### Rejected\nr{i}\n\n"
        for i in range(40)
    )
    plan = plan_of(tmp_path, {}, body="Some prose.\n" + body)
    assert plan.fields["preference_eval_fraction"] == 0.1
    assert 1 <= plan.rows.triples_held_out <= 10 and plan.rows.triples_train >= 30

"""Evidence that runs: every probe a row names exists, and each claim holds on this stack."""

from __future__ import annotations

import json

import pytest

from dlm_gen.probes import FAILS, HOLDS, NOT_HERE, PROBES, run_probes
from dlm_gen.rules import load_rules
from tests.conftest import run_dlm_gen

RULES = load_rules()


def test_every_probe_a_row_names_exists_and_every_probe_is_named():
    named = {rule.probe for table in RULES.tables for rule in table.rules if rule.probe}
    assert named == set(PROBES)


@pytest.mark.slow
def test_each_rows_evidence_still_holds_on_the_installed_stack():
    """When a library changes, this names the rules whose evidence no longer holds."""
    report = run_probes(RULES)
    stale = [
        f"{item['probe']}: {item['measured']} -> revisit {', '.join(item['rules'])}"
        for item in report
        if item["outcome"] == FAILS
    ]
    assert not stale, "\n".join(stale)
    assert all(item["outcome"] in (HOLDS, NOT_HERE) for item in report)
    assert all(item["rules"] for item in report)


@pytest.mark.slow
def test_doctor_probe_reports_each_probe(tmp_path):
    done = run_dlm_gen("doctor", "--probe", "--json", timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    probes = {item["probe"]: item for item in json.loads(done.stdout)["probes"]}
    assert set(probes) == set(PROBES)
    assert probes["galore-8bit-needs-cuda"]["rules"][0].startswith("optim-galore-adamw-8bit")
    text = run_dlm_gen("doctor", "--probe", timeout=600).stdout
    assert "probes (the evidence of the rule tables, measured here):" in text


def test_a_probe_that_stops_holding_names_the_rules(monkeypatch):
    monkeypatch.setitem(
        PROBES,
        "first-step-learns",
        PROBES["first-step-learns"].__class__(
            "first-step-learns", "claim", lambda: (FAILS, "the first LR is 0.5")
        ),
    )
    for name in set(PROBES) - {"first-step-learns"}:
        monkeypatch.setitem(
            PROBES, name, PROBES[name].__class__(name, "claim", lambda: (HOLDS, "ok"))
        )
    [stale] = [item for item in run_probes(RULES) if item["outcome"] == FAILS]
    assert stale["rules"][0].startswith("optim-first-step-learns (rules/optimizer.yaml:")
    from dlm_gen.doctor import format_report

    text = format_report(
        {"profile": "cpu", "host": {"backend": "cpu"}, "versions": {}, "probes": [stale]}
    )
    assert "first-step-learns: REVISIT: the first LR is 0.5" in text
    assert "revisit optim-first-step-learns" in text


@pytest.mark.slow
def test_the_dpo_probe_fails_where_trl_prepares_the_rows_itself():
    """dpo-prepare-dataset holds for the runtime's trainer; it must fail for TRL's own,
    which is what a TRL release that stops calling _prepare_dataset would look like."""
    from trl import DPOTrainer

    from dlm_gen.probes import dpo_prepare_dataset

    assert dpo_prepare_dataset()[0] == HOLDS
    assert dpo_prepare_dataset(lambda plan: DPOTrainer)[0] == FAILS

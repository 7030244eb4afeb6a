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
        "hf-warmup-starts-at-zero",
        PROBES["hf-warmup-starts-at-zero"].__class__(
            "hf-warmup-starts-at-zero", "claim", lambda: (FAILS, "the first LR is 0.5")
        ),
    )
    for name in set(PROBES) - {"hf-warmup-starts-at-zero"}:
        monkeypatch.setitem(
            PROBES, name, PROBES[name].__class__(name, "claim", lambda: (HOLDS, "ok"))
        )
    [stale] = [item for item in run_probes(RULES) if item["outcome"] == FAILS]
    assert stale["rules"][0].startswith("optim-first-step-learns (rules/optimizer.yaml:")
    from dlm_gen.doctor import format_report

    text = format_report(
        {"profile": "cpu", "host": {"backend": "cpu"}, "versions": {}, "probes": [stale]}
    )
    assert "hf-warmup-starts-at-zero: REVISIT: the first LR is 0.5" in text
    assert "revisit optim-first-step-learns" in text

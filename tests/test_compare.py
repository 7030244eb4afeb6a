"""`dlm-gen compare` on run.json records: table, verdict as a table row, refusals, plot."""

from __future__ import annotations

import builtins
import json
import shutil

import pytest

from dlm_gen.resources import data_dir


def run_record(kind: str, eval_loss: float, digest="abc", name=None, **extra) -> dict:
    record = {
        "name": name,
        "plan": {"adapter": kind, "peft": kind != "full"},
        "settings": {"lora_r": 8},
        "trainable_parameters": 17408 if "dora" in kind else 16384,
        "steps": 40,
        "rows": {"train": 30, "held_out": 10, "eval_on": "held-out rows"},
        "first_loss": 6.0,
        "final_train_loss": eval_loss - 0.1,
        "eval_loss": eval_loss,
        "delta_kl": 0.01,
        "delta_js": 0.002,
        "mean_step_seconds": 0.02 if "dora" in kind else 0.015,
        "step_seconds": [0.02, 0.02, 0.9] if "dora" in kind else [0.015, 0.015, 0.8],
        "peak_memory_bytes": 500 * 2**20,
        "wall_seconds": 1.0,
        "losses": [6.0, 5.8, 5.6, 5.5],
        "rows_sha256": digest,
    }
    record.update(extra)
    return record


def write_run(directory, *records):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "run.json").write_text(json.dumps({"adapters": list(records)}))
    return directory


def test_table_and_verdict_keep_lora_when_dora_gains_too_little(tmp_path, cli):
    a = write_run(tmp_path / "lora", run_record("lora", 5.00))
    b = write_run(tmp_path / "dora", run_record("dora", 4.90))  # 2% better
    code, out, _ = cli("compare", a, b)
    assert code == 0
    assert "eval loss" in out and "mean step time" in out and "peak memory" in out
    assert "+33.3%" in out  # DoRA's step time against LoRA's
    assert "verdict: keep lora:" in out and "+2.0% gain" in out and "does not beat" in out


def test_dora_wins_by_the_threshold_and_the_flag_moves_it(tmp_path, cli):
    a = write_run(tmp_path / "lora", run_record("lora", 5.00))
    b = write_run(tmp_path / "dora", run_record("dora", 4.50))  # 10% better
    assert "verdict: keep dora:" in cli("compare", a, b)[1]
    assert "verdict: keep lora:" in cli("compare", b, a, "--threshold", "0.2")[1]


def test_the_verdict_is_a_table_row(tmp_path, monkeypatch, cli):
    rules = tmp_path / "rules"
    shutil.copytree(data_dir("rules"), rules)
    table = rules / "compare.yaml"
    table.write_text(table.read_text().replace("threshold: 0.05", "threshold: 0.01", 1))
    monkeypatch.setenv("DLM_GEN_RULES", str(rules))
    from dlm_gen.rules import forget_loaded_rules

    forget_loaded_rules()
    a = write_run(tmp_path / "lora", run_record("lora", 5.00))
    b = write_run(tmp_path / "dora", run_record("dora", 4.90))
    try:
        assert "verdict: keep dora:" in cli("compare", a, b)[1]
    finally:
        forget_loaded_rules()


def test_json_output(tmp_path, cli):
    a = write_run(tmp_path / "lora", run_record("lora", 5.00))
    b = write_run(tmp_path / "dora", run_record("dora", 4.00))
    code, out, _ = cli("compare", a / "run.json", b, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["verdict"]["keep"] == "dora" and data["verdict"]["rule"]
    eval_row = next(row for row in data["figures"] if row["figure"] == "eval loss")
    assert eval_row["relative"] == pytest.approx(-0.2)


def test_different_rows_are_refused_unless_forced(tmp_path, cli):
    a = write_run(tmp_path / "lora", run_record("lora", 5.0, digest="one"))
    b = write_run(tmp_path / "dora", run_record("dora", 4.0, digest="two"))
    code, _, err = cli("compare", a, b)
    assert code == 1 and "different rows" in err and "--force" in err
    code, out, err = cli("compare", a, b, "--force")
    assert code == 0 and "compared anyway" in err and "verdict:" in out


def test_no_verdict_for_two_lora_runs(tmp_path, cli):
    a = write_run(tmp_path / "a", run_record("lora", 5.0))
    b = write_run(tmp_path / "b", run_record("lora", 4.0))
    assert "verdict: no verdict" in cli("compare", a, b)[1]


def test_multi_adapter_run_needs_adapter(tmp_path, cli):
    a = write_run(
        tmp_path / "a", run_record("lora", 5.0, name="x"), run_record("dora", 4, name="y")
    )
    code, _, err = cli("compare", a, a)
    assert code == 1 and "--adapter" in err and "x, y" in err
    assert cli("compare", a, a, "--adapter", "x")[0] == 0


def test_missing_run_json(tmp_path, cli):
    code, _, err = cli("compare", tmp_path, tmp_path)
    assert code == 1 and "no run.json" in err


def test_plot_writes_a_png(tmp_path, cli):
    pytest.importorskip("matplotlib")
    a = write_run(tmp_path / "lora", run_record("lora", 5.0))
    b = write_run(tmp_path / "dora", run_record("dora", 4.0))
    png = tmp_path / "curves.png"
    assert cli("compare", a, b, "--plot", png)[0] == 0
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_plot_without_matplotlib_says_how_to_install(tmp_path, cli, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    a = write_run(tmp_path / "lora", run_record("lora", 5.0))
    b = write_run(tmp_path / "dora", run_record("dora", 4.0))
    code, _, err = cli("compare", a, b, "--plot", tmp_path / "x.png")
    assert code == 1 and "pip install 'dlm-gen[plot]'" in err


def test_a_run_json_without_plans_is_a_clear_error(tmp_path, cli):
    (tmp_path / "run.json").write_text(json.dumps({"adapters": [{"steps": 3}]}))
    code, _, err = cli("compare", tmp_path, tmp_path)
    assert code == 1 and "Traceback" not in err
    assert "adapters[0].plan.adapter: expected an adapter kind" in err


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"steps": 2}, "dora trained 2 steps (the row needs 10)"),
        (
            {"rows": {"train": 30, "held_out": 1, "eval_on": "held-out rows"}},
            "dora was evaluated on 1 rows (the row needs 5)",
        ),
        (
            {"rows": {"train": 30, "held_out": 0, "eval_on": "training rows"}},
            "dora's eval loss is measured on its training rows",
        ),
    ],
)
def test_too_little_evidence_is_inconclusive(tmp_path, cli, change, reason):
    """A 2-step run scored on one held-out row must not read "keep dora: +6.2% gain"."""
    a = write_run(tmp_path / "lora", run_record("lora", 5.0))
    b = write_run(tmp_path / "dora", run_record("dora", 4.0, **change))
    code, out, _ = cli("compare", a, b)
    assert code == 0
    verdict = out.split("verdict: ", 1)[1]
    assert verdict.startswith("inconclusive: ") and reason in verdict
    assert "compare-keep-lora-unless-dora-wins" in verdict
    data = json.loads(cli("compare", a, b, "--json")[1])
    assert data["verdict"]["keep"] is None and data["verdict"]["inconclusive"] is True


def test_the_table_shows_eval_rows_and_the_median_step(tmp_path, cli):
    a = write_run(tmp_path / "lora", run_record("lora", 5.0))
    b = write_run(tmp_path / "dora", run_record("dora", 4.0))
    out = cli("compare", a, b)[1]
    assert "eval rows" in out and "held-out rows" in out
    median = next(line for line in out.splitlines() if line.startswith("median step time"))
    assert "0.015 s" in median and "0.02 s" in median  # one slow step does not move it


def test_runs_written_before_the_planned_split_still_compare(tmp_path, cli):
    old = {"rows": {"train": 30, "eval": 10}}
    a = write_run(tmp_path / "lora", run_record("lora", 5.0, **old))
    b = write_run(tmp_path / "dora", run_record("dora", 4.0, **old))
    assert "verdict: keep dora:" in cli("compare", a, b)[1]


PREFERENCE = {
    "method": "dpo",
    "steps": 12,
    "eval_rows": 6,
    "losses": [0.6931, 0.51, 0.42],
    "reward_accuracy": {"before": 0.0, "after": 0.8333},
    "reward_margin": {"before": 0.0, "after": 0.42},
}


def test_the_preference_phase_has_its_rows_in_the_table(tmp_path, cli):
    a = write_run(tmp_path / "lora", run_record("lora", 5.0, preference=PREFERENCE))
    b = write_run(tmp_path / "dora", run_record("dora", 4.0))
    out = cli("compare", a, b)[1]
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert lines["preference method"].split()[-3:] == ["dpo", "-", "-"]  # B had none
    assert "0.8333" in lines["reward accuracy"] and "0.42" in lines["reward margin"]
    assert "6" in lines["preference eval triples"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"method": "ppo"}, "preference.method"),
        ({"reward_accuracy": {"before": 0.0, "after": 1.5}}, "preference.reward_accuracy"),
        ({"reward_margin": {"before": 0.0, "after": float("nan")}}, "preference.reward_margin"),
        ({"steps": -1}, "preference.steps"),
        ({"losses": "many"}, "preference.losses"),
    ],
)
def test_a_broken_preference_record_is_a_located_error(tmp_path, cli, change, field):
    record = run_record("lora", 5.0, preference={**PREFERENCE, **change})
    directory = tmp_path / "broken"
    directory.mkdir()
    (directory / "run.json").write_text(json.dumps({"adapters": [record]}).replace("NaN", "1e999"))
    b = write_run(tmp_path / "dora", run_record("dora", 4.0))
    code, _, err = cli("compare", directory, b)
    assert code == 1 and f"adapters[0].{field}" in err and "Traceback" not in err


def test_packing_and_tokens_have_rows_and_older_runs_show_none(tmp_path, cli):
    packed = {"packing": {"on": True}, "tokens_trained": 900, "padding_tokens": 30}
    unpacked = {"packing": {"on": False}, "tokens_trained": 900, "padding_tokens": 400}
    a = write_run(tmp_path / "a", run_record("lora", 5.0, **unpacked))
    b = write_run(tmp_path / "b", run_record("dora", 4.0, **packed))
    old = write_run(tmp_path / "old", run_record("dora", 4.0))  # written before packing
    code, out, _ = cli("compare", a, b, "--json")
    assert code == 0
    rows = {row["figure"]: row for row in json.loads(out)["figures"]}
    assert (rows["packed"]["a"], rows["packed"]["b"]) == ("no", "yes")
    assert rows["padding tokens"]["relative"] == pytest.approx(-370 / 400)
    code, out, _ = cli("compare", a, old, "--json")
    rows = {row["figure"]: row for row in json.loads(out)["figures"]}
    assert code == 0 and rows["packed"]["b"] is None and rows["tokens trained"]["b"] is None

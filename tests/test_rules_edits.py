"""Behaviour follows the tables: editing a row changes plans with no Python touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dlm_gen.document import load_document
from dlm_gen.plan import make_plans
from dlm_gen.rules import load_rules
from tests.conftest import write_dlm


def galore_plan(tmp_path, rules_dir, target="a100-80gb"):
    path = write_dlm(
        tmp_path, {"base_model": "smollm2-135m", "training": {"optimizer": "galore_adamw"}}
    )
    [plan] = make_plans(load_document(path), load_rules(rules_dir), target)
    return plan


def test_editing_the_small_base_threshold(tmp_path, rules_copy):
    table = rules_copy / "optimizer.yaml"
    table.write_text(
        table.read_text().replace("base.params: {lt: 1000000000}", "base.params: {lt: 100000000}")
    )
    assert "galore-small-base" in galore_plan(tmp_path, None).reason()
    assert "galore-small-base" not in galore_plan(tmp_path, rules_copy).reason()


def test_removing_a_warning_row(tmp_path, rules_copy):
    table = rules_copy / "optimizer.yaml"
    text = table.read_text()
    start = text.index("  - id: galore-with-adapter")
    end = text.index("  - id: galore-8bit-needs-cuda")
    table.write_text(text[:start] + text[end:])
    assert "galore-with-adapter" not in galore_plan(tmp_path, rules_copy).reason()


def test_adding_a_refusal_row(tmp_path, rules_copy):
    with (rules_copy / "optimizer.yaml").open("a") as handle:
        handle.write(
            "\n  - id: no-galore-on-small-bases\n    why: x\n"
            "    when: {training.optimizer: galore_adamw, base.params: {lt: 1000000000}}\n"
            "    refuse: {message: 'team policy: no GaLore below 1B ({base.params|size})'}\n"
        )
    plan = galore_plan(tmp_path, rules_copy)
    assert [(r.id, r.message) for r in plan.refusals] == [
        ("no-galore-on-small-bases", "team policy: no GaLore below 1B (135M)")
    ]


def test_changing_a_target_profile(tmp_path, rules_copy):
    table = rules_copy / "targets.yaml"
    table.write_text(
        table.read_text().replace(
            "compute_capability: 8.0, memory_gb: 80", "compute_capability: 7.0, memory_gb: 80", 1
        )
    )
    assert galore_plan(tmp_path, rules_copy, "a100-80gb").fields["precision"] == "fp16"


def price_optimizer(rules_copy, name: str, state_bytes: int) -> None:
    memory = rules_copy / "memory.yaml"
    text = memory.read_text()
    memory.write_text(
        text.replace(
            "optimizer_state_bytes: {", f"optimizer_state_bytes: {{{name}: {state_bytes}, ", 1
        )
    )


def test_an_optimizer_the_memory_table_does_not_price_is_a_load_error(rules_copy):
    from dlm_gen.rules import RulesError

    vocabulary = rules_copy / "vocabulary.yaml"
    vocabulary.write_text(
        vocabulary.read_text().replace(
            "    - galore_adamw_8bit_layerwise\n", "    - galore_adamw_8bit_layerwise\n    - lion\n"
        )
    )
    env = {**os.environ, "DLM_GEN_RULES": str(rules_copy)}
    probe = "from dlm_gen.rules import load_rules; load_rules()"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert "optimizer_state_bytes has no entry for lion" in done.stderr
    assert RulesError.__name__ in done.stderr


def test_adding_an_optimizer_is_a_table_edit(tmp_path, rules_copy):
    """The README's recipe: vocabulary + one optimizer row; no Python changes."""
    vocabulary = rules_copy / "vocabulary.yaml"
    vocabulary.write_text(
        vocabulary.read_text().replace(
            "    - galore_adamw_8bit_layerwise\n",
            "    - galore_adamw_8bit_layerwise\n    - adafactor\n",
        )
    )
    with (rules_copy / "optimizer.yaml").open("a") as handle:
        handle.write(
            "\n  - id: optim-adafactor\n    why: x\n"
            "    when: {training.optimizer: adafactor}\n"
            "    set: {optim: adafactor}\n"
        )
    price_optimizer(rules_copy, "adafactor", 4)  # its state bytes, for the memory estimate
    path = write_dlm(
        tmp_path, {"base_model": "smollm2-135m", "training": {"optimizer": "adafactor"}}
    )
    env = {**os.environ, "DLM_GEN_RULES": str(rules_copy)}
    explain = subprocess.run(
        [sys.executable, "-m", "dlm_gen", "explain", str(path), "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert explain.returncode == 0, explain.stderr
    assert json.loads(explain.stdout)["plan"]["optim"] == "adafactor"
    schema = subprocess.run(
        [sys.executable, "-m", "dlm_gen", "schema"], capture_output=True, text=True, env=env
    )
    enum = json.loads(schema.stdout)["$defs"]["TrainingConfig"]["properties"]["optimizer"]["enum"]
    assert "adafactor" in enum
    # With the shipped tables the same document is invalid: the name is not in the vocabulary.
    shipped = subprocess.run(
        [sys.executable, "-m", "dlm_gen", "explain", str(path)], capture_output=True, text=True
    )
    assert shipped.returncode == 1 and "training.optimizer" in shipped.stderr


def test_a_vocabulary_value_without_rows_is_caught_by_the_engine(tmp_path, rules_copy):
    vocabulary = rules_copy / "vocabulary.yaml"
    vocabulary.write_text(
        vocabulary.read_text().replace(
            "    - galore_adamw_8bit_layerwise\n", "    - galore_adamw_8bit_layerwise\n    - lion\n"
        )
    )
    price_optimizer(rules_copy, "lion", 8)
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m", "training": {"optimizer": "lion"}})
    env = {**os.environ, "DLM_GEN_RULES": str(rules_copy)}
    result = subprocess.run(
        [sys.executable, "-m", "dlm_gen", "explain", str(path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 1
    assert "undecided-plan-field" in result.stderr and "plan.optim" in result.stderr


def test_a_new_galore_variant_is_one_set_entry_for_every_galore_row(tmp_path, rules_copy):
    """Named sets: the rows that ask "is this GaLore?" follow rules/sets.yaml."""
    sets = rules_copy / "sets.yaml"
    sets.write_text(sets.read_text().replace("    - galore_adamw_8bit_layerwise\n", "", 1))
    path = write_dlm(
        tmp_path,
        {"base_model": "smollm2-135m", "training": {"optimizer": "galore_adamw_8bit_layerwise"}},
    )
    [plan] = make_plans(load_document(path), load_rules(rules_copy), "h100")
    assert plan.fields["galore"] is False and plan.fields["optim_target_modules"] is None
    [shipped] = make_plans(load_document(path), load_rules(), "h100")
    assert shipped.fields["galore"] is True
    assert shipped.fields["optim_target_modules"] == [".*attn.*", ".*mlp.*"]  # the default


def test_a_document_knob_wins_over_the_rows_default(tmp_path):
    path = write_dlm(
        tmp_path,
        {
            "base_model": "smollm2-135m",
            "training": {"optimizer": "galore_adamw", "galore_rank": 16},
        },
    )
    [plan] = make_plans(load_document(path), load_rules(), "h100")
    assert (plan.fields["galore_rank"], plan.fields["galore_scale"]) == (16, 0.25)
    decided = {d.field: d.rule for d in plan.decisions}
    assert decided["galore_rank"] == decided["galore_scale"] == "galore-on"


def test_an_unknown_set_name_is_a_located_error(rules_copy):
    from dlm_gen.rules import RulesError

    table = rules_copy / "galore.yaml"
    table.write_text(table.read_text().replace("{in_set: galore_optimizers}", "{in_set: galore}"))
    with pytest.raises(RulesError, match=r"rules/galore\.yaml:\d+: rule galore-on: unknown set"):
        load_rules(rules_copy)

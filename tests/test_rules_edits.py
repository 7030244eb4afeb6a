"""Behaviour follows the tables: editing a row changes plans with no Python touched."""

from __future__ import annotations

import json

import pytest

from dlm_gen.errors import DlmError
from dlm_gen.pipeline import read_document
from dlm_gen.plan import make_plans
from dlm_gen.rules import load_rules
from tests.conftest import write_dlm


def galore_plan(tmp_path, rules_dir, target="a100-80gb"):
    path = write_dlm(
        tmp_path, {"base_model": "smollm2-135m", "training": {"optimizer": "galore_adamw"}}
    )
    rules = load_rules(rules_dir)
    [plan] = make_plans(read_document(path, rules=rules), rules, target)
    return plan


def test_editing_the_small_base_threshold(tmp_path, rules_copy):
    table = rules_copy / "galore.yaml"
    table.write_text(
        table.read_text().replace("base.params: {lt: 1000000000}", "base.params: {lt: 100000000}")
    )
    assert "galore-small-base" in galore_plan(tmp_path, None).reason()
    assert "galore-small-base" not in galore_plan(tmp_path, rules_copy).reason()


def test_removing_a_warning_row(tmp_path, rules_copy):
    table = rules_copy / "galore.yaml"
    text = table.read_text()
    table.write_text(text[: text.index("  - id: galore-with-adapter")])
    assert "galore-with-adapter" in galore_plan(tmp_path, None).reason()
    assert "galore-with-adapter" not in galore_plan(tmp_path, rules_copy).reason()


def test_adding_a_refusal_row(tmp_path, rules_copy):
    with (rules_copy / "optimizer.yaml").open("a") as handle:
        handle.write(
            "\n  - id: optim-no-galore-on-small-bases\n    why: x\n"
            "    when: {training.optimizer: galore_adamw, base.params: {lt: 1000000000}}\n"
            "    refuse: {message: 'team policy: no GaLore below 1B ({base.params|size})'}\n"
        )
    plan = galore_plan(tmp_path, rules_copy)
    assert [(r.id, r.message) for r in plan.refusals] == [
        ("optim-no-galore-on-small-bases", "team policy: no GaLore below 1B (135M)")
    ]


def test_a_rule_id_names_its_table(rules_copy):
    """One id convention: every id starts with its table's id_prefix."""
    from dlm_gen.rules import RulesError

    with (rules_copy / "optimizer.yaml").open("a") as handle:
        handle.write("\n  - id: no-galore\n    why: x\n    when: {training.lora_r: 3}\n")
        handle.write("    refuse: {message: nope}\n")
    with pytest.raises(
        RulesError,
        match=r"rules/optimizer\.yaml:\d+: rule id 'no-galore' does "
        r"not start with 'optim-'",
    ):
        load_rules(rules_copy)
    shipped = load_rules()
    assert all(r.id.startswith(t.id_prefix + "-") for t in shipped.tables for r in t.rules)


def test_changing_a_target_profile(tmp_path, rules_copy):
    table = rules_copy / "targets.yaml"
    table.write_text(
        table.read_text().replace(
            "compute_capability: 8.0, memory_gb: 80", "compute_capability: 7.0, memory_gb: 80", 1
        )
    )
    assert galore_plan(tmp_path, rules_copy, "a100-80gb").fields["precision"] == "fp16"


ADAFACTOR = """
  adafactor:
    hf_name: adafactor
    family: adafactor
    layerwise: false
    eight_bit: false
    needs_cuda: false
    require: []
    state_bytes: 4
    why: factored second moments, no first moment
"""


def test_adding_an_optimizer_is_one_table_entry(tmp_path, rules_copy):
    """The README's recipe: one entry in optimizers.yaml; no Python, no other table."""
    with (rules_copy / "optimizers.yaml").open("a") as handle:
        handle.write(ADAFACTOR)
    rules = load_rules(rules_copy)
    path = write_dlm(
        tmp_path, {"base_model": "smollm2-135m", "training": {"optimizer": "adafactor"}}
    )
    [plan] = make_plans(read_document(path, rules=rules), rules, "h100")
    assert plan.fields["optim"] == "adafactor" and not plan.refused
    assert {d.field: d.rule for d in plan.decisions}["optim"] == "optim-adafactor"
    assert plan.fields["galore"] is False  # not in the galore family: no GaLore knob
    # The memory estimate prices its state from the entry: 4 bytes, half of AdamW's 8.
    (tmp_path / "b").mkdir()
    [adamw] = make_plans(
        read_document(write_dlm(tmp_path / "b", {"base_model": "smollm2-135m"})), rules, "h100"
    )
    assert plan.memory["memory.optimizer_gb"] == pytest.approx(
        adamw.memory["memory.optimizer_gb"] / 2, rel=0.02
    )
    enum = json.loads(rules.models().json_schema())["$defs"]["TrainingConfig"]["properties"]
    assert "adafactor" in enum["optimizer"]["enum"]
    # With the shipped tables the same document is invalid: the name is not in the vocabulary.
    with pytest.raises(DlmError, match="optimizer"):
        read_document(path)


@pytest.mark.parametrize("column", ["state_bytes", "hf_name", "needs_cuda", "why"])
def test_an_optimizer_entry_without_a_column_is_a_located_error(rules_copy, column):
    """An unpriced optimizer cannot load, so the memory estimate never guesses."""
    from dlm_gen.rules import RulesError

    entry = "\n".join(line for line in ADAFACTOR.splitlines() if f" {column}:" not in line)
    with (rules_copy / "optimizers.yaml").open("a") as handle:
        handle.write(entry + "\n")
    with pytest.raises(RulesError, match=rf"rules/optimizers\.yaml:\d+: .*{column}"):
        load_rules(rules_copy)


def test_a_vocabulary_value_without_rows_is_caught_by_the_engine(tmp_path, rules_copy):
    vocabulary = rules_copy / "vocabulary.yaml"
    vocabulary.write_text(
        vocabulary.read_text().replace(
            "adapter: [lora, qlora, dora, full]", "adapter: [lora, qlora, dora, full, vera]"
        )
    )
    rules = load_rules(rules_copy)
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m", "training": {"adapter": "vera"}})
    [plan] = make_plans(read_document(path, rules=rules), rules, "h100")
    refused = {r.id: r.message for r in plan.refusals}
    assert "undecided-plan-field" in refused, refused
    assert "the rule tables have a gap" in refused["undecided-plan-field"]


def test_a_new_galore_variant_is_one_entry_for_every_galore_row(tmp_path, rules_copy):
    """The rows that ask "is this GaLore?" read the family column of optimizers.yaml."""
    with (rules_copy / "optimizers.yaml").open("a") as handle:
        handle.write(
            ADAFACTOR.replace("adafactor:", "galore_custom:").replace(
                "family: adafactor", "family: galore"
            )
        )
    rules = load_rules(rules_copy)
    path = write_dlm(
        tmp_path, {"base_model": "smollm2-135m", "training": {"optimizer": "galore_custom"}}
    )
    [plan] = make_plans(read_document(path, rules=rules), rules, "h100")
    assert plan.fields["galore"] is True
    assert plan.fields["optim_target_modules"] == [".*attn.*", ".*mlp.*"]  # the default
    assert "warn=galore-small-base(135M<1B)" in plan.reason()


def test_a_document_knob_wins_over_the_rows_default(tmp_path):
    path = write_dlm(
        tmp_path,
        {
            "base_model": "smollm2-135m",
            "training": {"optimizer": "galore_adamw", "galore_rank": 16},
        },
    )
    [plan] = make_plans(read_document(path), load_rules(), "h100")
    assert (plan.fields["galore_rank"], plan.fields["galore_scale"]) == (16, 0.25)
    decided = {d.field: d.rule for d in plan.decisions}
    assert decided["galore_rank"] == decided["galore_scale"] == "galore-on"


def test_a_named_set_is_declared_once_and_read_by_rows(tmp_path, rules_copy):
    (rules_copy / "sets.yaml").write_text(
        "kind: sets\nsets:\n  eight_bit: [adamw_bnb_8bit, paged_adamw_8bit]\n"
    )
    with (rules_copy / "optimizer.yaml").open("a") as handle:
        handle.write(
            "\n  - id: optim-no-8bit\n    why: x\n"
            "    when: {training.optimizer: {in_set: eight_bit}}\n"
            "    refuse: {message: 'team policy: no 8-bit optimizers'}\n"
        )
    rules = load_rules(rules_copy)
    for optimizer, refused in [("paged_adamw_8bit", True), ("adamw_torch", False)]:
        path = write_dlm(
            tmp_path, {"base_model": "smollm2-135m", "training": {"optimizer": optimizer}}
        )
        [plan] = make_plans(read_document(path), rules, "h100")
        assert ("optim-no-8bit" in {r.id for r in plan.refusals}) is refused


def test_an_unknown_set_name_is_a_located_error(rules_copy):
    from dlm_gen.rules import RulesError

    table = rules_copy / "galore.yaml"
    table.write_text(
        table.read_text().replace(
            "when: {optimizer.family: galore}", "when: {training.optimizer: {in_set: galore}}", 1
        )
    )
    with pytest.raises(RulesError, match=r"rules/galore\.yaml:\d+: rule galore-on: unknown set"):
        load_rules(rules_copy)

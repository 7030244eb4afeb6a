"""Broken tables fail when they load, naming file, line and the rules involved."""

from __future__ import annotations

import pytest

from dlm_gen.errors import RulesError
from dlm_gen.rules import load_rules


def append(path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def load_error(directory) -> str:
    with pytest.raises(RulesError) as caught:
        load_rules(directory)
    return str(caught.value)


def test_shipped_tables_load():
    rules = load_rules()
    assert {"precision", "optimizer", "adapter"} <= {t.name for t in rules.tables}
    assert rules.default_target in rules.targets


def test_overlapping_rules_setting_different_values_are_an_error(rules_copy):
    append(
        rules_copy / "galore.yaml",
        "\n  - id: galore-shadow\n    why: x\n"
        "    when: {optimizer.layerwise: true}\n"
        "    set: {galore_rank: 4}\n",
    )
    message = load_error(rules_copy)
    assert "galore-on" in message and "galore-shadow" in message
    assert "plan.galore_rank" in message and "4" in message
    assert "rules/galore.yaml:" in message


def test_exclusive_conditions_on_an_open_fact_are_not_an_overlap(rules_copy):
    append(
        rules_copy / "batching.yaml",
        "\n  - id: batch-accum-big-rank\n    why: x\n"
        "    when: {training.lora_r: {gt: 64}}\n"
        "    set: {accum_hint: 1}\n"
        "\n  - id: batch-accum-small-rank\n    why: x\n"
        "    when: {training.lora_r: {le: 64}}\n"
        "    set: {accum_hint: 2}\n",
    )
    rules = load_rules(rules_copy)
    assert "accum_hint" in rules.plan_fields


def test_touching_intervals_are_an_overlap(rules_copy):
    append(
        rules_copy / "batching.yaml",
        "\n  - id: batch-accum-big-rank\n    why: x\n"
        "    when: {training.lora_r: {ge: 64}}\n"
        "    set: {accum_hint: 1}\n"
        "\n  - id: batch-accum-small-rank\n    why: x\n"
        "    when: {training.lora_r: {le: 64}}\n"
        "    set: {accum_hint: 2}\n",
    )
    message = load_error(rules_copy)
    assert "batch-accum-big-rank" in message and "batch-accum-small-rank" in message


def test_dependency_cycle_names_both_rules(rules_copy):
    (rules_copy / "zz_left.yaml").write_text(
        "kind: rules\nid_prefix: left\nhit_policy: collect\nrules:\n"
        "  - id: left-from-right\n    why: x\n    when: {plan.right: 1}\n    set: {left: 1}\n"
    )
    (rules_copy / "zz_right.yaml").write_text(
        "kind: rules\nid_prefix: right\nhit_policy: collect\nrules:\n"
        "  - id: right-from-left\n    why: x\n    when: {plan.left: 1}\n    set: {right: 1}\n"
    )
    message = load_error(rules_copy)
    assert "dependency cycle" in message
    assert "left-from-right (rules/zz_left.yaml:5)" in message
    assert "right-from-left (rules/zz_right.yaml:5)" in message


def test_unknown_fact_gets_a_did_you_mean(rules_copy):
    append(
        rules_copy / "corpus.yaml",
        "\n  - id: typo-rule\n    why: x\n    when: {training.optimiser: adamw_torch}\n"
        "    warn: {token: t, message: m}\n",
    )
    message = load_error(rules_copy)
    assert "typo-rule" in message and "unknown fact 'training.optimiser'" in message
    assert "did you mean 'training.optimizer'?" in message


def test_schema_violation_names_file_line_and_rule(rules_copy):
    append(
        rules_copy / "corpus.yaml",
        "\n  - id: no-effect\n    why: x\n    when: {corpus.text_rows: 1}\n",
    )
    message = load_error(rules_copy)
    assert "rules/corpus.yaml:" in message and "(rule no-effect)" in message


def test_bad_rule_id_is_a_schema_error(rules_copy):
    append(
        rules_copy / "corpus.yaml",
        "\n  - id: Not_Kebab\n    why: x\n    warn: {token: t, message: m}\n",
    )
    assert "Not_Kebab" in load_error(rules_copy)


def test_duplicate_rule_id(rules_copy):
    append(
        rules_copy / "corpus.yaml",
        "\n  - id: adapter-dora\n    why: x\n    warn: {token: t, message: m}\n",
    )
    message = load_error(rules_copy)
    assert "rule id 'adapter-dora' is also used at rules/adapter.yaml:" in message


def test_requirement_must_be_pep508(rules_copy):
    append(
        rules_copy / "corpus.yaml",
        "\n  - id: bad-req\n    why: x\n    require: ['peft >>= 1']\n",
    )
    message = load_error(rules_copy)
    assert "bad-req" in message and "not PEP 508" in message


def test_one_table_owns_each_field(rules_copy):
    append(
        rules_copy / "corpus.yaml",
        "\n  - id: corpus-sets-optim\n"
        "    why: x\n"
        "    when: {corpus.text_rows: 0}\n"
        "    set: {optim: sgd}\n",
    )
    message = load_error(rules_copy)
    assert "plan.optim is set by more than one table" in message
    assert "'corpus' (rule corpus-sets-optim at rules/corpus.yaml:" in message
    assert "'optimizers' (rule optim-adamw-torch at rules/optimizers.yaml:" in message


def test_duplicate_yaml_key_in_a_table(rules_copy):
    append(
        rules_copy / "corpus.yaml",
        "\n  - id: dup-key\n    why: x\n    require: [torch]\n    require: [peft]\n",
    )
    message = load_error(rules_copy)
    assert "rules/corpus.yaml:" in message and "duplicate key" in message


def test_reading_a_field_before_its_own_table_sets_it(rules_copy):
    text = (rules_copy / "attention.yaml").read_text()
    moved = text.replace(
        "rules:\n",
        "rules:\n  - id: early-reader\n    why: x\n    when: {plan.attn: eager}\n"
        "    warn: {token: t, message: m}\n\n",
        1,
    )
    (rules_copy / "attention.yaml").write_text(moved)
    message = load_error(rules_copy)
    assert "early-reader reads plan.attn" in message


def test_unknown_formatter_in_a_template(rules_copy):
    append(
        rules_copy / "corpus.yaml",
        "\n  - id: bad-format\n"
        "    why: x\n"
        "    warn: {token: 'x({base.params|huge})', message: m}\n",
    )
    assert "unknown formatter '|huge'" in load_error(rules_copy)


def test_all_problems_are_reported_together(rules_copy):
    append(
        rules_copy / "corpus.yaml",
        "\n  - id: typo-one\n"
        "    why: x\n"
        "    when: {training.optimiser: x}\n"
        "    warn: {token: t, message: m}\n"
        "\n  - id: typo-two\n"
        "    why: x\n"
        "    when: {base.paramz: 1}\n"
        "    warn: {token: t, message: m}\n",
    )
    message = load_error(rules_copy)
    assert "typo-one" in message and "typo-two" in message


@pytest.mark.parametrize(
    ("when", "why"),
    [
        (
            "{training.optimizer: {in: [adamw_torch], not_in: [adamw_torch]}}",
            "training.optimizer in [adamw_torch] and training.optimizer not in [adamw_torch]",
        ),
        ("{target.memory_gb: {lt: 10, gt: 20}}", "target.memory_gb<10 and target.memory_gb>20"),
        ("{plan.strategy: pipeline}", "plan.strategy=pipeline"),
    ],
)
def test_a_row_that_can_never_fire_is_an_error(rules_copy, when, why):
    table = rules_copy / "runtime.yaml"
    table.write_text(
        table.read_text() + f"\n  - id: dead-row\n"
        f"    why: x\n"
        f"    when: {when}\n"
        f"    warn: {{token: dead, message: never}}\n"
    )
    with pytest.raises(RulesError) as raised:
        load_rules(rules_copy)
    message = str(raised.value)
    assert "rule dead-row can never fire" in message and why in message


def test_every_row_says_why(rules_copy):
    """explain --verbose shows `why`: a row without one is a schema error at its line."""
    append(rules_copy / "corpus.yaml", "\n  - id: silent-row\n    warn: {token: t, message: m}\n")
    message = load_error(rules_copy)
    assert "rules/corpus.yaml:" in message and "(rule silent-row)" in message
    assert "'why' is a required property" in message


def test_the_former_hit_policy_name_still_loads(rules_copy):
    table = rules_copy / "lora.yaml"
    table.write_text(table.read_text().replace("hit_policy: collect", "hit_policy: unique"))
    [lora] = [t for t in load_rules(rules_copy).tables if t.name == "lora"]
    assert lora.hit_policy == "collect"


def test_plain_requirements_read_without_packaging_equal_packagings_reading():
    """A receipt lets the loader skip importing packaging for plain PEP 508 strings;
    the fast reading must be exactly packaging's."""
    from dlm_gen import rules as rules_module

    texts = {str(req) for t in load_rules().tables for r in t.rules for req in r.require}
    texts |= {"peft >= 0.9", "Galore_Torch", "torch>=2.2,<3", "trl[vllm]>=0.20", "a.b-c==1.0.*"}
    for text in sorted(texts):
        plain = rules_module._plain_requirement(text)
        assert plain is not None, text
        assert plain == rules_module._requirement(text), text
    assert rules_module._plain_requirement("torch; python_version < '3.12'") is None  # marker

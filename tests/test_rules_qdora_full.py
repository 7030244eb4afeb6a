"""adapter.yaml beyond the seed: QDoRA, the use_dora contradiction, full fine-tuning."""

from __future__ import annotations

import json

import pytest

from dlm_gen.pipeline import read_document
from dlm_gen.plan import make_plans
from dlm_gen.rules import load_rules
from tests.conftest import plan_of, rendered_script, script_plans, write_dlm


def test_qdora_is_qlora_plus_dora_with_both_requirements(tmp_path, cli):
    path = write_dlm(
        tmp_path,
        {"base_model": "llama-3.2-3b", "training": {"adapter": "qlora", "use_dora": True}},
    )
    code, out, _ = cli("explain", path, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["plan"]["use_dora"] is True and data["plan"]["qlora"] is True
    assert {"peft>=0.10", "bitsandbytes>=0.42"} <= set(data["requirements"])
    assert "adapter=qdora" in data["reason"] and "qlora=on" in data["reason"]


def test_qdora_script_loads_4bit_and_uses_dora(tmp_path):
    path = write_dlm(
        tmp_path,
        {"base_model": "llama-3.2-3b", "training": {"adapter": "qlora", "use_dora": True}},
    )
    text = rendered_script(path, "h100")
    [plan] = script_plans(text)
    assert plan["load_in_4bit"] is True and plan["use_dora"] is True
    assert plan["bnb_4bit_quant_type"] == "nf4"


@pytest.mark.parametrize("adapter", ["lora", "dora"])
def test_use_dora_true_is_dora(tmp_path, adapter):
    plan = plan_of(tmp_path, {"adapter": adapter, "use_dora": True})
    assert plan.fields["adapter"] == "dora" and plan.fields["use_dora"] is True
    assert "peft>=0.9" in plan.requirements


def test_dora_with_use_dora_false_is_a_contradiction(tmp_path, cli):
    path = write_dlm(
        tmp_path,
        {"base_model": "smollm2-135m", "training": {"adapter": "dora", "use_dora": False}},
    )
    code, _, err = cli("explain", path)
    assert code == 1
    assert "training.use_dora" in err and "contradicts" in err
    assert f"{path}:5:" in err  # the use_dora line


def test_per_adapter_use_dora(tmp_path):
    front = {
        "base_model": "smollm2-135m",
        "training": {"adapters": {"a": {"adapter": "qlora", "use_dora": True}, "b": {}}},
    }
    document = read_document(write_dlm(tmp_path, front))
    plans = {p.adapter_name: p for p in make_plans(document, load_rules(), "cpu")}
    assert plans["a"].fields["adapter"] == "qdora" and not plans["a"].refused
    assert plans["b"].fields["use_dora"] is False


def test_full_fine_tuning_has_no_peft_and_no_adapter_warning(tmp_path):
    plan = plan_of(tmp_path, {"adapter": "full", "optimizer": "galore_adamw"})
    assert plan.fields["peft"] is False and plan.fields["qlora"] is False
    ids = [w.id for w in plan.warnings]
    assert "galore-small-base" in ids  # still: the base is small
    assert "galore-with-adapter" not in ids  # the saving is real without an adapter
    assert "adapter=full" in plan.reason()


def test_full_fine_tuning_with_dora_is_refused(tmp_path):
    plan = plan_of(tmp_path, {"adapter": "full", "use_dora": True})
    assert [r.id for r in plan.refusals] == ["adapter-full-with-dora"]


def test_full_fine_tuning_never_loads_the_base_in_4bit(tmp_path):
    """4-bit loading is QLoRA's (adapter: qlora); full fine-tuning trains unquantized weights."""
    plan = plan_of(tmp_path, {"adapter": "full"}, target="h100")
    assert plan.fields["load_in_4bit"] is False and not plan.refused

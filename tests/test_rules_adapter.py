"""adapter.yaml and quantization.yaml: adapter kind -> PEFT flags and 4-bit loading."""

import pytest

from tests.conftest import plan_of


def test_dora_sets_use_dora_and_needs_peft_0_9(tmp_path):
    plan = plan_of(tmp_path, {"adapter": "dora"})
    assert plan.fields["use_dora"] is True
    assert plan.fields["qlora"] is False
    assert "peft>=0.9" in plan.requirements
    assert "adapter=dora" in plan.reason()
    assert [d.rule for d in plan.decisions if d.field == "use_dora"] == ["adapter-dora"]


def test_lora_has_no_dora_requirement_and_no_adapter_token(tmp_path):
    plan = plan_of(tmp_path, {"adapter": "lora"})
    assert plan.fields["use_dora"] is False
    assert "peft" in plan.requirements and "peft>=0.9" not in plan.requirements
    assert "adapter=" not in plan.reason()


@pytest.mark.parametrize(
    ("target", "precision", "compute_dtype"),
    [("a100-80gb", "bf16", "bfloat16"), ("t4", "fp16", "float16"), ("cpu", "fp32", "float32")],
)
def test_qlora_loads_nf4_double_quant_with_compute_dtype_of_precision(
    tmp_path, target, precision, compute_dtype
):
    plan = plan_of(tmp_path, {"adapter": "qlora"}, target=target)
    fields = plan.fields
    assert fields["qlora"] is True and fields["load_in_4bit"] is True
    assert fields["bnb_4bit_quant_type"] == "nf4"
    assert fields["bnb_4bit_use_double_quant"] is True
    assert fields["precision"] == precision
    assert fields["bnb_4bit_compute_dtype"] == compute_dtype
    assert "bitsandbytes" in plan.requirements
    assert "qlora=on" in plan.reason() and "adapter=" not in plan.reason()
    assert not plan.refused  # measured: 4-bit NF4 trains on the CPU with bitsandbytes 0.50


def test_non_qlora_loads_unquantized(tmp_path):
    fields = plan_of(tmp_path, {"adapter": "dora"}).fields
    assert fields["load_in_4bit"] is False
    assert fields["bnb_4bit_compute_dtype"] is None

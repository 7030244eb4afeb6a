"""precision.yaml, dtype.yaml and attention.yaml: precision, dtype, attention by target."""

import pytest

from tests.conftest import plan_of


@pytest.mark.parametrize(
    ("target", "precision"),
    [
        ("cpu", "fp32"),
        ("t4", "fp16"),
        ("v100-16gb", "fp16"),
        ("a10g", "bf16"),
        ("l4", "bf16"),
        ("a100-40gb", "bf16"),
        ("a100-80gb", "bf16"),
        ("h100", "bf16"),
        ("h200", "bf16"),
    ],
)
def test_precision_follows_the_target(tmp_path, target, precision):
    plan = plan_of(tmp_path, {}, target=target)
    assert plan.fields["precision"] == precision
    assert plan.reason().startswith(f"precision={precision}, ")


def test_document_precision_overrides_the_target(tmp_path):
    plan = plan_of(tmp_path, {"precision": "fp32"}, target="h100")
    assert plan.fields["precision"] == "fp32"
    assert plan.fields["torch_dtype"] == "float32"
    decision = next(d for d in plan.decisions if d.field == "precision")
    assert decision.rule == "precision-from-document"
    assert decision.source.startswith("rules/precision.yaml:")


def test_bf16_is_refused_on_a_target_without_it(tmp_path):
    plan = plan_of(tmp_path, {"precision": "bf16"}, target="t4")
    assert [r.id for r in plan.refusals] == ["dtype-bf16-unsupported-target"]
    assert "Tesla T4" in plan.refusals[0].message


@pytest.mark.parametrize(
    ("precision", "flags"),
    [("bf16", ("bfloat16", True, False)), ("fp16", ("float16", False, True))],
)
def test_dtype_and_trainer_flags_follow_precision(tmp_path, precision, flags):
    fields = plan_of(tmp_path, {"precision": precision}, target="a10g").fields
    assert (fields["torch_dtype"], fields["bf16"], fields["fp16"]) == flags


def test_attention_is_sdpa_by_default_on_cpu_and_gpu(tmp_path):
    assert plan_of(tmp_path, {}, target="cpu").fields["attn"] == "sdpa"
    assert plan_of(tmp_path, {}, target="h100").fields["attn"] == "sdpa"


def test_flash_attention_only_where_the_target_declares_it(tmp_path):
    ok = plan_of(tmp_path, {"attention": "flash_attention_2"}, target="h100")
    assert ok.fields["attn"] == "flash_attention_2" and not ok.refused
    assert "flash-attn>=2" in ok.requirements
    refused = plan_of(tmp_path, {"attention": "flash_attention_2"}, target="t4")
    assert "attn-flash-unsupported-target" in [r.id for r in refused.refusals]


def test_flash_attention_refuses_fp32(tmp_path):
    plan = plan_of(tmp_path, {"attention": "flash_attention_2", "precision": "fp32"}, target="l4")
    assert [r.id for r in plan.refusals] == ["attn-flash-needs-half-precision"]

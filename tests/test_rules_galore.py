"""galore.yaml: knobs reach optim_args, refusals when they cannot, layer-wise limits."""

from __future__ import annotations

import pytest

from dlm_gen.pipeline import read_document
from dlm_gen.plan import make_plans
from dlm_gen.rules import load_rules
from dlm_gen.runtime.sft import galore_optim_args
from tests.conftest import plan_of, rendered_script, script_plans, write_dlm

KNOBS = {
    "galore_rank": 64,
    "galore_update_proj_gap": 50,
    "galore_scale": 0.5,
    "galore_proj_type": "reverse_std",
}


def test_knobs_default_to_the_trainer_defaults(tmp_path):
    fields = plan_of(tmp_path, {"optimizer": "galore_adamw"}).fields
    assert (fields["galore_rank"], fields["galore_update_proj_gap"]) == (128, 200)
    assert (fields["galore_scale"], fields["galore_proj_type"]) == (0.25, "std")


def test_knobs_reach_the_rendered_optim_args(tmp_path):
    training = {"optimizer": "galore_adamw", **KNOBS, "galore_target_modules": ["self_attn"]}
    path = write_dlm(tmp_path, {"base_model": "llama-3.1-8b", "training": training})
    [plan] = script_plans(rendered_script(path, "h100"))
    assert galore_optim_args(plan) == ("rank=64,update_proj_gap=50,scale=0.5,proj_type=reverse_std")
    assert plan["optim_target_modules"] == ["self_attn"]


@pytest.mark.parametrize("knob", [*KNOBS, "galore_target_modules"])
def test_a_knob_without_galore_has_no_effect_and_is_refused(tmp_path, cli, knob):
    value = KNOBS.get(knob, ["attn"])
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m", "training": {knob: value}})
    code, _, err = cli("explain", path)
    assert code == 1
    assert f"training.{knob}" in err and "has no effect" in err and "adamw_torch" in err


def test_layerwise_auto_accumulation_is_one(tmp_path):
    plan = plan_of(tmp_path, {"optimizer": "galore_adamw_layerwise"}, target="h100")
    assert plan.fields["grad_accum"] == 1 and not plan.refused
    assert plan.fields["optim"] == "galore_adamw_layerwise"


def test_layerwise_refuses_gradient_accumulation(tmp_path):
    plan = plan_of(tmp_path, {"optimizer": "galore_adamw_layerwise", "grad_accum": 4})
    assert [r.id for r in plan.refusals] == ["optim-layerwise-no-grad-accum"]
    assert plan.refusals[0].field == "training.grad_accum"


def test_layerwise_refuses_multi_process(tmp_path):
    path = write_dlm(
        tmp_path,
        {"base_model": "smollm2-135m", "training": {"optimizer": "galore_adamw_layerwise"}},
    )
    [plan] = make_plans(read_document(path), load_rules(), "h100", processes=8)  # 8 ranks
    assert "optim-layerwise-single-process" in [r.id for r in plan.refusals]
    [single] = make_plans(read_document(path), load_rules(), "h100")
    assert "optim-layerwise-single-process" not in [r.id for r in single.refusals]


def test_8bit_layerwise_is_refused_on_cpu(tmp_path):
    plan = plan_of(tmp_path, {"optimizer": "galore_adamw_8bit_layerwise"}, target="cpu")
    assert "optim-needs-cuda" in [r.id for r in plan.refusals]

"""optimizers.yaml and optimizer.yaml: the HF optim name, GaLore's needs, the CPU refusal."""

import pytest

from tests.conftest import plan_of

OPTIMIZERS = {
    "adamw_torch": ("adamw_torch_fused", {"torch>=2.8"}),
    "adamw_bnb_8bit": ("adamw_bnb_8bit", {"bitsandbytes"}),
    "paged_adamw_8bit": ("paged_adamw_8bit", {"bitsandbytes"}),
    "galore_adamw": ("galore_adamw", {"galore-torch"}),
    "galore_adamw_8bit": ("galore_adamw_8bit", {"galore-torch", "bitsandbytes"}),
}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_every_optimizer_maps_to_its_hf_name(tmp_path, optimizer):
    hf_name, needs = OPTIMIZERS[optimizer]
    plan = plan_of(tmp_path, {"optimizer": optimizer}, base="llama-3.1-8b", target="h100")
    assert plan.fields["optim"] == hf_name
    assert f"optim={hf_name}" in plan.reason()
    assert needs <= set(plan.requirements)
    galore = optimizer.startswith("galore")
    assert (plan.fields["optim_target_modules"] is not None) == galore
    assert not plan.refused


def test_galore_gets_attention_and_mlp_target_patterns(tmp_path):
    plan = plan_of(tmp_path, {"optimizer": "galore_adamw"})
    assert plan.fields["optim_target_modules"] == [".*attn.*", ".*mlp.*"]


@pytest.mark.parametrize(
    ("base", "token"),
    [
        ("smollm2-135m", "galore-small-base(135M<1B)"),
        ("qwen2.5-0.5b", "galore-small-base(494M<1B)"),
    ],
)
def test_galore_small_base_warning_prints_the_size(tmp_path, base, token):
    plan = plan_of(tmp_path, {"optimizer": "galore_adamw"}, base=base, target="a100-80gb")
    assert f"warn={token}" in plan.reason()
    assert plan.warnings[0].id == "galore-small-base"


def test_no_small_base_warning_at_1b_and_up(tmp_path):
    plan = plan_of(tmp_path, {"optimizer": "galore_adamw"}, base="llama-3.2-1b")
    assert "galore-small-base" not in plan.reason()


def test_galore_with_adapter_warning(tmp_path):
    plan = plan_of(tmp_path, {"optimizer": "galore_adamw", "adapter": "dora"})
    assert "warn=galore-with-adapter" in plan.reason()
    assert "dora adapter" in plan.warnings[-1].message


def test_galore_8bit_is_refused_on_cpu_only(tmp_path):
    refused = plan_of(tmp_path, {"optimizer": "galore_adamw_8bit"}, target="cpu")
    assert [r.id for r in refused.refusals] == ["optim-needs-cuda"]
    assert refused.refusals[0].field == "training.optimizer"
    assert not plan_of(tmp_path, {"optimizer": "galore_adamw_8bit"}, target="l4").refused


@pytest.mark.parametrize("optimizer", ["adamw_bnb_8bit", "paged_adamw_8bit"])
def test_8bit_adamw_is_not_refused_on_cpu(tmp_path, optimizer):
    # Measured with bitsandbytes 0.50.2 on the CPU: both train.
    assert not plan_of(tmp_path, {"optimizer": optimizer}, target="cpu").refused

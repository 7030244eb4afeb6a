"""memory.yaml + dlm_gen/memory.py: the estimate, and the batching rows that use it."""

from __future__ import annotations

import pytest

from dlm_gen.memory import estimate, module_shapes
from dlm_gen.rules import load_rules
from tests.conftest import EXAMPLES, plan_of

TABLE = load_rules().memory


def memory_of(plan) -> dict:
    return {k.removeprefix("memory."): v for k, v in plan.memory.items()}


def test_weights_follow_the_load_dtype_and_4bit(tmp_path):
    fp16 = memory_of(plan_of(tmp_path, {}, base="llama-3.1-8b", target="t4"))
    bf16 = memory_of(plan_of(tmp_path, {}, base="llama-3.1-8b", target="h100"))
    nf4 = memory_of(plan_of(tmp_path, {"adapter": "qlora"}, base="llama-3.1-8b", target="h100"))
    assert fp16["weights_gb"] == bf16["weights_gb"] == pytest.approx(8_030_261_248 * 2 / 1e9, 1e-3)
    assert nf4["weights_gb"] < 0.4 * bf16["weights_gb"]


def test_full_fine_tuning_pays_adamw_state_and_galore_cuts_it(tmp_path):
    base = "llama-3.2-1b"
    full = memory_of(plan_of(tmp_path, {"adapter": "full"}, base=base, target="h100"))
    assert full["optimizer_gb"] == pytest.approx(1_235_814_400 * 8 / 1e9, 1e-3)
    galore = memory_of(
        plan_of(
            tmp_path, {"adapter": "full", "optimizer": "galore_adamw"}, base=base, target="h100"
        )
    )
    assert galore["optimizer_gb"] < 0.5 * full["optimizer_gb"]
    lora = memory_of(plan_of(tmp_path, {}, base=base, target="h100"))
    assert lora["optimizer_gb"] < 0.01 * full["optimizer_gb"]
    sharded = memory_of(plan_of(tmp_path, {"adapter": "full"}, base=base, target="8xh100"))
    assert sharded["optimizer_gb"] == pytest.approx(full["optimizer_gb"] / 8, 1e-3)


def test_checkpointing_halves_nothing_but_activations(tmp_path):
    memory = memory_of(plan_of(tmp_path, {}, base="llama-3.2-3b", target="l4"))
    assert (
        memory["activations_checkpointed_per_sample_gb"] < memory["activations_per_sample_gb"] / 2
    )


def test_checkpointing_turns_on_past_the_threshold(tmp_path):
    small = plan_of(tmp_path, {}, base="smollm2-135m", target="l4")
    assert small.fields["gradient_checkpointing"] is False
    assert memory_of(small)["status"] == "fits"
    tight = plan_of(tmp_path, {}, base="llama-3.2-3b", target="l4")
    assert memory_of(tight)["status"] == "fits-checkpointed"
    assert tight.fields["gradient_checkpointing"] is True
    decision = next(d for d in tight.decisions if d.field == "gradient_checkpointing")
    assert decision.rule == "batch-checkpointing-on-auto"


def test_auto_micro_batch_is_the_largest_that_fits_and_accumulation_fills_in(tmp_path):
    plan = plan_of(tmp_path, {}, base="smollm2-135m", target="h200")
    memory = memory_of(plan)
    batch, accumulation = plan.fields["micro_batch_size"], plan.fields["grad_accum"]
    assert batch == memory["auto_micro_batch"] and batch & (batch - 1) == 0
    assert batch * accumulation == TABLE["effective_batch"]
    budget = memory["budget_gb"]
    assert memory["total_gb"] <= budget
    fixed = memory["total_gb"] - batch * memory["activations_per_sample_gb"]
    doubled = fixed + 2 * batch * memory["activations_per_sample_gb"]
    assert batch == TABLE["effective_batch"] or doubled > budget


def test_a_plan_that_fits_nowhere_is_refused_with_numbers(tmp_path, cli):
    path = EXAMPLES / "llama8b-lora.dlm"
    code, _, err = cli("explain", path, "--target", "t4")
    assert code == 1 and "does-not-fit" in err and "base_model" in err
    assert "GB against 14.4 GB usable" in err and "weights 16.1 GB" in err
    code, out, _ = cli("render", path, "--target", "h100", "--out", tmp_path)
    assert code == 0 and out.strip().endswith(".py")


def test_explicit_micro_batch_that_cannot_fit(tmp_path):
    plan = plan_of(tmp_path, {"micro_batch_size": 64}, base="llama-3.1-8b", target="l4")
    assert [r.id for r in plan.refusals] == ["batch-micro-does-not-fit"]
    assert plan.refusals[0].field == "training.micro_batch_size"


def test_verbose_shows_the_breakdown(cli):
    code, out, _ = cli("explain", EXAMPLES / "llama8b-lora.dlm", "--target", "h100", "--verbose")
    assert code == 0
    assert "memory estimate (per device):" in out
    assert "weights 16.06 GB" in out and "optimizer state" in out
    assert "activations per row:" in out and "GB usable (fits)" in out


def test_no_shape_no_estimate():
    facts = {"base.shape": None, "base.params": None, "plan.processes": 1}
    memory = estimate(facts, TABLE)
    assert memory["memory.status"] == "no-estimate" and memory["memory.weights_gb"] is None


def test_module_shapes_cover_both_naming_schemes():
    shape = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": None,
        "vocab_size": 100,
    }
    modules = module_shapes(shape)
    separate = sum(o * i for n, (o, i) in modules.items() if n in ("q_proj", "k_proj", "v_proj"))
    assert modules["qkv_proj"][0] * modules["qkv_proj"][1] == separate
    assert modules["gate_up_proj"][0] == 2 * modules["up_proj"][0]

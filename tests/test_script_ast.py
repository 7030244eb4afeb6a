"""What a script does on CUDA (no GPU here): the runtime's own functions, given the plan
a CUDA script embeds, build the library objects the run would use."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from dlm_gen.pipeline import read_document
from dlm_gen.plan import make_plans
from dlm_gen.render import render_plans
from dlm_gen.rules import load_rules
from dlm_gen.runtime import loading, sft
from tests.conftest import plan_comments, script_constant, script_plans, write_dlm


def script_text_for(tmp_path, training, target, base="llama-3.2-3b") -> str:
    path = write_dlm(tmp_path, {"base_model": base, "training": training})
    rules = load_rules()
    document = read_document(path)
    plans = make_plans(document, rules, target)
    assert not any(plan.refused for plan in plans)
    return render_plans(document, plans, rules).text


def flags(**given) -> argparse.Namespace:
    return argparse.Namespace(
        **{"max_steps": None, "save_steps": None, "report_to": [], "resume": False, **given}
    )


def loaded_with(plan: dict, monkeypatch) -> dict:
    """The keyword arguments load_model hands from_pretrained for `plan`."""
    import transformers

    seen = {}

    class Model:
        config = type("Config", (), {})()

        def modules(self):
            return []

    def from_pretrained(source, **keywords):
        seen.update(keywords, source=source)
        return Model()

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    tokenizer = type("Tokenizer", (), {"pad_token_id": 0})()
    loading.load_model(plan, tokenizer, False, "base", "abc123")
    return seen


@pytest.mark.parametrize(
    ("target", "compute_dtype"),
    [("a100-80gb", "bfloat16"), ("t4", "float16"), ("h100", "bfloat16")],
)
def test_qlora_for_cuda_loads_nf4_double_quant_in_plan_precision(
    tmp_path, monkeypatch, target, compute_dtype
):
    import torch

    text = script_text_for(tmp_path, {"adapter": "qlora"}, target)
    [plan] = script_plans(text)
    assert plan["bnb_4bit_compute_dtype"] == compute_dtype
    [comments] = plan_comments(text)
    assert comments["bnb_4bit_quant_type"] == "quant-nf4-4bit"
    keywords = loaded_with(plan, monkeypatch)
    quantization = keywords["quantization_config"]
    assert quantization.load_in_4bit is True
    assert quantization.bnb_4bit_quant_type == "nf4"
    assert quantization.bnb_4bit_use_double_quant is True
    assert quantization.bnb_4bit_compute_dtype == getattr(torch, compute_dtype)
    assert quantization.bnb_4bit_quant_storage == torch.uint8  # one process: packed storage
    assert keywords["revision"] == "abc123" and keywords["dtype"] == getattr(torch, compute_dtype)
    lora = loading.lora_config(plan)
    assert lora.use_dora is False and lora.r == 8 and lora.bias == "none"
    assert set(lora.target_modules) == set(plan["target_modules"])
    assert script_constant(text, "TARGET")["backend"] == "cuda"


def test_galore_8bit_for_cuda_passes_optim_and_target_modules(tmp_path):
    text = script_text_for(tmp_path, {"optimizer": "galore_adamw_8bit"}, "l4")
    [plan] = script_plans(text)
    arguments = sft.trainer_arguments(plan, flags(), Path("out"), 10)
    assert arguments["optim"] == "galore_adamw_8bit"
    assert arguments["optim_target_modules"] == [".*attn.*", ".*mlp.*"]
    assert arguments["use_cpu"] is False
    assert arguments["optim_args"].startswith("rank=")
    assert "galore-torch" in script_constant(text, "REQUIREMENTS")


def test_precision_flags_reach_the_trainer_explicitly(tmp_path):
    # SFTConfig defaults to bf16=True and gradient checkpointing on: the plan must set both.
    text = script_text_for(tmp_path, {}, "t4")
    [plan] = script_plans(text)
    arguments = sft.trainer_arguments(plan, flags(), Path("out"), 10)
    assert (arguments["bf16"], arguments["fp16"]) == (False, True)
    assert arguments["max_length"] == plan["sequence_len"] and arguments["seed"] == plan["seed"]
    # Under the installed transformers' name for it (activation_checkpointing from 5.x).
    checkpointing = sft.checkpointing_arguments(plan, plan["gradient_checkpointing"])
    assert checkpointing == {"activation_checkpointing": plan["gradient_checkpointing"]}

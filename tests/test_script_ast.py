"""What a script does on CUDA, read from its code (no GPU here): QLoRA, GaLore 8-bit, flags."""

from __future__ import annotations

import ast

import pytest

from dlm_gen.document import load_document
from dlm_gen.plan import make_plans
from dlm_gen.render import render_plans
from dlm_gen.rules import load_rules
from tests.conftest import plan_comments, write_dlm


def script_text_for(tmp_path, training, target, base="llama-3.2-3b") -> str:
    path = write_dlm(tmp_path, {"base_model": base, "training": training})
    rules = load_rules()
    document = load_document(path)
    plans = make_plans(document, rules, target)
    assert not any(plan.refused for plan in plans)
    return render_plans(document, plans, rules).text


def script_for(tmp_path, training, target, base="llama-3.2-3b"):
    return ast.parse(script_text_for(tmp_path, training, target, base))


def constant(tree, name):
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not assigned")


def call_keywords(tree, callee: str) -> dict[str, str]:
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == callee
    ]
    assert len(calls) == 1, f"{callee} is called {len(calls)} times"
    return {kw.arg: ast.unparse(kw.value) for kw in calls[0].keywords}


@pytest.mark.parametrize(
    ("target", "compute_dtype"),
    [("a100-80gb", "bfloat16"), ("t4", "float16"), ("h100", "bfloat16")],
)
def test_qlora_for_cuda_loads_nf4_double_quant_in_plan_precision(tmp_path, target, compute_dtype):
    text = script_text_for(tmp_path, {"adapter": "qlora"}, target)
    tree = ast.parse(text)
    [adapter] = constant(tree, "ADAPTERS")
    plan = adapter["plan"]
    assert plan["load_in_4bit"] is True
    assert plan["bnb_4bit_quant_type"] == "nf4" and plan["bnb_4bit_use_double_quant"] is True
    assert plan["bnb_4bit_compute_dtype"] == compute_dtype
    [comments] = plan_comments(text)
    assert comments["bnb_4bit_quant_type"] == "quant-nf4-4bit"
    bnb = call_keywords(tree, "BitsAndBytesConfig")
    assert bnb == {
        "load_in_4bit": "True",
        "bnb_4bit_quant_type": "plan['bnb_4bit_quant_type']",
        "bnb_4bit_use_double_quant": "plan['bnb_4bit_use_double_quant']",
        "bnb_4bit_compute_dtype": "getattr(torch, plan['bnb_4bit_compute_dtype'])",
        "bnb_4bit_quant_storage": "getattr(torch, plan['bnb_4bit_quant_storage'])",
    }
    assert plan["bnb_4bit_quant_storage"] == "uint8"  # one process: packed storage
    lora = call_keywords(tree, "LoraConfig")
    assert lora["use_dora"] == "plan['use_dora']" and plan["use_dora"] is False
    assert lora["target_modules"] == "targets"
    assert lora["r"] == "plan['lora_r']" and plan["lora_r"] == 8
    assert constant(tree, "TARGET")["backend"] == "cuda"


def test_galore_8bit_for_cuda_passes_optim_and_target_modules(tmp_path):
    tree = script_for(tmp_path, {"optimizer": "galore_adamw_8bit"}, "l4")
    [adapter] = constant(tree, "ADAPTERS")
    assert adapter["plan"]["optim"] == "galore_adamw_8bit"
    assert adapter["plan"]["optim_target_modules"] == [".*attn.*", ".*mlp.*"]
    sft = call_keywords(tree, "SFTConfig")
    assert sft["optim"] == "plan['optim']"
    assert sft["optim_target_modules"] == "plan['optim_target_modules']"
    assert sft["use_cpu"] == "plan['use_cpu']"
    assert "galore-torch" in constant(tree, "REQUIREMENTS")


def test_precision_flags_reach_sft_config_explicitly(tmp_path):
    # SFTConfig defaults to bf16=True and gradient checkpointing on: the plan must set both.
    tree = script_for(tmp_path, {}, "t4")
    sft = call_keywords(tree, "SFTConfig")
    for field in ("bf16", "fp16", "max_length", "seed"):
        assert field in sft
    # Under the installed transformers' name for it (activation_checkpointing from 5.x).
    unpacked = [
        ast.unparse(kw.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "SFTConfig"
        for kw in node.keywords
        if kw.arg is None
    ]
    assert "checkpointing_arguments(plan, plan['gradient_checkpointing'])" in unpacked
    [adapter] = constant(tree, "ADAPTERS")
    assert (adapter["plan"]["bf16"], adapter["plan"]["fp16"]) == (False, True)
    assert "max_seq_length" not in sft  # renamed to max_length in trl

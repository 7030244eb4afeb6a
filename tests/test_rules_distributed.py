"""distributed.yaml: launcher, strategy and backend by processes, adapter and base size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlm_gen.pipeline import read_document
from dlm_gen.plan import make_plans
from dlm_gen.render import render_plans
from dlm_gen.rules import load_rules
from dlm_gen.runtime import sft
from tests.conftest import EXAMPLES, script_plans, write_dlm


def plan_for(tmp_path, training=None, base="smollm2-135m", target="cpu", processes=None):
    path = write_dlm(tmp_path, {"base_model": base, "training": training or {}})
    [plan] = make_plans(read_document(path), load_rules(), target, processes)
    return plan


def test_one_process_runs_with_python(tmp_path):
    fields = plan_for(tmp_path, target="h100").fields
    assert (fields["launcher"], fields["processes"], fields["strategy"]) == ("python", 1, "single")
    assert fields["ddp_backend"] is None


def test_adapters_use_ddp_under_torchrun(tmp_path):
    fields = plan_for(tmp_path, target="8xh100").fields
    assert (fields["launcher"], fields["processes"], fields["strategy"]) == ("torchrun", 8, "ddp")
    assert fields["ddp_backend"] == "nccl"


def test_processes_flag_on_cpu_uses_gloo(tmp_path):
    fields = plan_for(tmp_path, target="cpu", processes=2).fields
    assert (fields["processes"], fields["ddp_backend"]) == (2, "gloo")


@pytest.mark.parametrize(("base", "strategy"), [("smollm2-135m", "ddp"), ("llama-3.1-8b", "fsdp")])
def test_full_fine_tuning_shards_from_1b_up(tmp_path, base, strategy):
    plan = plan_for(tmp_path, {"adapter": "full"}, base=base, target="8xa100-80gb")
    assert plan.fields["strategy"] == strategy and not plan.refused


def test_fsdp_needs_a_known_decoder_layer(tmp_path):
    plan = plan_for(tmp_path, {"adapter": "full"}, base="hf:someone/unknown", target="8xh100")
    assert [r.id for r in plan.refusals] == ["dist-fsdp-needs-decoder-layer"]


def test_layerwise_galore_refuses_several_processes(tmp_path):
    plan = plan_for(tmp_path, {"optimizer": "galore_adamw_layerwise"}, target="8xh100")
    assert "optim-layerwise-single-process" in [r.id for r in plan.refusals]


def test_launch_command_and_fsdp_config_in_the_script(tmp_path):
    path = write_dlm(tmp_path, {"base_model": "llama-3.1-8b", "training": {"adapter": "full"}})
    rules = load_rules()
    document = read_document(path)
    text = render_plans(document, make_plans(document, rules, "8xh100"), rules).text
    assert "# Launch:       torchrun --nproc_per_node 8 train_" in text  # plan.launcher
    [plan] = script_plans(text)
    assert plan["fsdp_version"] == 2  # dist-fsdp-full decides it
    assert plan["fsdp_layer_class"] == "LlamaDecoderLayer"  # from the base's family
    arguments = sft.checkpointing_arguments
    trainer_name = sft.checkpointing_keyword()
    assert arguments(plan, True) == {
        trainer_name: False,  # under FSDP, FSDP's own checkpointing (no second all-gather)
        "fsdp": True,  # a string of options is deprecated in transformers 5
        "fsdp_config": {
            "version": 2,
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"],
            "reshard_after_forward": True,
            "activation_checkpointing": True,
        },
    }
    assert "activation_checkpointing" not in arguments(plan, False)["fsdp_config"]
    assert plan["checkpointing_by"] == "fsdp"  # dist-fsdp-full decides it
    replicated = {**plan, "strategy": "ddp", "checkpointing_by": "trainer"}
    assert arguments(replicated, True) == {trainer_name: True}
    by_trainer = arguments({**plan, "checkpointing_by": "trainer"}, True)
    assert by_trainer[trainer_name] is True
    assert "activation_checkpointing" not in by_trainer["fsdp_config"]


def test_gpus_flag_is_the_process_count(cli):
    code, out, _ = cli("explain", EXAMPLES / "galore-smollm2.dlm", "--gpus", "4", "--json")
    assert code == 0
    plan = json.loads(out)["plan"]
    assert (plan["launcher"], plan["processes"], plan["strategy"]) == ("torchrun", 4, "ddp")
    assert cli("explain", EXAMPLES / "galore-smollm2.dlm", "--gpus", "0")[0] == 2


def script_parts(tmp_path, training, base, target, processes=None):
    """The script's text and its plans, for a plan rendered for CUDA ranks."""
    path = write_dlm(tmp_path, {"base_model": base, "training": training})
    rules = load_rules()
    document = read_document(path)
    text = render_plans(document, make_plans(document, rules, target, processes), rules).text
    return text, script_plans(text)


def test_a_70b_lora_shards_with_fsdp_where_a_replica_does_not_fit(tmp_path):
    plan = plan_for(tmp_path, base="llama-3.3-70b", target="8xh100")
    assert not plan.refused
    fields, memory = plan.fields, plan.memory
    assert memory["memory.replica_status"] == "does-not-fit"
    assert memory["memory.replica_min_total_gb"] > 72  # 141 GB of bf16 weights alone
    assert (fields["strategy"], fields["fsdp_version"]) == ("fsdp", 2)
    assert fields["fsdp_reshard_after_forward"] and fields["fsdp_cpu_ram_efficient_loading"]
    assert memory["memory.status"] in ("fits", "fits-checkpointed")  # sharded over 8
    assert "accelerate>=1.15.0" in plan.requirements


def test_qlora_shards_on_small_gpus_and_keeps_ddp_where_a_4bit_replica_fits(tmp_path):
    small = plan_for(
        tmp_path, {"adapter": "qlora"}, base="llama-3.3-70b", target="a10g", processes=8
    )
    assert small.fields["strategy"] == "fsdp" and not small.refused
    assert small.fields["bnb_4bit_quant_storage"] == small.fields["bnb_4bit_compute_dtype"]
    assert "bitsandbytes>=0.43.3" in small.requirements
    large = plan_for(tmp_path, {"adapter": "qlora"}, base="llama-3.3-70b", target="8xh100")
    assert large.fields["strategy"] == "ddp" and large.fields["bnb_4bit_quant_storage"] == "uint8"
    assert large.memory["memory.replica_status"] == "fits"


def test_small_adapters_keep_ddp(tmp_path):
    fields = plan_for(tmp_path, base="llama-3.1-8b", target="8xh100").fields
    assert fields["strategy"] == "ddp" and fields["fsdp_version"] is None
    assert fields["checkpointing_by"] == "trainer"


def test_the_fsdp_adapter_script_wraps_by_layer_gathers_to_save_and_stores_4bit_as_compute(
    tmp_path,
):
    text, [plan] = script_parts(
        tmp_path, {"adapter": "qlora"}, "llama-3.3-70b", "a10g", processes=8
    )
    assert "# Launch:" in text and "torchrun --nproc_per_node 8" in text
    assert sft.fsdp_arguments(plan, False) == {
        "fsdp": True,
        "fsdp_config": {
            "version": 2,
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"],
            "reshard_after_forward": True,
            "cpu_ram_efficient_loading": True,
        },
    }
    # The result is saved once, gathered: save_result asks FSDP for the full state dict.
    saved = []
    plugin = type("Plugin", (), {"set_state_dict_type": lambda self, kind: saved.append(kind)})()
    state = type("State", (), {"fsdp_plugin": plugin})()
    trainer = type(
        "Trainer",
        (),
        {
            "is_fsdp_enabled": True,
            "accelerator": type("Accelerator", (), {"state": state})(),
            "save_model": lambda self, directory: saved.append(directory),
        },
    )()
    sft.save_result(trainer, Path("out"))
    assert saved == ["FULL_STATE_DICT", "out"]
    assert plan["bnb_4bit_quant_storage"] == "bfloat16"
    assert plan["fsdp_cpu_ram_efficient_loading"] is True  # set_up_libraries sets the variable


def test_an_8bit_optimizer_is_refused_under_fsdp_and_kept_under_ddp(tmp_path):
    sharded = plan_for(tmp_path, {"optimizer": "paged_adamw_8bit"}, "llama-3.3-70b", "8xh100")
    [refusal] = sharded.refusals
    assert refusal.id == "dist-fsdp-8bit-optimizer" and refusal.field == "training.optimizer"
    assert "adamw_torch" in refusal.message and "8 processes" in refusal.message
    replicated = plan_for(tmp_path, {"optimizer": "paged_adamw_8bit"}, "llama-3.1-8b", "8xh100")
    assert replicated.fields["strategy"] == "ddp" and not replicated.refused


def test_an_fsdp_adapter_says_it_is_saved_unmerged(tmp_path):
    sharded = plan_for(tmp_path, base="llama-3.3-70b", target="8xh100")
    assert "fsdp-adapter-unmerged" in sharded.reason()
    replicated = plan_for(tmp_path, base="llama-3.1-8b", target="8xh100")
    assert "fsdp-adapter-unmerged" not in replicated.reason()

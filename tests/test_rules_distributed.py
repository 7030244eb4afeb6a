"""distributed.yaml: launcher, strategy and backend by processes, adapter and base size."""

from __future__ import annotations

import ast
import json

import pytest

from dlm_gen.document import load_document
from dlm_gen.plan import make_plans
from dlm_gen.render import render_plans
from dlm_gen.rules import load_rules
from tests.conftest import EXAMPLES, write_dlm


def plan_for(tmp_path, training=None, base="smollm2-135m", target="cpu", processes=None):
    path = write_dlm(tmp_path, {"base_model": base, "training": training or {}})
    [plan] = make_plans(load_document(path), load_rules(), target, processes)
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
    document = load_document(path)
    text = render_plans(document, make_plans(document, rules, "8xh100"), rules).text
    assert "# Launch:       torchrun --nproc_per_node 8 train_" in text  # plan.launcher
    tree = ast.parse(text)
    base = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "BASE_MODEL"
    )
    assert base["decoder_layer"] == "LlamaDecoderLayer"
    namespace: dict = {"BASE_MODEL": base}
    function = next(node for node in tree.body if getattr(node, "name", "") == "fsdp_arguments")
    exec(compile(ast.Module(body=[function], type_ignores=[]), "script", "exec"), namespace)
    [adapter] = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ADAPTERS"
    )
    plan = adapter["plan"]
    assert plan["fsdp_options"] == "full_shard auto_wrap"  # dist-fsdp-full decides it
    assert namespace["fsdp_arguments"](plan) == {
        "fsdp": "full_shard auto_wrap",
        "fsdp_config": {"transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"]},
    }
    assert namespace["fsdp_arguments"]({**plan, "strategy": "ddp"}) == {}


def test_gpus_flag_is_the_process_count(cli):
    code, out, _ = cli("explain", EXAMPLES / "galore-smollm2.dlm", "--gpus", "4", "--json")
    assert code == 0
    plan = json.loads(out)["plan"]
    assert (plan["launcher"], plan["processes"], plan["strategy"]) == ("torchrun", 4, "ddp")
    assert cli("explain", EXAMPLES / "galore-smollm2.dlm", "--gpus", "0")[0] == 2

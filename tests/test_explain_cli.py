"""`dlm-gen explain`: the reason line, --verbose, --json, multi-adapter, targets."""

from __future__ import annotations

import json

from tests.conftest import EXAMPLES, example_in

GALORE_EXAMPLE = EXAMPLES / "galore-smollm2.dlm"
SEED_REASON = (
    "reason: precision=bf16, attn=sdpa, qlora=off, optim=galore_adamw, "
    "warn=galore-small-base(135M<1B)"
)


def test_galore_example_prints_the_seed_reason_line(cli):
    code, out, err = cli("explain", GALORE_EXAMPLE, "--target", "a100-80gb")
    assert code == 0, err
    assert out.startswith(SEED_REASON)
    # Only further warn tokens may follow the seed's line.
    assert out.strip() == SEED_REASON + ", warn=galore-with-adapter"


def test_default_target_is_a100_80gb(cli):
    _, default_out, _ = cli("explain", GALORE_EXAMPLE)
    _, explicit_out, _ = cli("explain", GALORE_EXAMPLE, "--target", "a100-80gb")
    assert default_out == explicit_out
    code, out, _ = cli("targets")
    assert code == 0 and "a100-80gb" in out and "(default)" in out.split("a100-80gb")[1]


def test_verbose_shows_each_decision_with_rule_and_source(cli):
    code, out, _ = cli("explain", GALORE_EXAMPLE, "--target", "cpu", "--verbose")
    assert code == 0
    assert "optim" in out and "<- optim-galore-adamw (rules/optimizers.yaml:" in out
    assert "<- precision-cpu-fp32 (rules/precision.yaml:" in out
    assert "when target.backend=cpu" in out
    assert "warning galore-small-base(135M<1B)" in out
    assert "requirements: accelerate>=1.0, galore-torch, peft," in out


def test_json_has_the_contract_keys(cli):
    code, out, _ = cli("explain", GALORE_EXAMPLE, "--target", "a100-80gb", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["reason"] == SEED_REASON.removeprefix("reason: ") + ", warn=galore-with-adapter"
    plan = data["plan"]
    assert plan["adapter"] == "lora" and plan["use_dora"] is False and plan["qlora"] is False
    assert (plan["precision"], plan["attn"], plan["optim"]) == ("bf16", "sdpa", "galore_adamw")
    assert [w["id"] for w in data["warnings"]] == ["galore-small-base", "galore-with-adapter"]
    assert all({"id", "message"} <= set(w) for w in data["warnings"])
    assert data["refusals"] == []
    assert "galore-torch" in data["requirements"]
    optim = next(d for d in data["decisions"] if d["field"] == "optim")
    assert optim["rule"] == "optim-galore-adamw"
    assert optim["source"].startswith("rules/optimizers.yaml:")
    assert {d["field"] for d in data["decisions"]} == set(plan)


def test_multi_adapter_document_gives_one_plan_per_adapter(cli):
    code, out, err = cli("explain", EXAMPLES / "multi-adapter.dlm", "--target", "a10g")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("[facts] reason: precision=bf16, attn=sdpa, qlora=off, adapter=dora")
    assert lines[1].startswith("[tone] reason: precision=bf16, attn=sdpa, qlora=off, optim=")
    assert "preference=dpo, warn=few-preference-pairs(1)" in lines[1]
    assert "preference" not in lines[0]  # the triple is tagged to tone only
    code, out, _ = cli("explain", EXAMPLES / "multi-adapter.dlm", "--json")
    data = json.loads(out)
    by_name = {a["name"]: a for a in data["adapters"]}
    assert by_name["facts"]["plan"]["use_dora"] is True
    assert by_name["tone"]["plan"]["use_dora"] is False
    assert by_name["tone"]["settings"]["learning_rate"] == 1e-4
    assert "peft>=0.9" in data["requirements"] and "peft" not in data["requirements"]


def test_qlora_example_on_t4(cli):
    code, out, _ = cli("explain", EXAMPLES / "qlora-t4.dlm", "--target", "t4")
    assert code == 0
    assert out.strip() == "reason: precision=fp16, attn=sdpa, qlora=on, optim=paged_adamw_8bit"


def test_every_example_explains(cli, tmp_path, tiny_model):
    import shutil

    shutil.copytree(EXAMPLES.parent / "docs", tmp_path / "docs")  # from-docs.dlm reads ../docs
    (tmp_path / "examples").mkdir()
    for example in sorted(EXAMPLES.glob("*.dlm")):
        path = example_in(tmp_path / "examples", example.name, tiny_model)
        code, _, err = cli("explain", path, "--target", "h100")
        assert code == 0, (example, err)

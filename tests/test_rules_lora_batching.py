"""lora.yaml, batching.yaml, corpus.yaml: target modules, batch sizes, rows."""

from tests.conftest import plan_of


def test_document_target_modules_win_over_the_registry(tmp_path):
    plan = plan_of(tmp_path, {"target_modules": ["q_proj", "v_proj"]})
    assert plan.fields["target_modules"] == ["q_proj", "v_proj"]


def test_registry_default_target_modules(tmp_path):
    assert plan_of(tmp_path, {}, base="phi-3.5-mini").fields["target_modules"] == [
        "qkv_proj",
        "o_proj",
        "gate_up_proj",
        "down_proj",
    ]


def test_unknown_hub_model_adapts_all_linear_layers(tmp_path):
    plan = plan_of(tmp_path, {}, base="hf:someone/unknown-model")
    assert plan.fields["target_modules"] == "all-linear"
    assert plan.base.params is None


def test_hub_id_of_a_registry_model_uses_registry_facts(tmp_path):
    plan = plan_of(tmp_path, {"optimizer": "galore_adamw"}, base="hf:HuggingFaceTB/SmolLM2-135M")
    assert plan.base.params == 134_515_008
    assert "galore-small-base(135M<1B)" in plan.reason()


def test_explicit_batch_sizes_pass_through_and_auto_resolves(tmp_path):
    explicit = plan_of(tmp_path, {"micro_batch_size": 2, "grad_accum": 8}).fields
    assert (explicit["micro_batch_size"], explicit["grad_accum"]) == (2, 8)
    auto = plan_of(tmp_path, {}).fields
    assert isinstance(auto["micro_batch_size"], int) and isinstance(auto["grad_accum"], int)


def test_gradient_checkpointing_without_an_estimate(tmp_path):
    # No shape for an unknown Hub model: off on the CPU, on (to be safe) on a GPU.
    base = "hf:someone/unknown"
    assert plan_of(tmp_path, {}, base=base, target="cpu").fields["gradient_checkpointing"] is False
    assert plan_of(tmp_path, {}, base=base, target="l4").fields["gradient_checkpointing"] is True


def test_preference_only_document_trains_the_phase_from_the_base(tmp_path):
    body = "::preference::\n### Prompt\np\n### Chosen\nc\n### Rejected\nr\n"
    plan = plan_of(tmp_path, {}, body=body)
    assert not plan.refusals
    assert plan.fields["sft_phase"] is False and plan.fields["preference_method"] == "dpo"
    disabled = plan_of(tmp_path, {"preference": {"enabled": False}}, body=body)
    assert [r.id for r in disabled.refusals] == ["corpus-no-sft-rows"]
    assert "warn=preference-disabled(1)" in disabled.reason()

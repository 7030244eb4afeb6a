"""Base-model facts: parameter counts from config.json match real models; sizes print right."""

from __future__ import annotations

import json

import pytest

from dlm_gen.basemodels import count_parameters, format_size, from_directory, safetensors_parameters
from dlm_gen.rules import load_rules
from tests.conftest import plan_of

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

TINY = {
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 300,
}
CONFIGS = {
    "llama-untied": ("LlamaConfig", {"tie_word_embeddings": False}),
    "llama-tied-bias": ("LlamaConfig", {"tie_word_embeddings": True, "attention_bias": True}),
    "llama-mlp-bias": ("LlamaConfig", {"mlp_bias": True, "head_dim": 32}),
    "mistral": ("MistralConfig", {"tie_word_embeddings": False}),
    "qwen2": ("Qwen2Config", {"tie_word_embeddings": True}),
    "qwen3": ("Qwen3Config", {"tie_word_embeddings": False, "head_dim": 16}),
    "gemma2": ("Gemma2Config", {"head_dim": 32}),
    "olmo2": ("Olmo2Config", {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": None}),
    "smollm3": ("SmolLM3Config", {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2}),
    "mixtral": ("MixtralConfig", {"num_local_experts": 4, "tie_word_embeddings": False}),
    "phi3": (
        "Phi3Config",
        {
            "tie_word_embeddings": False,
            "num_key_value_heads": 4,
            "pad_token_id": 0,
            "eos_token_id": 1,
        },
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_parameter_count_from_config_matches_the_built_model(tmp_path, name):
    class_name, extra = CONFIGS[name]
    config = getattr(transformers, class_name)(**{**TINY, **extra})
    model = transformers.AutoModelForCausalLM.from_config(config)
    config.architectures = [type(model).__name__]
    config.save_pretrained(tmp_path)  # config.json only: no weights are needed
    real = sum(p.numel() for p in model.parameters())
    facts = from_directory("local", tmp_path, load_rules().architectures)
    assert facts.params == real
    assert facts.architecture == type(model).__name__
    assert facts.model_type == config.model_type


def test_safetensors_header_count_for_unknown_families(tmp_path):
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(3, 4), "b": torch.zeros(5)}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    assert safetensors_parameters(tmp_path) == 17
    assert from_directory("x", tmp_path, load_rules().architectures).params == 17


def unknown_family(tmp_path, config: dict):
    """A base whose model_type no table knows, with real weights to count."""
    from safetensors.torch import save_file

    tmp_path.mkdir()
    save_file({"w": torch.zeros(10, 10)}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


@pytest.mark.parametrize(
    ("config", "where"),
    [
        ({"model_type": "mystery", **TINY}, "config.json: hidden_size"),
        ({"model_type": "mystery_vl", "text_config": TINY}, "config.json text_config: hidden_size"),
    ],
)
def test_a_base_of_no_known_family_is_estimated_from_its_usual_fields(tmp_path, cli, config, where):
    """Issue 20: "memory estimate: none (the base's shape is unknown)" for a config with
    the usual fields. They are read for any model_type (and from a multimodal model's
    text_config), and explain says which."""
    unknown_family(tmp_path / "base", config)
    base = from_directory("./base", tmp_path / "base", load_rules().architectures)
    assert base.shape["hidden_size"] == 64 and base.shape["num_hidden_layers"] == 2
    assert base.shape_from.startswith(where) and "vocab_size" in base.shape_from
    plan = plan_of(tmp_path, {}, base="./base")
    assert plan.memory["memory.weights_gb"] is not None
    code, out, _ = cli("explain", tmp_path / "doc.dlm", "--verbose")
    assert code == 0 and f"a base of no known family, shapes from {where}" in out


def test_a_base_without_the_usual_fields_says_what_it_looked_for(tmp_path, cli):
    unknown_family(tmp_path / "base", {"model_type": "mamba", "d_model": 64})
    plan_of(tmp_path, {}, base="./base")
    code, out, _ = cli("explain", tmp_path / "doc.dlm", "--verbose")
    assert code == 0
    assert (
        "memory estimate: none (the base's shape is unknown: its config has no hidden_size" in out
    )


@pytest.mark.parametrize(
    ("text_config", "field"),
    [
        ([1, 2], "text_config"),
        ({**TINY, "hidden_size": -4}, "text_config.hidden_size"),
        ({**TINY, "num_hidden_layers": 16_777_216}, "text_config.num_hidden_layers"),
        ({**TINY, "vocab_size": "many"}, "text_config.vocab_size"),
    ],
)
def test_a_hostile_text_config_is_refused_at_its_field(tmp_path, cli, text_config, field):
    unknown_family(tmp_path / "base", {"model_type": "mystery_vl", "text_config": text_config})
    path = tmp_path / "doc.dlm"
    path.write_text("---\nbase_model: ./base\n---\nSome prose.\n")
    code, _, err = cli("explain", path)
    assert code == 1 and f"config.json: {field}:" in err and "Traceback" not in err


def test_local_directory_base_feeds_the_rules(tmp_path):
    model_dir = tmp_path / "tiny"
    transformers.LlamaConfig(**TINY).save_pretrained(model_dir)
    plan = plan_of(tmp_path, {"optimizer": "galore_adamw"}, base="./tiny")  # relative path
    assert plan.base.source == "local" and plan.base.path == "./tiny"  # as written
    size = format_size(plan.base.params)
    assert f"galore-small-base({size}<1B)" in plan.reason()
    assert plan.fields["target_modules"][0] == "q_proj"


@pytest.mark.parametrize(
    ("params", "text"),
    [
        (134_515_008, "135M"),
        (361_821_120, "362M"),
        (999_600_000, "999M"),
        (1_711_376_384, "1.7B"),
        (7_615_616_512, "7.6B"),
        (8_030_261_248, "8B"),
        (123_456_789_012, "123B"),
        (45_000, "45.0K".replace(".0", "")),
        (None, "unknown"),
    ],
)
def test_format_size(params, text):
    assert format_size(params) == text


# Sizes the model cards publish (rounded as they print them): the registry's
# shapes must reproduce them, so a typo in a config line cannot pass.
PUBLISHED_SIZES = {
    "smollm2-135m": "135M",
    "smollm2-1.7b": "1.7B",
    "qwen2.5-1.5b": "1.5B",
    "qwen2.5-7b": "7.6B",
    "qwen3-1.7b": "1.7B",
    "qwen3-4b": "4B",
    "qwen3-8b": "8.2B",
    "llama-3.2-1b": "1.2B",
    "llama-3.1-8b": "8B",
    "mistral-7b": "7.2B",
    "phi-3.5-mini": "3.8B",
    "phi-4-mini-reasoning": "3.8B",
    "smollm3-3b": "3.1B",
    "olmo-2-7b-instruct": "7.3B",
    "gemma-2-2b-it": "2.6B",
    "gemma-2-9b-it": "9.2B",
    "mixtral-8x7b-instruct": "46.7B",
}


@pytest.mark.parametrize("key", sorted(PUBLISHED_SIZES))
def test_registry_shapes_give_the_published_size(key):
    rules = load_rules()
    entry = rules.base_models[key]
    family = rules.architectures[entry["model_type"]]
    assert format_size(count_parameters(entry["config"], family)) == PUBLISHED_SIZES[key]


def test_an_hf_base_in_the_local_hub_cache_gets_its_size_without_network(tmp_path, monkeypatch):
    config = transformers.LlamaConfig(**TINY, architectures=["LlamaForCausalLM"])
    repository = tmp_path / "hf" / "hub" / "models--someone--tiny-llama"
    snapshot = repository / "snapshots" / ("a" * 40)
    config.save_pretrained(snapshot)
    (repository / "refs").mkdir(parents=True)
    (repository / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    plan = plan_of(tmp_path, {}, base="hf:someone/tiny-llama", target="8xh100")
    expected = sum(
        p.numel() for p in transformers.AutoModelForCausalLM.from_config(config).parameters()
    )
    assert plan.base.params == expected and plan.base.architecture == "LlamaForCausalLM"
    assert plan.base.config_from == f"local Hugging Face cache, snapshot {'a' * 40}"
    assert plan.base.revision is None  # the document pins none: the warning stays
    assert "unpinned-base(someone/tiny-llama)" in plan.reason()
    assert "fit-unchecked" not in plan.reason()  # the fit is checked now
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    unknown = plan_of(tmp_path, {}, base="hf:someone/tiny-llama", target="8xh100")
    assert unknown.base.params is None and "fit-unchecked(size-unknown)" in unknown.reason()

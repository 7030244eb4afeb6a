"""The base-model registry: the dlm tool's keys mean its repositories; every base is pinned."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dlm_gen.rules import load_rules
from tests.conftest import plan_of, run_dlm_gen, write_dlm

# The dlm tool's registry (its docs/format/frontmatter.md and base_models/registry.py):
# a document written for it must train the same repository here.
DLM_TOOL_KEYS = {
    "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "smollm2-360m": "HuggingFaceTB/SmolLM2-360M-Instruct",
    "smollm2-1.7b": "HuggingFaceTB/SmolLM2-1.7B-Instruct",
    "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B-Instruct",
    "qwen2.5-1.5b": "Qwen/Qwen2.5-1.5B-Instruct",
    "qwen2.5-3b": "Qwen/Qwen2.5-3B-Instruct",
    "qwen2.5-coder-1.5b": "Qwen/Qwen2.5-Coder-1.5B-Instruct",
    "qwen3-1.7b": "Qwen/Qwen3-1.7B",
    "qwen3-1.7b-thinking": "Qwen/Qwen3-1.7B",
    "qwen3-4b": "Qwen/Qwen3-4B",
    "qwen3-8b": "Qwen/Qwen3-8B",
    "llama-3.2-1b": "meta-llama/Llama-3.2-1B-Instruct",
    "llama-3.2-3b": "meta-llama/Llama-3.2-3B-Instruct",
    "llama-3.3-8b-instruct": "allura-forge/Llama-3.3-8B-Instruct",
    "smollm3-3b": "HuggingFaceTB/SmolLM3-3B",
    "olmo-2-7b-instruct": "allenai/OLMo-2-1124-7B-Instruct",
    "gemma-2-2b-it": "google/gemma-2-2b-it",
    "gemma-2-9b-it": "google/gemma-2-9b-it",
    "phi-3.5-mini": "microsoft/Phi-3.5-mini-instruct",
    "phi-4-mini-reasoning": "microsoft/Phi-4-mini-reasoning",
    "mixtral-8x7b-instruct": "mistralai/Mixtral-8x7B-Instruct-v0.1",
}
DLM_TOOL_UNSUPPORTED = {
    "mistral-small-3.1-24b-instruct": "vision-language",
    "paligemma-3b-mix-224": "vision-language",
    "qwen2-vl-2b-instruct": "vision-language",
    "internvl2-2b": "vision-language",
    "internvl3-2b": "vision-language",
    "qwen2-audio-7b-instruct": "audio-language",
}
SHA = re.compile(r"^[0-9a-f]{40}$")


@pytest.mark.parametrize("key", sorted(DLM_TOOL_KEYS))
def test_a_dlm_tool_key_names_the_same_repository(key):
    assert load_rules().base_models[key]["hub_id"] == DLM_TOOL_KEYS[key]


def test_pretrained_models_keep_distinct_keys():
    registry = load_rules().base_models
    for key, entry in registry.items():
        if key.endswith("-base"):
            instruct = registry[key.removesuffix("-base")]["hub_id"]
            assert entry["hub_id"] != instruct and not entry["hub_id"].endswith("-Instruct")
    assert registry["smollm2-135m-base"]["hub_id"] == "HuggingFaceTB/SmolLM2-135M"


def test_every_registry_entry_is_pinned_with_its_source():
    for key, entry in load_rules().base_models.items():
        assert SHA.match(entry["revision"] or ""), key
        assert entry["revision_source"] and entry["config_source"], key


def test_the_corroborated_pins_of_the_facts_file_are_used():
    registry = {e["hub_id"]: e["revision"] for e in load_rules().base_models.values()}
    assert registry["HuggingFaceTB/SmolLM2-135M-Instruct"] == (
        "12fd25f77366fa6b3b4b768ec3050bf629380bac"
    )
    assert registry["Qwen/Qwen2.5-7B"] == "d149729398750b98c0af14eb82c78cfe92750796"
    assert registry["meta-llama/Llama-3.1-8B-Instruct"] == (
        "0e9e39f249a16976918f6564b8830bc894c89659"
    )


def test_an_unpinned_hub_base_gets_a_warning_token_and_a_pinned_one_does_not(tmp_path):
    plan = plan_of(tmp_path, {}, base="hf:someone/some-model")
    assert "warn=unpinned-base(someone/some-model)" in plan.reason()
    assert "unpinned-base" not in plan_of(tmp_path, {}, base="smollm2-135m").reason()
    # An hf: id the registry knows is the registry's pinned model.
    known = plan_of(tmp_path, {}, base="hf:Qwen/Qwen3-4B")
    assert known.base.revision == load_rules().base_models["qwen3-4b"]["revision"]
    assert "unpinned-base" not in known.reason()


def test_the_pinned_revision_reaches_the_script(tmp_path):
    path = write_dlm(tmp_path, {"base_model": "gemma-2-2b-it"})
    script = run_dlm_gen("render", path, "--out", tmp_path / "out", "--target", "a100-80gb")
    assert script.returncode == 0, script.stderr
    text = Path(script.stdout.strip()).read_text(encoding="utf-8")
    assert '"revision": "299a8560bedf22ed1c72a8a11e7dce4a7f9f51f8"' in text


@pytest.mark.parametrize("key", sorted(DLM_TOOL_UNSUPPORTED))
def test_vision_and_audio_bases_are_refused_with_the_reason(tmp_path, key):
    path = write_dlm(tmp_path, {"base_model": key})
    done = run_dlm_gen("explain", path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"doc.dlm:2: base_model: '{key}' names" in done.stderr
    assert f"({DLM_TOOL_UNSUPPORTED[key]}), which dlm-gen does not support" in done.stderr
    hub_id = load_rules().unsupported_bases[key]["hub_id"]
    by_id = run_dlm_gen("explain", write_dlm(tmp_path, {"base_model": f"hf:{hub_id}"}))
    assert by_id.returncode == 1 and "does not support" in by_id.stderr


def test_an_instruct_suffix_suggests_the_bare_key(tmp_path):
    done = run_dlm_gen("explain", write_dlm(tmp_path, {"base_model": "smollm2-135m-instruct"}))
    assert done.returncode == 1 and "did you mean 'smollm2-135m'?" in done.stderr


def test_the_dlm_tools_coder_key_has_the_model_cards_size(tmp_path):
    path = write_dlm(tmp_path, {"base_model": "qwen2.5-coder-1.5b"})
    data = json.loads(run_dlm_gen("explain", path, "--json").stdout)
    assert round(data["base_model"]["params"] / 1e9, 2) == 1.54  # the model card's 1.54B


def test_a_key_in_both_lists_is_a_broken_table(tmp_path):
    import shutil

    from dlm_gen.resources import data_dir
    from dlm_gen.rules import RulesError

    rules = tmp_path / "rules"
    shutil.copytree(data_dir("rules"), rules)
    table = rules / "base_models.yaml"
    text = table.read_text(encoding="utf-8")
    text = text.replace("  internvl2-2b:\n", "  smollm2-135m:\n")
    table.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError, match="models/smollm2-135m: also listed under unsupported"):
        load_rules(rules)

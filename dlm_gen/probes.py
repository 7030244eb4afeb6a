"""Evidence that runs: small checks of what measured rows claim about the libraries.

Rows of the rule tables that rest on a measurement of the installed stack
("galore_adamw_8bit fails without CUDA", "bitsandbytes' 8-bit AdamW trains on
a CPU", "the HF warm-up starts at LR 0", ...) name a probe (`probe:`). Each
probe here re-measures that claim on this machine in a second or two. The
slow test suite runs them all (tests/test_probes.py) and `dlm-gen doctor
--probe` runs them on a user's machine: when a library changes and a claim no
longer holds, the report names the rules to revisit.

Probes import torch and the training stack, so this module is only imported
by `doctor --probe` and the tests, never by render/explain/check.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

HOLDS, FAILS, NOT_HERE = "holds", "does not hold", "not measurable here"


@dataclass(frozen=True)
class Probe:
    name: str
    claim: str  # what the rows that name this probe rely on
    run: Callable[[], tuple[str, str]]  # (HOLDS | FAILS | NOT_HERE, what was measured)


def _one_step(optimizer_class, **options) -> float:
    import torch

    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(64, 64))
    optimizer = optimizer_class([weight], lr=1e-3, **options)
    weight.grad = torch.randn_like(weight)
    before = weight.detach().clone()
    optimizer.step()
    return float((weight.detach() - before).abs().max())


def fused_adamw_on_cpu() -> tuple[str, str]:
    import torch

    moved = _one_step(torch.optim.AdamW, fused=True)
    return (HOLDS if moved > 0 else FAILS), f"one fused AdamW step moved weights by {moved:.2e}"


def bnb_8bit_adamw_on_cpu() -> tuple[str, str]:
    import bitsandbytes as bnb

    results, holds = [], True
    for optimizer_class in (bnb.optim.AdamW8bit, bnb.optim.PagedAdamW8bit):
        try:
            moved = _one_step(optimizer_class)
        except Exception as exc:  # the claim is that it runs: any failure is the finding
            return FAILS, f"{optimizer_class.__name__} on CPU: {type(exc).__name__}: {exc}"
        holds = holds and math.isfinite(moved) and moved > 0
        results.append(f"{optimizer_class.__name__} moved weights by {moved:.2e}")
    return (HOLDS if holds else FAILS), "; ".join(results)


def galore_8bit_needs_cuda() -> tuple[str, str]:
    import torch
    from galore_torch import GaLoreAdamW8bit

    if torch.cuda.is_available():
        return NOT_HERE, "this machine has CUDA: the CPU failure cannot be observed"
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(64, 64))
    group = {
        "params": [weight],
        "rank": 8,
        "update_proj_gap": 200,
        "scale": 0.25,
        "proj_type": "std",
    }
    optimizer = GaLoreAdamW8bit([group], lr=1e-3)
    weight.grad = torch.randn_like(weight)
    try:
        optimizer.step()
    except Exception as exc:
        found = f"{type(exc).__name__}: {str(exc)[:80]}"
        if "cuda" in str(exc).lower():
            return HOLDS, f"one step on CPU fails for want of CUDA: {found}"
        return FAILS, f"one step on CPU fails, but not for CUDA: {found}"
    return FAILS, "one GaLoreAdamW8bit step ran on the CPU"


def first_step_learns() -> tuple[str, str]:
    """The HF schedule's first step is at LR 0, and the runtime's shift of it (through
    the Trainer's public create_optimizer_and_scheduler) starts at lr / warmup_steps."""
    from transformers import Trainer, TrainingArguments

    from dlm_gen.runtime.sft import with_planned_schedule

    with tempfile.TemporaryDirectory() as directory:
        arguments = TrainingArguments(
            output_dir=directory,
            learning_rate=1.0,
            warmup_steps=2,
            lr_scheduler_type="linear",
            use_cpu=True,
            report_to=[],
        )
        first = {}
        for shifted in (False, True):
            trainer_class = with_planned_schedule(Trainer, {"first_step_learns": shifted})
            trainer = trainer_class(model=_tiny_llama(), args=arguments)
            trainer.create_optimizer_and_scheduler(num_training_steps=10)
            first[shifted] = trainer.optimizer.param_groups[0]["lr"]
    holds = first[False] == 0 and abs(first[True] - 0.5) < 1e-9
    return (HOLDS if holds else FAILS), (
        f"the first step's LR with 2 warm-up steps: {first[False]} (HF), {first[True]} "
        "(one step ahead, via Trainer.create_scheduler)"
    )


def dpo_prepare_dataset(trainer_class=None) -> tuple[str, str]:
    """TRL's DPOTrainer prepares its datasets through _prepare_dataset, which the runtime
    overrides to keep the triples it tokenized itself: the rows must arrive unchanged."""
    from datasets import Dataset
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    from trl import DPOConfig

    from dlm_gen.runtime.preference import preference_trainer_class

    trainer_class = trainer_class or preference_trainer_class
    vocabulary = {f"t{i}": i for i in range(256)}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocabulary, unk_token="t0")),
        eos_token="t1",
        pad_token="t2",
    )
    row = {"prompt_ids": [5, 6, 7], "chosen_ids": [8, 1], "rejected_ids": [9, 10, 1]}
    plan = {"preference_trainer": "DPOTrainer", "first_step_learns": False}
    with tempfile.TemporaryDirectory() as directory:
        arguments = DPOConfig(
            output_dir=directory, use_cpu=True, report_to=[], max_length=32, beta=0.1
        )
        try:
            trainer = trainer_class(plan)(
                model=_tiny_llama(),
                ref_model=_tiny_llama(),
                args=arguments,
                train_dataset=Dataset.from_list([row]),
                processing_class=tokenizer,
            )
        except Exception as exc:  # TRL prepared the rows itself, and could not
            return FAILS, f"DPOTrainer re-prepared the tokenized triple: {type(exc).__name__}"
        seen = dict(trainer.train_dataset[0])
    kept = {key: seen.get(key) for key in row} == row
    return (HOLDS if kept else FAILS), f"the tokenized triple after DPOTrainer's init: {seen}"


def _tiny_llama():
    """A 1-layer Llama (width 128, 256 tokens), seeded: enough to exercise a library path."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    return LlamaForCausalLM(config)


def _tiny_nf4_llama():
    """The tiny Llama, saved and loaded back in 4-bit NF4 on the CPU."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    with tempfile.TemporaryDirectory() as directory:
        _tiny_llama().save_pretrained(directory)
        quantization = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32
        )
        return AutoModelForCausalLM.from_pretrained(
            directory, quantization_config=quantization, dtype=torch.float32
        )


def nf4_adapters_train_on_cpu() -> tuple[str, str]:
    import torch
    from peft import LoraConfig, get_peft_model

    found = []
    for dora in (False, True):
        model = get_peft_model(
            _tiny_nf4_llama(), LoraConfig(r=4, use_dora=dora, target_modules=["q_proj", "v_proj"])
        )
        ids = torch.randint(0, 256, (2, 8))
        model(input_ids=ids, labels=ids).loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
        finite = bool(grads) and all(torch.isfinite(g).all() for g in grads)
        found.append(f"{'DoRA' if dora else 'LoRA'}: {len(grads)} finite gradients")
        if not finite:
            return FAILS, f"{found[-1]} on a 4-bit base: not all finite"
    return HOLDS, "; ".join(found) + " on a 4-bit NF4 base"


def layerwise_refuses_accumulation() -> tuple[str, str]:
    from transformers import Trainer, TrainingArguments

    model = _tiny_llama()
    with tempfile.TemporaryDirectory() as directory:
        args = TrainingArguments(
            output_dir=directory,
            optim="galore_adamw_layerwise",
            optim_target_modules=[".*attn.*", ".*mlp.*"],
            gradient_accumulation_steps=2,
            use_cpu=True,
            report_to=[],
        )
        try:
            Trainer.get_optimizer_cls_and_kwargs(args, model)
        except ValueError as exc:
            if "accumulation" in str(exc):
                return HOLDS, f"the Trainer refuses it: {exc}"
            return FAILS, f"the Trainer refuses it for another reason: {exc}"
    return FAILS, "the Trainer set up layer-wise GaLore with gradient accumulation 2"


def cpu_kernels_repeat() -> tuple[str, str]:
    import torch

    def run() -> torch.Tensor:
        torch.manual_seed(0)
        layer = torch.nn.Sequential(
            torch.nn.Linear(256, 512), torch.nn.GELU(), torch.nn.Linear(512, 256)
        )
        inputs = torch.randn(32, 256)
        layer(inputs).pow(2).mean().backward()
        return torch.cat([p.grad.flatten() for p in layer.parameters()])

    first, second = run(), run()
    same = torch.equal(first, second)
    return (HOLDS if same else FAILS), (
        "two seeded forward/backward passes gave bit-identical gradients"
        if same
        else f"two seeded passes differ by up to {float((first - second).abs().max()):.3g}"
    )


def cpu_4bit_repack_breaks_dora_norm() -> tuple[str, str]:
    import torch
    from bitsandbytes.nn.modules import has_avx512bf16
    from peft.utils.integrations import dequantize_bnb_weight

    if not has_avx512bf16():
        return NOT_HERE, "this CPU has no AVX512-BF16: bitsandbytes does not repack here"
    model = _tiny_nf4_llama()
    layer = model.model.layers[0].self_attn.q_proj
    before = dequantize_bnb_weight(layer.weight, state=layer.weight.quant_state).clone()
    model.eval()
    with torch.no_grad():
        model(input_ids=torch.randint(0, 256, (1, 8)))
    after = dequantize_bnb_weight(layer.weight, state=layer.weight.quant_state)
    if after.shape != before.shape:
        return HOLDS, f"the weight DoRA dequantizes changed shape: {before.shape} -> {after.shape}"
    drift = float((after - before).abs().max())
    verdict = HOLDS if drift > 1e-3 else FAILS
    return verdict, f"after a gradient-free forward the dequantized weight moved by {drift:.3g}"


PROBES = {
    probe.name: probe
    for probe in (
        Probe(
            "fused-adamw-cpu",
            "torch's fused AdamW runs on a CPU (so adamw_torch can map to adamw_torch_fused)",
            fused_adamw_on_cpu,
        ),
        Probe(
            "bnb-8bit-adamw-cpu",
            "bitsandbytes' 8-bit and paged 8-bit AdamW step on a CPU (not refused there)",
            bnb_8bit_adamw_on_cpu,
        ),
        Probe(
            "galore-8bit-needs-cuda",
            "galore-torch's 8-bit AdamW cannot step without CUDA (refused on CPU targets)",
            galore_8bit_needs_cuda,
        ),
        Probe(
            "nf4-adapters-train-on-cpu",
            "LoRA and DoRA on a 4-bit NF4 base get finite gradients on a CPU (QLoRA and "
            "QDoRA are planned for CPU targets, not refused)",
            nf4_adapters_train_on_cpu,
        ),
        Probe(
            "layerwise-refuses-accumulation",
            "the HF Trainer refuses gradient accumulation with a layer-wise GaLore optimizer "
            "(so the plan sets grad_accum 1 and refuses a document's other value)",
            layerwise_refuses_accumulation,
        ),
        Probe(
            "cpu-kernels-repeat",
            "seeded CPU forward/backward passes repeat bit for bit without "
            "torch.use_deterministic_algorithms (the flag stays off on CPU targets)",
            cpu_kernels_repeat,
        ),
        Probe(
            "first-step-learns",
            "the HF schedules run the first warm-up step at LR 0, and the runtime shifts them "
            "one step ahead through the Trainer's public create_scheduler",
            first_step_learns,
        ),
        Probe(
            "dpo-prepare-dataset",
            "TRL's DPOTrainer prepares its datasets only through _prepare_dataset (private), "
            "which the runtime overrides to train the triples it tokenized like the SFT rows",
            dpo_prepare_dataset,
        ),
        Probe(
            "cpu-4bit-repack-breaks-dora",
            "bitsandbytes repacks 4-bit weights on a gradient-free CPU forward, and the "
            "weight peft dequantizes for DoRA's norm is then wrong (QDoRA keeps them unpacked)",
            cpu_4bit_repack_breaks_dora_norm,
        ),
    )
}


def run_probes(rules) -> list[dict[str, object]]:
    """Every probe, with the rules that cite it, whether its claim holds here and why."""
    citing: dict[str, list[str]] = {}
    for table in rules.tables:
        for rule in table.rules:
            if rule.probe:
                citing.setdefault(rule.probe, []).append(f"{rule.id} ({rule.source})")
    report = []
    for probe in PROBES.values():
        try:
            outcome, measured = probe.run()
        except Exception as exc:  # a probe that cannot run is a finding, not a crash
            outcome, measured = NOT_HERE, f"could not run: {type(exc).__name__}: {exc}"
        report.append(
            {
                "probe": probe.name,
                "claim": probe.claim,
                "rules": citing.get(probe.name, []),
                "outcome": outcome,
                "measured": measured,
            }
        )
    return report

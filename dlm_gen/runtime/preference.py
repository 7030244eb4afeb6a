"""The preference phase (preference-dpo, preference-orpo): DPO or ORPO on the document's
triples, on the adapter SFT left (or a fresh one), measured before and after on the
held-out triples: reward accuracy, reward margin and the policy's log-probability
margin."""

from __future__ import annotations

import argparse
import hashlib
import statistics
from dataclasses import dataclass
from pathlib import Path

from dlm_gen.runtime.console import fail, say
from dlm_gen.runtime.loading import load_model, lora_config
from dlm_gen.runtime.measure import progress_report, step_timer
from dlm_gen.runtime.rows import split_rows
from dlm_gen.runtime.sft import (
    checkpointing_arguments,
    planned_steps,
    trainer_arguments,
    with_planned_schedule,
)
from dlm_gen.runtime.tokens import tokenize_triples, triples_as_text


@dataclass(frozen=True)
class PreferencePhase:
    """What the phase needs besides the model and the plan: its triples, the system
    prompt they are asked under, the base (for full fine-tuning's reference model),
    and whether SFT ran before it."""

    triples: list[dict]
    system_prompt: str | None
    base: str
    revision: str | None
    after_sft: bool


@dataclass
class PreferenceResult:
    """The phase's record for run.json, and its trainer (which holds the model)."""

    record: dict
    trainer: object
    timer: object  # the phase's step timer


def train_preference(
    model,
    tokenizer,
    phase: PreferencePhase,
    plan: dict,
    args: argparse.Namespace,
    name: str | None,
    output_dir: Path,
) -> PreferenceResult:
    """The preference phase on `model` (the adapter SFT left, or the base): its triples
    split like the rows, tokenized like them, trained, and measured before and after."""
    import copy

    from datasets import Dataset
    from peft import PeftModel
    from transformers import PrinterCallback

    dpo = plan["preference_trainer"] == "DPOTrainer"
    system_prompt = phase.system_prompt
    train_triples, held_out = split_rows(
        phase.triples, plan["seed"], plan["preference_eval_fraction"]
    )
    eval_triples = held_out or train_triples  # runtime-preference-eval-*
    length = plan["sequence_len"]
    train_set, left_out = tokenize_triples(train_triples, tokenizer, system_prompt, length)
    eval_set, _ = tokenize_triples(eval_triples, tokenizer, system_prompt, length)
    if not dpo:  # preference-orpo
        train_set = triples_as_text(train_set, tokenizer)
        eval_set = triples_as_text(eval_set, tokenizer)
    if left_out:
        say(f"{left_out} triple(s) left out: their prompt alone fills sequence_len")
    batches = {  # batching.yaml's batch-preference-* rows size the phase
        "micro_batch_size": plan["preference_micro_batch_size"],
        "grad_accum": plan["preference_grad_accum"],
        "num_epochs": plan["preference_num_epochs"],
    }
    steps = planned_steps(len(train_set), batches, args)
    adapted = isinstance(model, PeftModel)
    extra = {}
    if dpo and not plan["peft"]:
        # adapter-full: the reference is a second model, frozen; pre_adapter is the
        # model SFT left, base the base as loaded.
        extra["ref_model"] = (
            copy.deepcopy(model)
            if plan["preference_reference"] == "pre_adapter" and phase.after_sft
            else load_model(plan, tokenizer, False, phase.base, phase.revision)
        )
    elif dpo:
        extra["ref_model"] = None
    timer = step_timer()
    trainer = preference_trainer_class(plan)(
        model=model,
        args=preference_config(plan, args, output_dir / "preference", steps),
        train_dataset=Dataset.from_list(train_set),
        eval_dataset=Dataset.from_list(eval_set),
        processing_class=tokenizer,
        peft_config=lora_config(plan) if plan["peft"] and not adapted else None,
        callbacks=[timer, progress_report(name, steps, plan["preference_method"])],
        **extra,
    )
    trainer.remove_callback(PrinterCallback)
    reference = reference_of(trainer, plan)
    before = trainer.evaluate()
    result = trainer.train()
    after = trainer.evaluate()
    if reference["adapter"]:
        reference["sha256_after"] = adapter_digest(trainer.model, "ref")
        trainer.model.delete_adapter("ref")  # one adapter is saved: the trained one
    history = trainer.state.log_history
    losses = [log["loss"] for log in history if "loss" in log]
    record = {
        "method": plan["preference_method"],
        "beta": plan["preference_beta"],
        "loss_type": plan["preference_loss_type"],
        "reference": reference,
        "steps": result.global_step,
        "first_loss": losses[0] if losses else None,
        "losses": losses,
        "learning_rates": timer.learning_rates,
        "step_seconds": timer.seconds,
        "median_step_seconds": statistics.median(timer.seconds) if timer.seconds else None,
        "triples": {"train": len(train_triples), "held_out": len(held_out), "left_out": left_out},
        "eval_on": "held-out triples" if held_out else "training triples",
        "eval_rows": len(eval_set),
        "reward_accuracy": {
            "before": before.get("eval_rewards/accuracies"),
            "after": after.get("eval_rewards/accuracies"),
        },
        "reward_margin": {
            "before": before.get("eval_rewards/margins"),
            "after": after.get("eval_rewards/margins"),
        },
        # The training batches' mean margin at each logged step (TRL's rewards/margins).
        "margins": [log["rewards/margins"] for log in history if "rewards/margins" in log],
        # The policy's own log-probability of chosen minus rejected (summed over tokens).
        "logp_margin": {"before": logp_margin(before), "after": logp_margin(after)},
    }
    return PreferenceResult(record, trainer, timer)


def preference_trainer_class(plan: dict) -> type:
    """preference-dpo: trl.DPOTrainer, given triples already tokenized like the SFT rows
    (its own tokenization would end the answer with the template's newline, and drop
    triples whose prompt fills max_length without saying so); preference-orpo: ORPO."""
    if plan["preference_trainer"] == "ORPOTrainer":
        from trl.experimental.orpo import ORPOTrainer

        return with_planned_schedule(ORPOTrainer, plan)
    from trl import DPOTrainer

    class DPOTrainerOnTokenizedTriples(DPOTrainer):
        # A private method of TRL's, kept because no public switch skips its
        # tokenization: probe dpo-prepare-dataset fails when TRL stops calling it.
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset  # tokenize_triples made prompt_ids, chosen_ids, rejected_ids

    return with_planned_schedule(DPOTrainerOnTokenizedTriples, plan)


def preference_config(plan: dict, args: argparse.Namespace, output_dir: Path, steps: int):
    """DPOConfig or ORPOConfig: the phase's own rate, epochs, batch and beta; the rest as
    in SFT (optimizer, precision, schedule, seed)."""
    if plan["preference_trainer"] == "ORPOTrainer":
        from trl.experimental.orpo import ORPOConfig as Config

        method = {}
    else:
        from trl import DPOConfig as Config

        method = {
            "loss_type": [plan["preference_loss_type"]],
            "precompute_ref_log_probs": plan["precompute_ref_log_probs"],
        }
    return Config(
        **trainer_arguments(plan, args, output_dir, steps),
        per_device_train_batch_size=plan["preference_micro_batch_size"],
        per_device_eval_batch_size=plan["preference_micro_batch_size"],
        gradient_accumulation_steps=plan["preference_grad_accum"],
        learning_rate=plan["preference_learning_rate"],
        num_train_epochs=plan["preference_num_epochs"],
        beta=plan["preference_beta"],
        **checkpointing_arguments(plan, plan["preference_gradient_checkpointing"]),
        save_strategy=plan["preference_save_strategy"],
        **method,
    )


def reference_of(trainer, plan: dict) -> dict:
    """What DPO compares against, checked: for pre_adapter with an adapter, TRL's frozen
    "ref" copy must equal the adapter SFT left; for base, the copy is removed so the
    reference is the base with adapters off."""
    if plan["preference_trainer"] != "DPOTrainer":
        return {"kind": None, "adapter": False}
    model = trainer.model
    names = set(getattr(model, "peft_config", {}) or {})
    described = {"kind": plan["preference_reference"], "adapter": False}
    if "ref" in names and plan["preference_reference"] == "base":
        model.delete_adapter("ref")
        model.set_adapter("default")
        names.discard("ref")
    if "ref" in names:
        start, trained = adapter_digest(model, "ref"), adapter_digest(model, "default")
        if start != trained:
            fail("the DPO reference adapter is not a copy of the trained adapter")
        described.update({"adapter": True, "sha256_start": start, "sft_adapter_sha256": trained})
    elif plan["peft"] and plan["preference_reference"] == "pre_adapter" and model.peft_config:
        weights = model.state_dict().items()
        fresh = all(not tensor.any() for name, tensor in weights if "lora_B" in name)
        if not fresh:  # an older trl would compare against the base, not the SFT adapter
            fail(
                "trl did not copy the SFT adapter as the DPO reference (needs trl>=1.16); "
                "upgrade trl"
            )
    return described


def adapter_digest(model, adapter: str) -> str:
    """SHA-256 of one adapter's tensors, in name order."""
    digest = hashlib.sha256()
    marker = f".{adapter}."
    for name, tensor in sorted(model.state_dict().items()):
        if marker in name:
            digest.update(name.replace(marker, ".").encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def logp_margin(metrics: dict) -> float | None:
    """Chosen minus rejected log-probability, where the evaluation measured both."""
    chosen, rejected = metrics.get("eval_logps/chosen"), metrics.get("eval_logps/rejected")
    if chosen is None or rejected is None:
        return None
    return chosen - rejected

"""The SFT phase: prose and instruction rows through trl.SFTTrainer, with the trainer
arguments the plan decided (every one a plan field with its rule), the planned learning
rate schedule, and FSDP where the plan shards."""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

from dlm_gen.runtime.loading import lora_config
from dlm_gen.runtime.measure import progress_report, step_timer
from dlm_gen.runtime.packing import CountingCollator


@dataclass
class SftResult:
    """What the SFT phase leaves: its trainer (the model it trained, its logs), the
    Trainer's result, the tokens it counted, its step timer and wall time."""

    trainer: object
    result: object
    tokens: dict
    timer: object
    wall_seconds: float
    eval_loss: float | None  # on the held-out rows (or the training rows: runtime-eval-*)

    @property
    def losses(self) -> list[float]:
        return [log["loss"] for log in self.trainer.state.log_history if "loss" in log]


def train_sft(
    model,
    tokenizer,
    data,
    plan: dict,
    args: argparse.Namespace,
    name: str | None,
    output_dir: Path,
) -> SftResult:
    """Train `model` on the prepared rows (`data`: PreparedData), resuming from the last
    checkpoint under --resume, then measure the eval loss; the trained model is
    `trainer.model`."""
    from datasets import Dataset
    from transformers import PrinterCallback

    steps = planned_steps(len(data.train_examples), plan, args)  # packed rows, when packed
    timer = step_timer()
    trainer = trainer_class(plan)(
        model=model,
        args=sft_config(plan, args, output_dir, steps),
        train_dataset=Dataset.from_list(data.train_examples),
        eval_dataset=Dataset.from_list(data.eval_examples) if data.eval_examples else None,
        processing_class=tokenizer,
        data_collator=data.collator,  # None: SFTTrainer's own, which pads each row alone
        # adapter-full: no PEFT, every weight trains
        peft_config=lora_config(plan) if plan["peft"] else None,
        callbacks=[timer, progress_report(name, steps)],
    )
    trainer.remove_callback(PrinterCallback)  # progress_report prints one line per step
    counter = trainer.data_collator = CountingCollator(trainer.data_collator)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=True if args.resume else None)
    wall_seconds = time.perf_counter() - started
    tokens = counter.totals()  # the training batches only: evaluation comes next
    eval_loss = trainer.evaluate()["eval_loss"] if data.eval_examples else None
    return SftResult(trainer, result, tokens, timer, wall_seconds, eval_loss)


def planned_steps(rows: int, phase: dict, args: argparse.Namespace) -> int:
    """Optimizer steps of a phase: --max-steps, else epochs of batches of accumulated
    micro-batches (the warm-up is a share of these)."""
    if args.max_steps is not None:
        return args.max_steps
    batches = math.ceil(rows / phase["micro_batch_size"])
    return max(1, math.ceil(batches / phase["grad_accum"])) * phase["num_epochs"]


def trainer_arguments(plan: dict, args: argparse.Namespace, output_dir: Path, steps: int) -> dict:
    """What both phases' configs share: optimizer, precision, schedule, seed, logging,
    the processes, and the fixed arguments of trainer-fixed-arguments."""
    return {
        "output_dir": str(output_dir),
        "max_steps": args.max_steps if args.max_steps is not None else -1,
        "lr_scheduler_type": plan["lr_scheduler"],
        "warmup_steps": math.ceil(steps * plan["warmup_ratio"]),
        "optim": plan["optim"],
        "optim_target_modules": plan["optim_target_modules"],  # GaLore needs it; else None
        "optim_args": galore_optim_args(plan),
        "bf16": plan["bf16"],
        "fp16": plan["fp16"],
        "use_cpu": plan["use_cpu"],
        "max_length": plan["sequence_len"],
        "seed": plan["seed"],
        "data_seed": plan["seed"],
        "logging_steps": plan["logging_steps"],
        "eval_strategy": plan["eval_strategy"],
        "dataloader_num_workers": plan["dataloader_num_workers"],
        # ddp-backend-*: gloo on CPU, nccl on CUDA, None for one process
        "ddp_backend": plan["ddp_backend"],
        "ddp_find_unused_parameters": plan["ddp_find_unused_parameters"],
        "report_to": args.report_to,
        "disable_tqdm": plan["disable_tqdm"],
    }


def sft_config(plan: dict, args: argparse.Namespace, output_dir: Path, steps: int):
    """SFTConfig: the batch, rate and epochs of the plan, checkpoints every save_steps."""
    from trl import SFTConfig

    return SFTConfig(
        **trainer_arguments(plan, args, output_dir, steps),
        per_device_train_batch_size=plan["micro_batch_size"],
        per_device_eval_batch_size=plan["micro_batch_size"],
        gradient_accumulation_steps=plan["grad_accum"],
        learning_rate=plan["learning_rate"],
        num_train_epochs=plan["num_epochs"],
        **checkpointing_arguments(plan, plan["gradient_checkpointing"]),
        save_strategy=plan["save_strategy"],
        save_steps=args.save_steps or plan["save_steps"],
        save_total_limit=plan["save_total_limit"],
        packing=plan["trl_packing"],  # the rows come packed (packing-*) or not at all
        completion_only_loss=plan["completion_only_loss"],
        include_num_input_tokens_seen=plan["include_num_input_tokens_seen"],
    )


def checkpointing_keyword() -> str:
    """The installed transformers' name for gradient checkpointing: activation_checkpointing
    from 5.x, where the old name is a deprecated alias that warns."""
    from dataclasses import fields

    from transformers import TrainingArguments

    names = {field.name for field in fields(TrainingArguments)}
    if "activation_checkpointing" in names:
        return "activation_checkpointing"
    return "gradient_checkpointing"


def checkpointing_arguments(plan: dict, checkpointing: bool) -> dict:
    """The phase's gradient checkpointing (batch-*), done by the Trainer or, under FSDP,
    by FSDP itself with its other settings (dist-*: checkpointing_by)."""
    by_fsdp = checkpointing and plan["checkpointing_by"] == "fsdp"
    sharded = fsdp_arguments(plan, by_fsdp) if plan["strategy"] == "fsdp" else {}
    return {checkpointing_keyword(): checkpointing and not by_fsdp, **sharded}


def fsdp_arguments(plan: dict, checkpointing: bool) -> dict:
    """dist-fsdp-*: FSDP2, one shard group per decoder layer (weights, gradients and
    optimizer state divided over the processes)."""
    config = {
        "version": plan["fsdp_version"],
        "auto_wrap_policy": plan["fsdp_auto_wrap_policy"],
        "transformer_layer_cls_to_wrap": [plan["fsdp_layer_class"]],
        "reshard_after_forward": plan["fsdp_reshard_after_forward"],
        "cpu_ram_efficient_loading": plan["fsdp_cpu_ram_efficient_loading"],
        "activation_checkpointing": checkpointing or None,
    }
    return {
        "fsdp": True,
        "fsdp_config": {name: value for name, value in config.items() if value is not None},
    }


def galore_optim_args(plan: dict) -> str | None:
    """GaLore's knobs as the Trainer's optim_args (it ignores unknown keys silently)."""
    if not plan["galore"]:
        return None
    return (
        f"rank={plan['galore_rank']},update_proj_gap={plan['galore_update_proj_gap']},"
        f"scale={plan['galore_scale']},proj_type={plan['galore_proj_type']}"
    )


def trainer_class(plan: dict):
    """SFTTrainer, with the loss the plan chose (trainer-sft-loss-*) and the planned LR
    schedule run one step ahead where the plan says."""
    from trl import SFTTrainer

    if plan["sft_loss"] == "full_logits":
        return with_planned_schedule(with_full_logits_loss(SFTTrainer), plan)
    return with_planned_schedule(SFTTrainer, plan)


def with_full_logits_loss(trainer: type) -> type:
    """The trainer class computing the loss as transformers' Trainer does: the model's own
    cross-entropy over full logits, instead of TRL's tiled LM head with its entropy and
    token-accuracy metrics (slower on a CPU: trainer-sft-loss-cpu). The same loss: the
    sum over the labelled tokens divided by their count. No cache, as TRL passes it: a
    cache would let packed samples attend to each other (packing-*)."""
    from transformers import Trainer

    class FullLogitsLoss(trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = {**inputs, "use_cache": False}
            return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)

    FullLogitsLoss.__name__ = f"{trainer.__name__}FullLogitsLoss"
    return FullLogitsLoss


def with_planned_schedule(trainer: type, plan: dict) -> type:
    """The trainer class, or a subclass whose LR schedule runs one step ahead.

    The HF schedules start warm-up at LR 0, so a run's first optimizer step
    changes nothing (a quarter of a 4-step run). One step ahead, warm-up starts
    at lr / warmup_steps and, with one extra step in the schedule, the last
    step keeps a positive LR too. Only public API: the Trainer's own
    create_scheduler makes the schedule one step longer, and its LambdaLR's
    lr_lambdas are read one step on (probe trainer-create-scheduler).
    """
    if not plan["first_step_learns"]:
        return trainer

    class FirstStepLearns(trainer):
        def create_scheduler(self, num_training_steps: int, optimizer=None):
            if self.lr_scheduler is None:
                planned = super().create_scheduler(num_training_steps + 1, optimizer)
                self.lr_scheduler = one_step_ahead(planned)
            return self.lr_scheduler

    FirstStepLearns.__name__ = f"{trainer.__name__}FirstStepLearns"
    return FirstStepLearns


def one_step_ahead(schedule):
    """A LambdaLR over the same optimizer whose step n runs at `schedule`'s step n + 1."""
    from torch.optim.lr_scheduler import LambdaLR

    shapes = [lambda step, shape=shape: shape(step + 1) for shape in schedule.lr_lambdas]
    return LambdaLR(schedule.optimizer, shapes)


def save_result(trainer, directory: Path) -> None:
    """The adapter (or model) once, whole: under FSDP the shards are gathered first."""
    if trainer.is_fsdp_enabled:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(directory))

"""Measurement: what run.json records besides the losses. Answers before and after
training, each step's time and learning rate, the divergence from the base, memory,
and the optimizer that really ran."""

from __future__ import annotations

import math
import resource
import time

from dlm_gen.runtime.chat import chat_messages
from dlm_gen.runtime.console import say

# What the Trainer really ran with, recorded so a review can compare it with the plan.
TRAINER_ARGS_RECORDED = [
    "optim",
    "optim_target_modules",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "bf16",
    "fp16",
    "max_length",
    "seed",
    "report_to",
]


def sample_questions(
    train_rows: list[dict], held_out: list[dict], count: int, triples: list[dict] = ()
) -> list[dict]:
    """Questions to answer before and after training: held-out ones first (what the
    adapter generalizes to), then training ones (what it was taught), then the
    preference prompts."""
    picked = [
        {"question": row["question"], "split": split}
        for split, rows in (("held-out", held_out), ("train", train_rows))
        for row in rows
        if row["kind"] == "instruction"
    ]
    picked += [{"question": row["prompt"], "split": "preference"} for row in triples]
    return picked[:count]


def greedy_answers(
    model, tokenizer, questions: list[dict], system_prompt: str | None, plan: dict
) -> list[str]:
    """Greedy answers under the document's system prompt (what training saw), at most
    sample_new_tokens each (runtime-defaults), all questions in one batch (prompts
    padded on the left), each stopping at an end of turn: the tokenizer's EOS or the
    model's own."""
    import torch

    if not questions:
        return []
    prompts = [
        tokenizer.apply_chat_template(
            chat_messages(question["question"], system_prompt),
            tokenize=False,
            add_generation_prompt=True,
        )
        for question in questions
    ]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        batch = tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = side
    was_training = model.training
    model.eval()
    with torch.no_grad():
        output = model.generate(
            **batch.to(model.device),
            max_new_tokens=plan["sample_new_tokens"],
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=end_of_turn_ids(model, tokenizer),
        )
    model.train(was_training)
    start = batch["input_ids"].shape[1]
    return [tokenizer.decode(row[start:], skip_special_tokens=True) for row in output]


def end_of_turn_ids(model, tokenizer) -> list[int]:
    """The tokens generation stops at: the model's own EOS (one or several) and the
    tokenizer's (the fallback template ends each turn with it)."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured]
    ids = [*ids, tokenizer.eos_token_id]
    return list(dict.fromkeys(i for i in ids if isinstance(i, int)))


def progress_report(name: str | None, planned_steps: int, phase: str | None = None):
    """A Trainer callback printing one line per logged step: i/N, loss, LR, time left."""
    from transformers import TrainerCallback

    label = "".join(f"[{part}] " for part in (name, phase) if part)

    class ProgressReport(TrainerCallback):
        def __init__(self) -> None:
            self._started = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            total = state.max_steps or planned_steps
            elapsed = time.perf_counter() - self._started
            left = elapsed / max(1, state.global_step) * max(0, total - state.global_step)
            say(
                f"{label}step {state.global_step}/{total}  loss {float(logs['loss']):.4f}  "
                f"lr {float(logs.get('learning_rate', 0.0)):.2e}  "
                f"{elapsed:.0f}s elapsed, ~{left:.0f}s left"
            )

    return ProgressReport()


def step_timer():
    """A Trainer callback that records the wall time and the learning rate of every
    optimizer step (the rate the step ran with, not the one after it)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.learning_rates: list[float] = []
            self._started = 0.0
            self.first_step_at: float | None = None  # perf_counter when step 1 began
            self.last_step_end_at: float | None = None

        def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
            self._started = time.perf_counter()
            if self.first_step_at is None:
                self.first_step_at = self._started
            if optimizer is not None and optimizer.param_groups:
                self.learning_rates.append(float(optimizer.param_groups[0]["lr"]))

        def on_step_end(self, args, state, control, **kwargs):
            self.last_step_end_at = time.perf_counter()
            self.seconds.append(self.last_step_end_at - self._started)

    return StepTimer()


def step_marks(started: float, timers: list) -> dict:
    """When, in seconds since the script started, an adapter's first optimizer step began
    and its last one ended (over its phases); None where no step ran."""
    firsts = [t.first_step_at for t in timers if t and t.first_step_at is not None]
    lasts = [t.last_step_end_at for t in timers if t and t.last_step_end_at is not None]
    return {
        "first_step": min(firsts) - started if firsts else None,
        "last_step_end": max(lasts) - started if lasts else None,
    }


def phase_seconds(runs: list[dict], total: float) -> dict:
    """Where the run's wall time went: from the script's start to its first optimizer step
    (imports, tokenizing, loading, the answers before), the training loop (every phase's
    steps), and from the last step to the record (evaluation, the answers after, the
    divergence, saving)."""
    firsts = [
        r["step_marks"]["first_step"] for r in runs if r["step_marks"]["first_step"] is not None
    ]
    lasts = [
        r["step_marks"]["last_step_end"]
        for r in runs
        if r["step_marks"]["last_step_end"] is not None
    ]
    if not firsts or not lasts:
        return {"to_first_step": None, "loop": None, "after_last_step": None, "total": total}
    return {
        "to_first_step": min(firsts),
        "loop": max(lasts) - min(firsts),
        "after_last_step": total - max(lasts),
        "total": total,
    }


def peak_memory_bytes(plan: dict) -> int:
    """The peak of the device the plan trains on: CUDA's allocator, or the process's
    resident memory on the CPU."""
    import torch

    if torch.cuda.is_available() and not plan["use_cpu"]:
        return torch.cuda.max_memory_allocated()
    # ru_maxrss is in KiB on Linux: the process's peak resident memory.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def describe_optimizer(trainer) -> dict:
    """Which optimizer really runs, and how many trainable tensors GaLore projects."""
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    projected, galore = 0, None
    for group in optimizer.param_groups:
        if "rank" in group:  # GaLore's projected groups carry their rank
            projected += sum(1 for p in group["params"] if p.requires_grad)
            knobs = ("rank", "update_proj_gap", "scale", "proj_type")
            galore = {knob: group[knob] for knob in knobs}
    kind = type(optimizer)
    return {
        "class": f"{kind.__module__}.{kind.__qualname__}",
        "projected_tensors": projected,
        "galore": galore,
    }


def divergence_from_base(model, base_model, examples: list[dict], plan: dict) -> dict:
    """Mean KL(trained || base) and Jensen-Shannon over the held-out rows' positions, at
    most divergence_max_positions of them (trainer-divergence-positions: a bounded
    measurement, whatever the corpus).

    How far training moved the model's next-token distributions where it was
    not trained. `base_model` is None for adapters: the adapter is switched off.
    """
    import torch

    if not examples:
        return {"delta_kl": None, "delta_js": None, "positions": 0}
    model.eval()
    kl_sum, js_sum, positions = 0.0, 0.0, 0
    with torch.no_grad():
        for example in examples:
            room = plan["divergence_max_positions"] - positions
            if room <= 0:
                break
            ids = torch.tensor([example["input_ids"][:room]], device=model.device)
            trained = torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)
            if base_model is None:
                with model.disable_adapter():
                    base = torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)
            else:
                base_ids = ids.to(base_model.device)
                base = torch.log_softmax(base_model(input_ids=base_ids).logits.float(), dim=-1)
                base = base.to(trained.device)
            middle = torch.logsumexp(torch.stack([trained, base]), dim=0) - math.log(2)
            kl = (trained.exp() * (trained - base)).sum(-1)
            js = 0.5 * (trained.exp() * (trained - middle)).sum(-1) + 0.5 * (
                base.exp() * (base - middle)
            ).sum(-1)
            kl_sum += kl.sum().item()
            js_sum += js.sum().item()
            positions += ids.shape[1]
    return {
        "delta_kl": kl_sum / positions,
        "delta_js": js_sum / positions,
        "positions": positions,
    }

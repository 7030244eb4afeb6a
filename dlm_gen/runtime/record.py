"""The run's record: run.json (what trained on what, how, and what it measured), the run
card (README.md), and the summary printed at the end."""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from dlm_gen.runtime.chat import effective_system_prompt
from dlm_gen.runtime.console import fail, rounded, say, visible
from dlm_gen.runtime.files import reason, write_atomically
from dlm_gen.runtime.measure import (
    TRAINER_ARGS_RECORDED,
    describe_optimizer,
    peak_memory_bytes,
    phase_seconds,
    step_marks,
)
from dlm_gen.runtime.preflight import installed_versions, launch_count, requirement_names
from dlm_gen.runtime.rows import rows_digest
from dlm_gen.runtime.script import Script
from dlm_gen.runtime.sft import checkpointing_keyword


@dataclass(frozen=True)
class Measured:
    """What an adapter's run measured around training: the sampled answers, the
    divergence from the base, and the peak memory before the model loaded."""

    samples: list[dict]
    divergence: dict
    memory_before_load: int


def adapter_record(
    script: Script,
    adapter: dict,
    data,
    sft,
    preference,
    model,
    tokenizer,
    measured: Measured,
    saved: Path,
) -> dict:
    """One adapter's entry of run.json: its plan and rows, each phase's numbers, what the
    model and the optimizer were, and its answers before and after."""
    import torch

    plan = adapter["plan"]
    trainer = sft.trainer if sft else preference.trainer
    losses = sft.losses if sft else preference.record["losses"]
    wall_seconds = sft.wall_seconds if sft else 0.0
    seconds = sft.timer.seconds if sft else []
    return {
        "name": adapter["name"],
        "adapter_dir": str(saved) if plan["peft"] else None,
        "model_dir": None if plan["peft"] else str(saved),
        "reason": adapter["reason"],
        "plan": plan,
        "rows": {
            "train": len(data.train_rows),
            "held_out": len(data.held_out),
            "eval_on": "held-out rows" if data.held_out else "training rows",
        },
        "rows_sha256": rows_digest(data.rows),
        "truncation": data.cut.to_json(),
        "packing": {
            "on": plan["packing"],
            "train_samples": data.samples["train"],
            "train_rows": len(data.train_examples),
            "eval_samples": data.samples["eval"],
            "eval_rows": len(data.eval_examples),
        },
        **(sft.tokens if sft else {"tokens_trained": 0, "padding_tokens": 0}),
        "steps": sft.result.global_step if sft else 0,
        "first_loss": losses[0] if losses else None,
        "final_train_loss": losses[-1] if losses else None,
        "train_loss": sft.result.training_loss if sft else None,
        "eval_loss": sft.eval_loss if sft else None,
        "losses": losses if sft else [],
        **measured.divergence,
        "step_seconds": seconds,
        "median_step_seconds": statistics.median(seconds) if seconds else None,
        "learning_rates": sft.timer.learning_rates if sft else [],
        "system_prompt": effective_system_prompt(tokenizer, script.system_prompt),
        "mean_step_seconds": sum(seconds) / max(1, len(seconds)),
        "wall_seconds": wall_seconds,
        "tokens_per_second": (trainer.state.num_input_tokens_seen / wall_seconds if sft else None),
        "peak_memory_bytes": peak_memory_bytes(plan),
        "peak_memory_before_load_bytes": measured.memory_before_load,
        "optimizer": describe_optimizer(trainer),
        "trainer_args": {
            **{name: getattr(trainer.args, name) for name in TRAINER_ARGS_RECORDED},
            # The Trainer's own, or (under FSDP) FSDP's activation checkpointing.
            "gradient_checkpointing": getattr(trainer.args, checkpointing_keyword())
            or bool((trainer.args.fsdp_config or {}).get("activation_checkpointing")),
        },
        "loaded_in_4bit": bool(getattr(model, "is_loaded_in_4bit", False)),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "torch_threads": torch.get_num_threads(),
        "preference": preference.record if preference else None,
        "samples": measured.samples,
        # Seconds since the script started: the first step's start, the last step's end.
        "step_marks": step_marks(
            script.started, [sft.timer if sft else None, preference.timer if preference else None]
        ),
    }


def paired_samples(questions: list[dict], before: list[str], after: list[str]) -> list[dict]:
    """Each sampled question with its answers before and after training."""
    return [
        {**question, "before": answer_before, "after": answer_after}
        for question, answer_before, answer_after in zip(questions, before, after, strict=True)
    ]


def only_first_rank_writes(script: Script, runs: list[dict]) -> bool:
    """Whether this process writes the record: rank 0 only (each rank of a launch says
    how many steps it trained)."""
    rank = launch_count(script, "RANK", 0)
    if launch_count(script, "WORLD_SIZE", 1) > 1:
        say(f"rank {rank}: trained {', '.join(str(run['steps']) for run in runs)} step(s)")
    return rank == 0


def write_run_record(script: Script, runs: list[dict], args: argparse.Namespace) -> Path:
    """run.json and the run card, each written whole (or a stop naming what failed)."""
    manifest = {
        "hash": script.hash,
        "source_document": script.source_document,
        "target": script.target["name"],
        "world_size": launch_count(script, "WORLD_SIZE", 1),
        "nodes": launch_count(script, "GROUP_WORLD_SIZE", 1),
        "processes_per_node": launch_count(script, "LOCAL_WORLD_SIZE", 1),
        "base_model": script.base_model,
        "export": script.export,
        "data": script.data,
        "sources": script.sources,
        "adapters": runs,
        "versions": versions(script),
        "report_to": args.report_to,
        # Where the wall time went, up to this record (the README's phases).
        "timings": phase_seconds(runs, time.perf_counter() - script.started),
    }
    path = args.output_dir / "run.json"
    try:
        write_atomically(path, json.dumps(manifest, indent=2) + "\n")
        write_run_card(script, args.output_dir, runs, args)
    except OSError as error:  # a full disk; a directory made where the card goes
        fail(f"cannot write {error.filename or args.output_dir}: {reason(error)}")
    return path


def versions(script: Script) -> dict:
    """Python, dlm-gen and the installed version of every package the plan requires."""
    found = {"python": platform.python_version(), "dlm-gen": script.dlm_gen_version}
    return {**found, **installed_versions(requirement_names(script.requirements))}


def write_run_card(
    script: Script, output_dir: Path, runs: list[dict], args: argparse.Namespace
) -> None:
    """README.md of the run: what trained on what, and how to use it (it replaces the
    libraries' model-card templates, which name no base for a local model). Every line
    is escaped (visible): rows, answers and names cannot hide text from its reader; the
    command line quotes its paths, so pasting it runs the script and nothing else."""
    base = script.base_model
    revision = base["revision"] or "default branch"
    base_path = f" --base-path {shlex.quote(str(args.base_path))}" if args.base_path else ""
    command = (
        f"python {shlex.quote(script.name)} --output-dir {shlex.quote(str(output_dir))}{base_path}"
    )
    lines = [
        f"# {script.name} run",
        "",
        f"Trained by `{script.name}` (dlm-gen) from `{script.source_document}`.",
        f"Base model: `{base['path']}` @ {revision} ({base['architecture']}).",
        "",
    ]
    for run in runs:
        saved = run["adapter_dir"] or run["model_dir"]
        system = run["system_prompt"]
        lines += [
            f"## {run['name'] or 'adapter'}",
            "",
            f"- plan: {run['reason']}",
            f"- rows: {run['rows']['train']} trained, {run['rows']['held_out']} held out; "
            f"eval loss {rounded(run['eval_loss'])} on {run['rows']['eval_on']}",
            f"- {run['steps']} steps, loss {rounded(run['first_loss'])} -> "
            f"{rounded(run['final_train_loss'])}",
            f"- system prompt ({system['source']}): {system['text']!r}",
            *preference_lines(run["preference"]),
            f"- saved in `{saved}`",
            f'- try it: `{command} --prompt "..."`',
            "",
            "| question | before | after |",
            "|---|---|---|",
            *(
                "| "
                + " | ".join(
                    " ".join(str(s[key]).split()).replace("|", "\\|")
                    for key in ("question", "before", "after")
                )
                + " |"
                for s in run["samples"]
            ),
            "",
        ]
    text = "\n".join(visible(line) for line in lines)
    write_atomically(output_dir / "README.md", text)
    for run in runs:
        write_atomically(Path(run["adapter_dir"] or run["model_dir"]) / "README.md", text)


def preference_lines(preference: dict | None) -> list[str]:
    """The run card's line for the preference phase (none without one)."""
    if not preference:
        return []
    accuracy, margin = preference["reward_accuracy"], preference["reward_margin"]
    return [
        f"- {preference['method']} on {preference['triples']['train']} triples, "
        f"{preference['steps']} steps: reward accuracy {rounded(accuracy['before'])} -> "
        f"{rounded(accuracy['after'])}, margin {rounded(margin['before'])} -> "
        f"{rounded(margin['after'])} on {preference['eval_on']}"
    ]


def print_report(runs: list[dict], record: Path) -> None:
    """Before and after, side by side, then one line per adapter and the record's path."""
    for run in runs:
        print_samples(run)
    for run in runs:
        print_summary(run)
    say(f"run record: {record}")


def print_samples(run: dict) -> None:
    """Before and after, side by side: what the run changed, in words."""
    label = f" [{run['name']}]" if run["name"] else ""
    for sample in run["samples"]:
        print()
        say(f"{sample['split']}{label} Q: {sample['question']}")
        say(f"  before: {' '.join(sample['before'].split())}")
        say(f"  after:  {' '.join(sample['after'].split())}")


def print_summary(run: dict) -> None:
    """One line per adapter: what training did, in the numbers run.json keeps."""
    label = f"[{run['name']}] " if run["name"] else ""
    median = run["median_step_seconds"] or 0.0
    say(
        f"{label}{run['steps']} steps in {run['wall_seconds']:.0f}s (median step "
        f"{median:.2f}s); loss {rounded(run['first_loss'])} -> "
        f"{rounded(run['final_train_loss'])}; eval loss {rounded(run['eval_loss'])} on "
        f"{run['rows']['held_out'] or run['rows']['train']} {run['rows']['eval_on']}; "
        f"saved {run['adapter_dir'] or run['model_dir']}"
    )
    preference = run["preference"]
    if preference:
        accuracy, margin = preference["reward_accuracy"], preference["reward_margin"]
        last = preference["losses"][-1] if preference["losses"] else None
        say(
            f"{label}{preference['method']}: {preference['steps']} steps, loss "
            f"{rounded(preference['first_loss'])} -> {rounded(last)}; "
            f"reward accuracy {rounded(accuracy['before'])} -> {rounded(accuracy['after'])}, "
            f"margin {rounded(margin['before'])} -> {rounded(margin['after'])} on "
            f"{preference['eval_on']}"
        )

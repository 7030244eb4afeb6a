"""The run, step by step: what a generated script does, in the order it does it.

A script carries this function right after its plan and data literals, and
calls it at its end with those literals as one `Script`; every function it
calls is in the runtime appended below it.
"""

from __future__ import annotations

import argparse

from dlm_gen.runtime.base import find_base_model
from dlm_gen.runtime.console import escape_console
from dlm_gen.runtime.data import prepare_data
from dlm_gen.runtime.flags import parse_args
from dlm_gen.runtime.loading import load_model, load_tokenizer, seed_everything, set_up_libraries
from dlm_gen.runtime.measure import divergence_from_base, greedy_answers, peak_memory_bytes
from dlm_gen.runtime.preference import PreferencePhase, train_preference
from dlm_gen.runtime.preflight import agree_on_script, preflight
from dlm_gen.runtime.prompt import answer_prompt
from dlm_gen.runtime.record import (
    Measured,
    adapter_record,
    only_first_rank_writes,
    paired_samples,
    print_report,
    write_run_record,
)
from dlm_gen.runtime.rundir import make_run_directory, remove_checkpoints
from dlm_gen.runtime.script import Script, adapter_dir, saved_dir
from dlm_gen.runtime.sft import save_result, train_sft


def main(script: Script) -> None:
    """Check everything that can be checked before anything heavy loads, train each
    adapter, then record the run and report it."""
    escape_console()  # all output escaped: no row, path or answer can drive the terminal
    args = parse_args(script)  # every flag checked before anything heavy loads
    base = find_base_model(script, args)  # --base-path, --base-dir, or where the plan says
    preflight(script)  # rows, launch, versions and host against the plan
    agree_on_script(script)  # every process of a launch runs this very file
    set_up_libraries(script, args.report_to)
    if args.prompt is not None:  # try what a run trained, then stop
        answer_prompt(script, args, base)
        return
    make_run_directory(args.output_dir)
    runs = [train_adapter(script, adapter, args, base) for adapter in script.adapters]
    if not only_first_rank_writes(script, runs):  # the Trainer saved on rank 0 alone
        return
    for adapter in script.adapters:
        if not (adapter["plan"]["keep_checkpoints"] or args.keep_checkpoints):
            remove_checkpoints(adapter_dir(args.output_dir, adapter))
    print_report(runs, write_run_record(script, runs, args))


def train_adapter(script: Script, adapter: dict, args: argparse.Namespace, base: str) -> dict:
    """One adapter: tokenize its rows, load the base, answer the sample questions, train
    (SFT, then the preference phase, each where the plan has it), measure, answer
    again, save; its entry of run.json."""
    plan, name = adapter["plan"], adapter["name"]
    revision, system_prompt = script.base_model["revision"], script.system_prompt
    output_dir = adapter_dir(args.output_dir, adapter)
    seed_everything(plan["seed"], plan["deterministic"])
    tokenizer, added_pad = load_tokenizer(plan, base, revision)
    data = prepare_data(script.rows, adapter, tokenizer, system_prompt)
    memory_before_load = peak_memory_bytes(plan)
    model = load_model(plan, tokenizer, added_pad, base, revision)
    before = greedy_answers(model, tokenizer, data.questions, system_prompt, plan)
    sft = preference = None
    if plan["sft_phase"]:  # corpus-sft-phase: prose and instruction pairs train first
        sft = train_sft(model, tokenizer, data, plan, args, name, output_dir)
        model = sft.trainer.model
    if plan["preference_method"]:  # preference-dpo, preference-orpo: then the triples
        phase = PreferencePhase(data.triples, system_prompt, base, revision, sft is not None)
        preference = train_preference(model, tokenizer, phase, plan, args, name, output_dir)
        model = preference.trainer.model
    # adapter-full: the base is loaded again to compare with; an adapter is switched off
    reference = None if plan["peft"] else load_model(plan, tokenizer, False, base, revision)
    divergence = divergence_from_base(model, reference, data.eval_examples, plan)
    after = greedy_answers(model, tokenizer, data.questions, system_prompt, plan)
    saved = saved_dir(args.output_dir, adapter)
    save_result((preference or sft).trainer, saved)  # the last phase's trainer holds it
    tokenizer.save_pretrained(str(saved))
    measured = Measured(
        paired_samples(data.questions, before, after), divergence, memory_before_load
    )
    return adapter_record(script, adapter, data, sft, preference, model, tokenizer, measured, saved)

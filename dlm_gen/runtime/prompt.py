"""--prompt: try what a run trained, from its --output-dir, without training again."""

from __future__ import annotations

import argparse

from dlm_gen.runtime.console import say
from dlm_gen.runtime.loading import load_model, load_tokenizer, loaded
from dlm_gen.runtime.measure import greedy_answers
from dlm_gen.runtime.script import Script, saved_dir


def answer_prompt(script: Script, args: argparse.Namespace, base: str) -> None:
    """Load the base (from `base`) and each trained adapter from --output-dir (the flags
    checked they are there), and answer --prompt greedily with each."""
    from peft import PeftModel

    revision = script.base_model["revision"]
    for adapter in script.adapters:
        plan = adapter["plan"]
        saved = saved_dir(args.output_dir, adapter)
        tokenizer, added_pad = load_tokenizer(plan, str(saved), None)
        if plan["peft"]:
            model = load_model(plan, tokenizer, added_pad, base, revision)
            model = loaded("adapter", str(saved), PeftModel.from_pretrained, model, str(saved))
        else:
            model = load_model(plan, tokenizer, False, str(saved), None)
        [answer] = greedy_answers(
            model,
            tokenizer,
            [{"question": args.prompt}],
            script.system_prompt,
            plan,
        )
        label = f"[{adapter['name']}] " if adapter["name"] else ""
        say(f"{label}{' '.join(answer.split())}")

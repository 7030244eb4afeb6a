"""One adapter's data, ready for the trainers: its rows split, tokenized, cut where the
plan allows, packed where it packs, and the questions sampled before and after."""

from __future__ import annotations

from dataclasses import dataclass, field

from dlm_gen.runtime.measure import sample_questions
from dlm_gen.runtime.packing import PackedCollator, pack_examples
from dlm_gen.runtime.rows import rows_of_adapter, sft_rows_and_triples, split_rows
from dlm_gen.runtime.tokens import Cut, check_cut, tokenize_rows


@dataclass
class PreparedData:
    """What an adapter trains and is measured on."""

    rows: list[dict]  # every row of the adapter (its own and the untagged ones)
    train_rows: list[dict]
    held_out: list[dict]
    triples: list[dict]
    train_examples: list[dict]  # tokenized (and packed) SFT rows
    eval_examples: list[dict]
    samples: dict  # tokenized samples before packing: {"train": n, "eval": n}
    questions: list[dict]  # answered before and after training
    collator: object = None  # packing's, or None for SFTTrainer's own
    cut: Cut = field(default_factory=Cut)


def prepare_data(
    rows: list[dict], adapter: dict, tokenizer, system_prompt: str | None
) -> PreparedData:
    """Split (runtime-eval-*), tokenize, count what sequence_len cuts (truncation-*),
    pack (packing-*) and pick the sample questions, for one adapter."""
    plan, name = adapter["plan"], adapter["name"]
    own = rows_of_adapter(rows, name)
    sft_rows, triples = sft_rows_and_triples(own)
    train_rows, held_out = split_rows(sft_rows, plan["seed"], plan["eval_fraction"])
    eval_rows = held_out or train_rows  # nothing held out: evaluate on the training rows
    cut, eval_cut = Cut(), Cut()
    length = plan["sequence_len"]
    train_examples = tokenize_rows(train_rows, tokenizer, system_prompt, length, cut)
    eval_examples = tokenize_rows(eval_rows, tokenizer, system_prompt, length, eval_cut)
    if held_out:  # every row of the adapter counts once
        cut = cut.plus(eval_cut)
    check_cut(cut, plan, f"[{name}] " if name else "")
    samples = {"train": len(train_examples), "eval": len(eval_examples)}
    collator = None
    if plan["packing"]:  # whole samples share a row, attention kept apart
        train_examples = pack_examples(train_examples, length)
        eval_examples = pack_examples(eval_examples, length)
        collator = PackedCollator(tokenizer.pad_token_id)
    questions = sample_questions(train_rows, held_out, plan["sample_questions"], triples)
    return PreparedData(
        own,
        train_rows,
        held_out,
        triples,
        train_examples,
        eval_examples,
        samples,
        questions,
        collator,
        cut,
    )

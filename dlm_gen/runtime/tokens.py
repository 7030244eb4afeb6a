"""Rows into tokens: prose as windows, instruction pairs with the prompt masked out of
the loss, preference triples as DPO's prompt/chosen/rejected ids.

Nothing is cut silently: prose is split into windows of `sequence_len` (every
token trains), an instruction row longer than `sequence_len` is cut and
counted (rows and tokens lost, in run.json), and the plan's truncation rows
decide when the share of cut rows warns or stops the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlm_gen.runtime.chat import prompt_and_answer
from dlm_gen.runtime.console import fail, say


@dataclass
class Cut:
    """What cutting at sequence_len took: instruction rows cut, tokens lost, of rows."""

    rows: int = 0
    tokens: int = 0
    of_rows: int = 0

    def plus(self, other: Cut) -> Cut:
        return Cut(self.rows + other.rows, self.tokens + other.tokens, self.of_rows + other.of_rows)

    def to_json(self) -> dict:
        return {"rows_cut": self.rows, "tokens_lost": self.tokens, "instruction_rows": self.of_rows}


def tokenize_rows(
    rows: list[dict], tokenizer, system_prompt: str | None, max_length: int, cut: Cut
) -> list[dict]:
    """input_ids and labels; prompts (system + question) are masked out of the loss. The
    instruction rows cut at `max_length` are counted into `cut`."""
    examples = []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for row in rows:
        if row["kind"] == "text":
            ids = tokenizer(row["text"], add_special_tokens=False)["input_ids"] + eos
            # Continued pretraining: long prose is cut into windows, nothing is dropped.
            for start in range(0, len(ids), max_length):
                window = ids[start : start + max_length]
                examples.append({"input_ids": window, "labels": list(window)})
            continue
        prompt_ids, answer_ids = prompt_and_answer(
            tokenizer, system_prompt, row["question"], row["answer"]
        )
        ids = prompt_ids + answer_ids
        cut.of_rows += 1
        if len(ids) > max_length:
            cut.rows += 1
            cut.tokens += len(ids) - max_length
        labels = [-100] * len(prompt_ids) + answer_ids
        examples.append({"input_ids": ids[:max_length], "labels": labels[:max_length]})
    return examples


def check_cut(cut: Cut, plan: dict, label: str) -> None:
    """truncation-*: say how many instruction rows sequence_len cuts past the plan's warning
    share, and stop (exit 1, before the model loads) past its refusal share."""
    if not cut.rows:
        return
    share = cut.rows / max(1, cut.of_rows)
    words = (
        f"{label}{cut.rows} of {cut.of_rows} instruction row(s) ({share:.0%}) are longer than "
        f"sequence_len {plan['sequence_len']}: {cut.tokens} token(s) of their answers are cut"
    )
    if share > plan["truncation_refuse_share"]:
        fail(
            f"{words}, more than the plan allows ({plan['truncation_refuse_share']:.0%}): "
            "raise sequence_len in the document, or shorten the rows"
        )
    if share > plan["truncation_warn_share"]:
        say(f"warning: {words}")


def tokenize_triples(
    triples: list[dict], tokenizer, system_prompt: str | None, max_length: int
) -> tuple[list[dict], int]:
    """DPO's prompt_ids / chosen_ids / rejected_ids, cut to max_length; and how many
    triples were left out because their prompt alone fills it (no answer to compare)."""
    examples, left_out = [], 0
    for row in triples:
        prompt_ids, chosen_ids = prompt_and_answer(
            tokenizer, system_prompt, row["prompt"], row["chosen"]
        )
        _, rejected_ids = prompt_and_answer(
            tokenizer, system_prompt, row["prompt"], row["rejected"]
        )
        room = max_length - len(prompt_ids)
        if room <= 0:
            left_out += 1
            continue
        examples.append(
            {
                "prompt_ids": prompt_ids,
                "chosen_ids": chosen_ids[:room],
                "rejected_ids": rejected_ids[:room],
            }
        )
    return examples, left_out


def triples_as_text(examples: list[dict], tokenizer) -> list[dict]:
    """ORPO's prompt / chosen / rejected strings: tokenize_triples' tokens as text (its
    trainer tokenizes strings itself)."""
    return [
        {
            "prompt": tokenizer.decode(example["prompt_ids"]),
            "chosen": tokenizer.decode(example["chosen_ids"]),
            "rejected": tokenizer.decode(example["rejected_ids"]),
        }
        for example in examples
    ]

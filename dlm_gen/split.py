"""The rows a script trains on and the rows it holds out, known before it runs.

The script embeds its rows (`script_rows`) and splits them by a hash of the
seed and each row's own text, so adding a section never reshuffles the
others. The same split is computed here, so that `explain`, the script's
header and `run.json` show the same counts: a reader sees, before training,
that a 3-row document evaluates on its training rows, or which share of a
corpus is held out. The split is the runtime's own `split_rows`
(dlm_gen/runtime/rows.py), the very function the script runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlm_gen.document import Document, InstructionRow, PreferenceRow, TextRow
from dlm_gen.runtime.rows import split_rows


def script_rows(document: Document) -> list[dict[str, object]]:
    """The rows as the script embeds them, with their lines: prose and instruction pairs
    (the SFT phase), then preference triples (the preference phase)."""
    rows: list[dict[str, object]] = []
    for row in document.rows:
        if isinstance(row, TextRow):
            text_row = {"kind": "text", "adapter": row.adapter, "line": row.line, "text": row.text}
            if row.source is not None:  # a file of training.sources: its line is the path's
                text_row["source"] = row.source
            rows.append(text_row)
        elif isinstance(row, InstructionRow):
            rows.append(
                {
                    "kind": "instruction",
                    "adapter": row.adapter,
                    "line": row.line,
                    "question": row.question,
                    "answer": row.answer,
                }
            )
        elif isinstance(row, PreferenceRow):
            rows.append(
                {
                    "kind": "preference",
                    "adapter": row.adapter,
                    "line": row.line,
                    "prompt": row.prompt,
                    "chosen": row.chosen,
                    "rejected": row.rejected,
                }
            )
    return rows


@dataclass(frozen=True)
class RowCounts:
    """What one adapter trains on and what its eval loss is measured on; the preference
    triples are split the same way, apart from the SFT rows."""

    train: int
    held_out: int
    triples_train: int = 0
    triples_held_out: int = 0

    @property
    def eval_on(self) -> str:
        return "held-out rows" if self.held_out else "training rows"

    def describe(self) -> str:
        if self.held_out:
            text = f"{self.train} train, {self.held_out} held out for the eval loss"
        elif self.train:
            text = f"{self.train} train, none held out: the eval loss is measured on training rows"
        else:
            text = "no SFT rows"
        if self.triples_train or self.triples_held_out:
            held = (
                f"{self.triples_held_out} held out for reward accuracy and margin"
                if self.triples_held_out
                else "none held out: rewards are measured on training triples"
            )
            text += f"; preference triples: {self.triples_train} train, {held}"
        return text

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "train": self.train,
            "held_out": self.held_out,
            "eval_on": self.eval_on,
        }
        if self.triples_train or self.triples_held_out:
            data["triples"] = {"train": self.triples_train, "held_out": self.triples_held_out}
        return data


def row_counts(
    rows: list[dict],
    adapter: str | None,
    seed: object,
    eval_fraction: object,
    preference_eval_fraction: object = 0.0,
    preference_on: bool = False,
) -> RowCounts | None:
    """The split of one adapter's rows under its plan (None while the plan is undecided)."""
    if not isinstance(seed, int) or not isinstance(eval_fraction, (int, float)):
        return None
    own = [row for row in rows if row["adapter"] in (None, adapter)]
    sft = [row for row in own if row["kind"] != "preference"]
    triples = [row for row in own if row["kind"] == "preference"]
    train, held_out = split_rows(sft, seed, float(eval_fraction))
    triples_train, triples_held_out = [], []
    if preference_on and isinstance(preference_eval_fraction, (int, float)):
        triples_train, triples_held_out = split_rows(triples, seed, float(preference_eval_fraction))
    return RowCounts(len(train), len(held_out), len(triples_train), len(triples_held_out))

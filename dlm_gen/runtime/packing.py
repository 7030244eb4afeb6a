"""Packing (packing-*): whole samples share a row of sequence_len tokens, their
attention kept apart by position ids that restart at each sample; and a collator
that counts the tokens it hands the model."""

from __future__ import annotations

import bisect


def pack_examples(examples: list[dict], max_length: int) -> list[dict]:
    """Best-fit decreasing: longest sample first, each into the fullest row it still fits
    (a new row when none has room). A packed row keeps its samples' lengths; the first
    label of each sample is masked, so no sample is predicted from the one before."""
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i]["input_ids"]), i))
    rows: list[list[int]] = []
    rooms: list[tuple[int, int]] = []  # (room left, row), ascending: the best fit first
    for index in order:
        size = len(examples[index]["input_ids"])
        at = bisect.bisect_left(rooms, (size, -1))
        if at == len(rooms):
            rows.append([index])
            room, row = max_length - size, len(rows) - 1
        else:
            room, row = rooms.pop(at)
            rows[row].append(index)
            room -= size
        bisect.insort(rooms, (room, row))
    packed = []
    for members in rows:
        samples = [examples[i] for i in members]
        packed.append(
            {
                "input_ids": [t for sample in samples for t in sample["input_ids"]],
                "labels": [
                    -100 if position == 0 else label
                    for sample in samples
                    for position, label in enumerate(sample["labels"])
                ],
                "seq_lengths": [len(sample["input_ids"]) for sample in samples],
            }
        )
    return packed


class PackedCollator:
    """Packed rows into a batch with no attention mask: position_ids restart at each
    sample, which is what makes the attention block-diagonal (packing-*). A row shorter
    than the batch's longest is filled with pad tokens that form a sample of their own
    (positions from 0, labels masked), so they touch no real token."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        width = max(len(row["input_ids"]) for row in rows)
        input_ids, labels, position_ids = [], [], []
        for row in rows:
            pad = width - len(row["input_ids"])
            input_ids.append(list(row["input_ids"]) + [self.pad_token_id] * pad)
            labels.append(list(row["labels"]) + [-100] * pad)
            lengths = list(row["seq_lengths"]) + ([pad] if pad else [])
            position_ids.append([p for length in lengths for p in range(length)])
        return {
            "input_ids": torch.tensor(input_ids),
            "labels": torch.tensor(labels),
            "position_ids": torch.tensor(position_ids),
        }


class CountingCollator:
    """The batch collator, counting the tokens it hands the model: real ones (the
    samples' own) and padding, for run.json's tokens_trained and padding_tokens."""

    def __init__(self, collate):
        self.collate = collate
        self.tokens = 0
        self.padding = 0

    def __call__(self, examples: list[dict]) -> dict:
        batch = self.collate(examples)
        real = sum(len(example["input_ids"]) for example in examples)
        self.tokens += real
        self.padding += batch["input_ids"].numel() - real
        return batch

    def totals(self) -> dict:
        """Summed over every rank (each counts its own batches)."""
        import torch
        import torch.distributed as dist

        counts = torch.tensor([self.tokens, self.padding], dtype=torch.int64)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(counts)
        return {"tokens_trained": int(counts[0]), "padding_tokens": int(counts[1])}

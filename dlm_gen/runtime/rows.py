"""The rows an adapter trains on, and the ones it holds out.

Rows tagged to an adapter train only that adapter; untagged rows train every
adapter. The held-out rows are chosen by a hash of the seed and each row's own
text, so adding a section never reshuffles the others; dlm-gen computes the
same split when it plans (explain's and the header's row counts), with these
very functions.
"""

from __future__ import annotations

import hashlib
import json


def rows_of_adapter(rows: list[dict], name: str | None) -> list[dict]:
    """The rows that train adapter `name`: its own and the untagged ones."""
    return [row for row in rows if row["adapter"] in (None, name)]


def sft_rows_and_triples(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(prose and instruction rows, for the SFT phase; preference triples)."""
    sft = [row for row in rows if row["kind"] != "preference"]
    triples = [row for row in rows if row["kind"] == "preference"]
    return sft, triples


def row_key(row: dict, seed: int) -> float:
    """A number in [0, 1) from the seed and the row's own text only."""
    fields = [seed, row["kind"], row.get("text"), row.get("question"), row.get("answer")]
    if row["kind"] == "preference":
        fields += [row["prompt"], row["chosen"], row["rejected"]]
    content = json.dumps(fields)
    digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
    return int(digest[:15], 16) / 16**15


def split_rows(rows: list[dict], seed: int, eval_fraction: float) -> tuple[list[dict], list[dict]]:
    """(training rows, held-out rows): a fraction of 0 holds none out; a positive
    fraction too small for the rows still holds out one (the lowest key) of two or more."""
    if eval_fraction <= 0:
        return list(rows), []
    keyed = sorted(rows, key=lambda row: row_key(row, seed))
    held_out = [row for row in keyed if row_key(row, seed) < eval_fraction]
    if not held_out and len(rows) >= 2:
        held_out = keyed[:1]
    train = [row for row in rows if row not in held_out]
    return train, held_out


def embedded_rows_digest(rows: list[dict]) -> str:
    """SHA-256 of the rows exactly as embedded (their order, lines and adapters too): the
    script's DATA names it, and the preflight checks the rows still have it."""
    canonical = json.dumps(rows, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def rows_digest(rows: list[dict]) -> str:
    """Which rows a run trained on, for comparing twin runs of one corpus."""
    # Not the document line: twin documents may differ there. A triple's three texts
    # count only for triples, so the digest of runs without them keeps its value.
    fields = ("kind", "text", "question", "answer")
    triple = ("prompt", "chosen", "rejected")
    contents = sorted(
        json.dumps(
            [row.get(name) for name in fields]
            + ([row[name] for name in triple] if row["kind"] == "preference" else [])
        )
        for row in rows
    )
    canonical = json.dumps(contents)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

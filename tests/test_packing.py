"""Sequence packing: the plan's rows, the script's best-fit packer and its collator, and
the fact it rests on: packed samples give exactly the unpacked loss on this stack."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlm_gen.runtime import packing
from tests.conftest import plan_of, write_dlm

INSTRUCTIONS = "\n".join(
    f"::instruction::\n### Q\nQuestion {i}: {'why ' * (i % 5)}?\n"
    f"### A\n{'Because. ' * (1 + i % 7)}\n"
    for i in range(12)
)


@pytest.fixture(scope="module")
def code() -> dict:
    """The runtime's packer and collators (what every script carries)."""
    return {
        "pack_examples": packing.pack_examples,
        "PackedCollator": packing.PackedCollator,
        "CountingCollator": packing.CountingCollator,
    }


def test_sdpa_plans_pack_and_say_why(tmp_path):
    plan = plan_of(tmp_path, {}, body=INSTRUCTIONS)
    assert plan.fields["packing"] is True
    [rule] = [d.rule for d in plan.decisions if d.field == "packing"]
    assert rule == "packing-block-diagonal-mask"
    assert {"transformers>=4.54", "torch>=2.6"} <= {str(r) for r in plan.requirement_specs}


def test_the_document_turns_packing_off(tmp_path):
    plan = plan_of(tmp_path, {"packing": False}, body=INSTRUCTIONS)
    assert plan.fields["packing"] is False
    assert "transformers>=4.54" not in {str(r) for r in plan.requirement_specs}


def test_flash_attention_packs_through_its_varlen_kernel(tmp_path):
    plan = plan_of(tmp_path, {"attention": "flash_attention_2"}, target="a100-80gb")
    assert plan.fields["packing"] is True
    assert [d.rule for d in plan.decisions if d.field == "packing"] == ["packing-varlen-kernel"]


def test_a_preference_only_adapter_packs_nothing(tmp_path):
    body = "::preference::\n### Prompt\nHi\n### Chosen\nHello!\n### Rejected\nWhat.\n"
    plan = plan_of(tmp_path, {}, body=body)
    assert plan.fields["sft_phase"] is False and plan.fields["packing"] is False


def test_packing_must_be_a_boolean(tmp_path, cli):
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m", "training": {"packing": "maybe"}})
    code, _, err = cli("explain", path)
    assert code == 1 and "training.packing" in err and "Traceback" not in err


def example(length: int, prompt: int = 0, start: int = 1) -> dict:
    ids = [start + (i % 50) for i in range(length)]
    return {"input_ids": ids, "labels": [-100] * min(prompt, length) + ids[prompt:]}


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 64), min_size=1, max_size=60),
    max_length=st.integers(64, 160),
)
def test_best_fit_keeps_every_sample_whole_once_and_leaves_no_two_rows_mergeable(
    code, lengths, max_length
):
    examples = [example(n, prompt=n // 3, start=i) for i, n in enumerate(lengths)]
    rows = code["pack_examples"](examples, max_length)
    assert sorted(n for row in rows for n in row["seq_lengths"]) == sorted(lengths)
    for row in rows:
        assert len(row["input_ids"]) == len(row["labels"]) == sum(row["seq_lengths"])
        assert len(row["input_ids"]) <= max_length
        start = 0
        for n in row["seq_lengths"]:
            assert row["labels"][start] == -100  # never predicted from the sample before
            start += n
    # Any-fit packing: a row was opened only when the sample fitted no earlier row.
    sizes = [len(row["input_ids"]) for row in rows]
    assert all(a + b > max_length for i, a in enumerate(sizes) for b in sizes[i + 1 :])


def test_the_collator_restarts_positions_per_sample_and_pads_as_a_sample_of_its_own(code):
    rows = code["pack_examples"]([example(3), example(2), example(4)], 5)
    batch = code["PackedCollator"](pad_token_id=0)(rows)
    assert "attention_mask" not in batch  # a mask would turn the block-diagonal mask off
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0], [0, 1, 2, 0, 1]]
    assert batch["input_ids"][0, 4] == 0 and batch["labels"][0, 4] == -100  # the pad
    assert batch["labels"].tolist()[1] == [-100, 2, 3, -100, 2]  # each sample's first masked
    counter = code["CountingCollator"](code["PackedCollator"](pad_token_id=0))
    counter(rows)
    assert counter.totals() == {"tokens_trained": 9, "padding_tokens": 1}


def mean_loss(model, batch) -> float:
    import torch

    with torch.no_grad():
        return float(model(**batch).loss)


def test_packed_loss_equals_unpacked_loss_and_contamination_is_caught(code, tiny_model):
    """The same rows, padded one by one vs packed by the script's packer and collator:
    the same loss to 1e-5 on sdpa. The test's own check fails when samples can see each
    other: an all-ones attention mask, or a cache, disables the block-diagonal mask."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="sdpa")
    model.eval()
    examples = [
        example(n, prompt=n // 4, start=3 * i) for i, n in enumerate([9, 30, 17, 5, 22, 12])
    ]
    width = max(len(e["input_ids"]) for e in examples)
    unpacked = {
        "input_ids": torch.tensor(
            [e["input_ids"] + [0] * (width - len(e["input_ids"])) for e in examples]
        ),
        "attention_mask": torch.tensor(
            [[1] * len(e["input_ids"]) + [0] * (width - len(e["input_ids"])) for e in examples]
        ),
        "labels": torch.tensor(
            [e["labels"] + [-100] * (width - len(e["labels"])) for e in examples]
        ),
    }
    rows = code["pack_examples"](examples, 40)
    assert len(rows) < len(examples)  # samples really share rows
    packed = {**code["PackedCollator"](pad_token_id=0)(rows), "use_cache": False}
    expected = mean_loss(model, unpacked)

    def gap(batch) -> float:
        return abs(mean_loss(model, batch) - expected)

    assert gap(packed) < 1e-5
    all_ones = {**packed, "attention_mask": torch.ones_like(packed["input_ids"])}
    assert gap(all_ones) > 1e-3  # samples attend to the ones packed before them
    cached = {**packed, "use_cache": True}
    assert gap(cached) > 1e-3

"""trainer-sft-loss-*: on a CPU the SFT loss is the model's own cross-entropy over full
logits instead of TRL's tiled LM head; both must be the same loss, on packed rows (no
cache, so samples stay apart) and on padded ones."""

from __future__ import annotations

import pytest

from dlm_gen.runtime.packing import PackedCollator, pack_examples
from dlm_gen.runtime.sft import trainer_class
from tests.conftest import plan_of

pytestmark = pytest.mark.slow


def test_the_plan_chooses_the_loss_by_backend(tmp_path):
    assert plan_of(tmp_path, {}, target="cpu").fields["sft_loss"] == "full_logits"
    assert plan_of(tmp_path, {}, target="a100-80gb").fields["sft_loss"] == "trl_fused_head"


def examples() -> list[dict]:
    """Three samples of different lengths, their first tokens masked like prompts."""
    rows = []
    for length in (7, 12, 5):
        ids = [(3 * length + i) % 250 + 3 for i in range(length)]
        rows.append({"input_ids": ids, "labels": [-100, -100, *ids[2:]]})
    return rows


@pytest.mark.parametrize("packed", [True, False])
def test_full_logits_and_the_fused_head_give_one_loss(tmp_path, tiny_model, packed):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.pad_token = tokenizer.eos_token
    rows = pack_examples(examples(), 32) if packed else examples()
    collator = PackedCollator(tokenizer.pad_token_id) if packed else None
    losses = {}
    for loss in ("full_logits", "trl_fused_head"):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
        trainer = trainer_class({"sft_loss": loss, "first_step_learns": False})(
            model=model,
            args=SFTConfig(
                output_dir=str(tmp_path / loss),
                use_cpu=True,
                report_to=[],
                per_device_train_batch_size=len(rows),
                packing=False,
                completion_only_loss=False,
            ),
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            data_collator=collator,
        )
        batch = next(iter(trainer.get_train_dataloader()))
        trainer.model.train()  # as in the loop: there a cache would let packed samples mix
        labelled = int((batch["labels"][:, 1:] != -100).sum())
        with torch.no_grad():
            losses[loss] = float(
                trainer.compute_loss(trainer.model, batch, num_items_in_batch=labelled)
            )
        if loss == "full_logits":
            assert type(trainer).__name__ == "SFTTrainerFullLogitsLoss"
    assert losses["full_logits"] == pytest.approx(losses["trl_fused_head"], rel=1e-5)

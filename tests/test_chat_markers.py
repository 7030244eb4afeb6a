"""A base of another family: no chat template, and ChatML's markers are no tokens of its
vocabulary. The fallback template (chat-fallback-template-eos) ends each turn with the
base's own EOS, so after training no answer a user sees carries a template marker, and
generation stops where the answer ends (issue 20: the answers ended in a visible
"<|im_end|>" when the fallback's markers were text)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dlm_gen.pipeline import plan_document
from dlm_gen.render import write_atomically
from tests.conftest import EXAMPLES, write_dlm

MARKERS = ("<|im_start|>", "<|im_end|>", "im_end", "im_start", "</s>")
PAIRS = [
    ("What is the sea?", "Salt water. Ahoy!"),
    ("What is a ship?", "A boat. Ahoy!"),
    ("Who steers?", "The captain. Ahoy!"),
    ("Where is port?", "Left side. Ahoy!"),
]
BODY = "".join(f"::instruction::\n### Q\n{q}\n### A\n{a}\n\n" for q, a in PAIRS)
TRAINING = {
    "sequence_len": 128,
    "micro_batch_size": 4,
    "grad_accum": 1,
    "learning_rate": 1e-2,
    "warmup_ratio": 0.0,
    "num_epochs": 60,
    "lora_r": 16,
    "eval_fraction": 0.0,
}


@pytest.fixture(scope="module")
def markerless_base(tmp_path_factory) -> Path:
    sys.path.insert(0, str(EXAMPLES))
    try:
        from tiny_model import build_tiny_model
    finally:
        sys.path.remove(str(EXAMPLES))
    text = " ".join(q + " " + a for q, a in PAIRS)
    return build_tiny_model(
        tmp_path_factory.mktemp("markerless") / "base", text, chat_markers=False
    )


def test_the_base_has_no_template_and_no_marker_tokens(markerless_base):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(markerless_base)
    assert tokenizer.chat_template is None
    assert len(tokenizer.tokenize("<|im_end|>")) > 1  # text, not one token


@pytest.mark.slow
def test_answers_carry_no_marker_and_stop_at_the_end(tmp_path, markerless_base):
    path = write_dlm(tmp_path, {"base_model": str(markerless_base), "training": TRAINING}, BODY)
    out = tmp_path / "generated"
    script = write_atomically(out, plan_document(path, "cpu", out_dir=out).render(out))
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, str(script), "--output-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = json.loads((run_dir / "run.json").read_text())["adapters"]
    assert run["final_train_loss"] < run["first_loss"] - 1.0, run["losses"][-5:]
    after = {sample["question"]: sample["after"] for sample in run["samples"]}
    assert after, run["samples"]
    for question, answer in after.items():
        assert not any(marker in answer for marker in MARKERS), (question, answer)
        # The answer stops where the trained one does: nothing after it, no next turn.
        assert answer.strip() == dict(PAIRS)[question], (question, answer)
    asked = subprocess.run(
        [sys.executable, str(script), "--output-dir", str(run_dir), "--prompt", PAIRS[0][0]],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert asked.returncode == 0, asked.stderr[-3000:]
    answer = asked.stdout.strip().splitlines()[-1]
    assert not any(marker in answer for marker in MARKERS), answer
    assert answer == PAIRS[0][1]

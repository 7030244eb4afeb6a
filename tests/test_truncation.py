"""Rows longer than sequence_len (trainer-truncation-shares): prose is windowed, an
instruction row is cut and counted, and the plan's shares decide when the count warns
and when it stops the run before the model loads."""

from __future__ import annotations

import pytest

from dlm_gen.runtime.tokens import Cut, check_cut, tokenize_rows
from tests.conftest import plan_of


class CharTokenizer:
    """One token per character; a template that writes <role>content| per turn."""

    eos_token_id = 0

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        turns = "".join(f"<{m['role']}>{m['content']}|" for m in messages)
        return turns + ("<assistant>" if add_generation_prompt else "")

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(char) for char in text]}


def pair(question: str, answer: str) -> dict:
    return {"kind": "instruction", "adapter": None, "question": question, "answer": answer}


def test_the_plan_says_the_shares_and_their_rule(tmp_path):
    plan = plan_of(tmp_path, {})
    decided = {d.field: d.rule for d in plan.decisions}
    assert decided["truncation_warn_share"] == decided["truncation_refuse_share"]
    assert decided["truncation_refuse_share"] == "trainer-truncation-shares"
    assert plan.fields["truncation_warn_share"] < plan.fields["truncation_refuse_share"]


def test_cut_rows_and_lost_tokens_are_counted_exactly():
    prompt = len("<user>q|<assistant>")
    rows = [
        pair("q", "a" * 10),
        pair("q", "b" * 40),
        {"kind": "text", "adapter": None, "text": "x" * 90},
    ]
    cut = Cut()
    examples = tokenize_rows(rows, CharTokenizer(), None, prompt + 20, cut)
    full = prompt + 40 + len("|")  # the answer, then the turn's end once, then EOS
    assert (cut.rows, cut.of_rows) == (1, 2)
    assert cut.tokens == full + 1 - (prompt + 20)
    assert [len(e["input_ids"]) for e in examples[:2]] == [prompt + 12, prompt + 20]
    # Prose is windowed, never cut: its 91 tokens (with EOS) fill five windows.
    assert sum(len(e["input_ids"]) for e in examples[2:]) == 91
    assert cut.to_json() == {"rows_cut": 1, "tokens_lost": cut.tokens, "instruction_rows": 2}


def test_past_the_warning_share_the_run_says_so(capsys):
    plan = {"sequence_len": 64, "truncation_warn_share": 0.0, "truncation_refuse_share": 0.5}
    check_cut(Cut(rows=1, tokens=7, of_rows=4), plan, "[tone] ")
    out = capsys.readouterr().out
    assert "warning: [tone] 1 of 4 instruction row(s) (25%) are longer than sequence_len 64" in out
    assert "7 token(s)" in out
    check_cut(Cut(rows=0, tokens=0, of_rows=4), plan, "")
    assert capsys.readouterr().out == ""


def test_past_the_refusal_share_the_run_stops_naming_the_fix(capsys):
    plan = {"sequence_len": 64, "truncation_warn_share": 0.0, "truncation_refuse_share": 0.5}
    with pytest.raises(SystemExit) as stop:
        check_cut(Cut(rows=3, tokens=90, of_rows=4), plan, "")
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "3 of 4 instruction row(s) (75%)" in err and "raise sequence_len" in err

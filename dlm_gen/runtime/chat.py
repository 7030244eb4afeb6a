"""The conversation every instruction row and preference triple is trained and sampled in.

Rows go through the base's own chat template when it ships one; a base without
one (most pretrained, non-instruct models) gets the plan's fallback template
(chat-template-*), whose turns end with the base's own EOS token: one token the
model can emit and generation stops at, so no answer a user sees carries a
template marker. dlm-gen reads a local base's template the same way when it
plans (`system_prompt_between`), to show the system turn before the run.
"""

from __future__ import annotations

from dlm_gen.runtime.console import fail

SYSTEM_MARK = "SYSTEM-MARK"
USER_MARK = "USER-MARK"


def use_chat_template(tokenizer, plan: dict) -> bool:
    """Give a tokenizer without a chat template the plan's fallback (which ends every
    turn with the tokenizer's EOS token); True when the fallback is used."""
    if tokenizer.chat_template is not None:
        return False
    if tokenizer.eos_token is None:
        fail(
            "the base's tokenizer has no chat template and no EOS token, so no turn of a "
            "conversation can end: give the base a chat template or an eos_token"
        )
    tokenizer.chat_template = plan["fallback_chat_template"]  # chat-template-fallback-*
    return True


def chat_messages(question: str, system_prompt: str | None) -> list[dict]:
    """The conversation each instruction row is trained and sampled in."""
    messages = [{"role": "user", "content": question}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def system_prompt_between(marked: str, plain: str) -> str | None:
    """What a template puts where a system turn goes when the conversation has none:
    `plain` (a user turn alone) before the user turn, less the wrapping that `marked`
    (a SYSTEM_MARK system turn, then a USER_MARK user turn) shows around a system turn."""
    if SYSTEM_MARK not in marked or USER_MARK not in marked or USER_MARK not in plain:
        return None
    opening = marked[: marked.index(SYSTEM_MARK)]
    closing = marked[marked.index(SYSTEM_MARK) + len(SYSTEM_MARK) : marked.index(USER_MARK)]
    before_user = plain[: plain.index(USER_MARK)]
    if (
        before_user.startswith(opening)
        and before_user.endswith(closing)
        and len(before_user) > len(opening) + len(closing)
    ):
        return before_user[len(opening) : len(before_user) - len(closing)]
    return None


def effective_system_prompt(tokenizer, system_prompt: str | None) -> dict:
    """The system prompt the model really sees: the document's; else the one the chat
    template injects into a conversation without one (SmolLM2's does); else none."""
    if system_prompt:
        return {"text": system_prompt, "source": "document"}
    try:
        marked = tokenizer.apply_chat_template(
            [
                {"role": "system", "content": SYSTEM_MARK},
                {"role": "user", "content": USER_MARK},
            ],
            tokenize=False,
        )
        plain = tokenizer.apply_chat_template(
            [{"role": "user", "content": USER_MARK}], tokenize=False
        )
    except Exception:  # a template without a system role
        return {"text": None, "source": "none (the chat template takes no system turn)"}
    text = system_prompt_between(marked, plain)
    if text is not None:
        return {"text": text, "source": "chat template default"}
    return {"text": None, "source": "none"}


def end_turn_once(answer_ids: list[int], eos: list[int]) -> list[int]:
    """The answer's tokens end with one end of turn, never two.

    A template whose turn ends with the EOS (ChatML's <|im_end|> on SmolLM2 and
    Qwen, Llama 3's <|eot_id|>, the fallback's EOS) already closes the answer:
    train up to that EOS and not what the template puts between turns. A template
    whose turn marker is plain text gets the EOS once after it, so that generation
    stops.
    """
    if eos and eos[0] in answer_ids:
        return answer_ids[: len(answer_ids) - answer_ids[::-1].index(eos[0])]
    return answer_ids + eos


def prompt_and_answer(
    tokenizer, system_prompt: str | None, question: str, answer: str
) -> tuple[list[int], list[int]]:
    """The prompt's tokens (system + question, through the chat template, ready for the
    answer) and the answer's, ending with one end of turn. SFT pairs and preference
    triples both go through here, so both phases train on the same conversation."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    prompt_messages = chat_messages(question, system_prompt)
    prompt = tokenizer.apply_chat_template(
        prompt_messages, tokenize=False, add_generation_prompt=True
    )
    full = tokenizer.apply_chat_template(
        [*prompt_messages, {"role": "assistant", "content": answer}],
        tokenize=False,
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = end_turn_once(
        tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"], eos
    )
    return prompt_ids, answer_ids

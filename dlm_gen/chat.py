"""The system prompt a base's chat template injects into a conversation without one.

Some templates (SmolLM2's among them) add their own system turn when a
conversation has none, so a document without `system_prompt` still trains
under one. Planning shows it before the run: the template of a local base is
rendered here, in a sandbox (a template is input, not code dlm-gen trusts),
twice: with a marked system turn, to learn how a system turn is wrapped, and
without one, to find what the template puts in its place. The generated
script does the same with the real tokenizer and records what it found.
"""

from __future__ import annotations

SYSTEM_MARK = "SYSTEM-MARK"
USER_MARK = "USER-MARK"


def injected_system_prompt(template: str) -> str | None:
    """The default system prompt of a chat template, or None (no default, or unreadable)."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    try:
        compiled = environment.from_string(template)

        def render(messages: list[dict[str, str]]) -> str:
            return compiled.render(
                messages=messages,
                add_generation_prompt=False,
                bos_token="",
                eos_token="",
                raise_exception=raise_exception,
            )

        marked = render(
            [{"role": "system", "content": SYSTEM_MARK}, {"role": "user", "content": USER_MARK}]
        )
        plain = render([{"role": "user", "content": USER_MARK}])
    except Exception:  # a template this renderer cannot run says nothing about a default
        return None
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

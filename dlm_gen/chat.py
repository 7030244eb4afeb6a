"""The system prompt a base's chat template injects into a conversation without one.

Some templates (SmolLM2's among them) add their own system turn when a
conversation has none, so a document without `system_prompt` still trains
under one. Planning shows it before the run: the template of a local base is
rendered here, in a sandbox (a template is input, not code dlm-gen trusts;
its output, repetitions and run time are bounded too), twice: with a marked
system turn, to learn how a system turn is wrapped, and without one, to find
what the template puts in its place. The generated
script does the same with the real tokenizer and records what it found.
"""

from __future__ import annotations

import contextlib
import signal
import threading

SYSTEM_MARK = "SYSTEM-MARK"
USER_MARK = "USER-MARK"
# A real template renders a two-turn conversation in well under a millisecond
# and a few hundred characters; these bounds only stop a hostile one.
MAX_RENDERED_CHARS = 65_536
MAX_REPEATED_ITEMS = 65_536
TIME_BUDGET_SECONDS = 1.0


class _TemplateTooCostly(Exception):
    """A template that would take more memory or time than a chat template needs."""


def injected_system_prompt(template: str) -> str | None:
    """The default system prompt of a chat template, or None (no default, or unreadable)."""
    try:
        with _time_budget(TIME_BUDGET_SECONDS):
            marked = _render(
                template,
                [
                    {"role": "system", "content": SYSTEM_MARK},
                    {"role": "user", "content": USER_MARK},
                ],
            )
            plain = _render(template, [{"role": "user", "content": USER_MARK}])
    except Exception:  # a template this renderer cannot (or should not) run says nothing
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


def _render(template: str, messages: list[dict[str, str]]) -> str:
    """Render in jinja2's immutable sandbox (no attribute escapes), with the output and the
    size of any `*` / `**` result bounded."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context, operator, left, right):
            if operator == "**" or _repeated_items(left, right) > MAX_REPEATED_ITEMS:
                raise _TemplateTooCostly(f"a large {operator} in a chat template")
            return super().call_binop(context, operator, left, right)

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    environment = BoundedSandbox(trim_blocks=True, lstrip_blocks=True)
    stream = environment.from_string(template).generate(
        messages=messages,
        add_generation_prompt=False,
        bos_token="",
        eos_token="",
        raise_exception=raise_exception,
    )
    pieces, length = [], 0
    for piece in stream:
        length += len(piece)
        if length > MAX_RENDERED_CHARS:
            raise _TemplateTooCostly("the template renders far more than a conversation")
        pieces.append(piece)
    return "".join(pieces)


def _repeated_items(left: object, right: object) -> int:
    """How many items `left * right` makes when it repeats a string or a list, else 0."""
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, (str, list, tuple)) and isinstance(count, int):
            return len(sequence) * count
    return 0


@contextlib.contextmanager
def _time_budget(seconds: float):
    """Stop a template that loops for longer than `seconds` (a SIGALRM timer, on the main
    thread where one exists; elsewhere the template is not run at all)."""
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        raise _TemplateTooCostly("no timer to bound the template's run time here")

    def expire(signum, frame):
        raise _TemplateTooCostly(f"the template ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

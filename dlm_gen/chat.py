"""The system prompt a base's chat template injects into a conversation without one.

Some templates (SmolLM2's among them) add their own system turn when a
conversation has none, so a document without `system_prompt` still trains
under one. Planning shows it before the run: the template of a local base is
rendered here twice: with a marked system turn, to learn how a system turn is
wrapped, and without one, to find what the template puts in its place; both
renders are read by the runtime's own `system_prompt_between`, which the
generated script runs on the real tokenizer (recording what it found).

A template is input, not code dlm-gen trusts, and Jinja does work while it
compiles (it folds constant expressions such as `"x"|center(10**9)`), where no
render-time check reaches. So the template is compiled and rendered in a child
interpreter (`python -I` running this file) under an address-space and a CPU
limit, killed at a wall-clock bound (rules/limits.yaml: chat_template_*); its
answer comes back as JSON text, never as serialized Python objects. A verdict is cached
by the template's digest, so a process that plans many documents on one base
starts one child for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

from dlm_gen.runtime.chat import SYSTEM_MARK, USER_MARK, system_prompt_between

# Inside the child, these turn the commonest hostile patterns into a quick answer
# instead of a run to the CPU bound; the resource limits are what hold.
MAX_RENDERED_CHARS = 65_536
MAX_REPEATED_ITEMS = 65_536
# Verdicts kept per process (a digest and a short answer each).
_CACHE_ENTRIES = 256


@dataclass(frozen=True)
class Bounds:
    """What one template evaluation may use (rules/limits.yaml chat_template_*)."""

    cpu_seconds: int
    memory_mb: int
    wall_seconds: int


@dataclass(frozen=True)
class Verdict:
    """The default system prompt a template injects (None: none found), and, when the
    template went past a bound, why it was not evaluated (None: it was)."""

    prompt: str | None
    problem: str | None = None


_verdicts: dict[tuple[str, Bounds], Verdict] = {}


def injected_system_prompt(template: str, bounds: Bounds | None = None) -> str | None:
    """The default system prompt of a chat template, or None (no default, or unreadable)."""
    return evaluate(template, bounds).prompt


def evaluate(template: str, bounds: Bounds | None = None) -> Verdict:
    """The verdict on `template`, from a bounded child (once per template and process)."""
    bounds = bounds or bounds_from_limits()
    digest = hashlib.sha256(template.encode("utf-8", "surrogatepass")).hexdigest()
    key = (digest, bounds)
    if key not in _verdicts:
        if len(_verdicts) >= _CACHE_ENTRIES:
            _verdicts.clear()
        _verdicts[key] = _evaluate_in_child(template, bounds)
    return _verdicts[key]


def bounds_from_limits() -> Bounds:
    """The shipped (or DLM_GEN_RULES) bounds of rules/limits.yaml."""
    from dlm_gen.limits import limits

    caps = limits()
    return Bounds(
        caps["chat_template_cpu_seconds"],
        caps["chat_template_memory_mb"],
        caps["chat_template_wall_seconds"],
    )


def _evaluate_in_child(template: str, bounds: Bounds) -> Verdict:
    """Run this file as `python -I` (no PYTHONPATH, user site or working directory on its
    path) with the bounds as arguments and the template on stdin; read its JSON answer."""
    if not sys.executable:  # an embedding program with no interpreter to start
        return Verdict(None, "no Python interpreter to evaluate it in")
    command = [
        sys.executable,
        "-I",
        os.path.abspath(__file__),
        str(bounds.cpu_seconds),
        str(bounds.memory_mb),
    ]
    payload = json.dumps({"template": template}).encode("ascii")
    try:
        done = subprocess.run(
            command,
            input=payload,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=bounds.wall_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:  # run() has killed the child
        return Verdict(None, f"it ran for more than {bounds.wall_seconds} s")
    except OSError as exc:
        return Verdict(None, f"no interpreter to evaluate it in ({exc.strerror or exc})")
    if done.returncode != 0:
        return Verdict(None, _death(done.returncode, bounds))
    return _verdict_of(done.stdout)


def _death(code: int, bounds: Bounds) -> str:
    """Why the child stopped without an answer, as a user reads it."""
    cpu_signals = {getattr(signal, name, None) for name in ("SIGXCPU", "SIGKILL")} - {None}
    if code < 0 and -code in cpu_signals:
        return f"it used more than {bounds.cpu_seconds} s of CPU"
    if code < 0:
        return f"the renderer stopped on signal {-code}"
    return f"the renderer failed (exit status {code})"


def _verdict_of(output: bytes) -> Verdict:
    """The child's answer, checked as data: marked and plain renders, or why it stopped."""
    try:
        answer = json.loads(output)
    except ValueError:
        return Verdict(None, "the renderer gave no answer")
    if not isinstance(answer, dict):
        return Verdict(None, "the renderer gave no answer")
    problem, marked, plain = answer.get("problem"), answer.get("marked"), answer.get("plain")
    if isinstance(problem, str):
        return Verdict(None, problem[:200])
    if isinstance(marked, str) and isinstance(plain, str):
        return Verdict(system_prompt_between(marked, plain))
    return Verdict(None)  # the template does not render a conversation: it says nothing


# --- the child: runs as `python -I chat.py CPU_SECONDS MEMORY_MB` -------------------------


class _TemplateTooCostly(Exception):
    """A template that would take more memory or time than a chat template needs."""


def _child_main(argv: list[str]) -> int:
    """Limit this process, then compile and render the template read from stdin; print
    {"marked", "plain"}, {"problem": why} or {} (the template says nothing) as JSON."""
    cpu_seconds, memory_mb = int(argv[0]), int(argv[1])
    _limit_self(cpu_seconds, memory_mb)
    try:
        template = json.loads(sys.stdin.buffer.read())["template"]
        answer: dict[str, str] = {
            "marked": _render(
                template,
                [
                    {"role": "system", "content": SYSTEM_MARK},
                    {"role": "user", "content": USER_MARK},
                ],
            ),
            "plain": _render(template, [{"role": "user", "content": USER_MARK}]),
        }
    except _TemplateTooCostly as exc:
        answer = {"problem": str(exc)}
    except MemoryError:
        answer = {"problem": f"it needed more than {memory_mb} MB of memory"}
    except RecursionError:
        answer = {"problem": "it nests or recurses too deeply"}
    except ImportError as exc:
        answer = {"problem": f"the renderer cannot import {exc.name or 'jinja2'}"}
    except Exception:  # a template that does not parse or raises says nothing
        answer = {}
    sys.stdout.write(json.dumps(answer))
    return 0


def _limit_self(cpu_seconds: int, memory_mb: int) -> None:
    """Address space and CPU time bounds (SIGXCPU at the soft one, SIGKILL a second
    later), and no core file: the child must leave nothing behind. A limit the parent
    already holds lower stays; where `resource` does not exist (Windows) the parent's
    wall-clock bound is the one that holds."""
    try:
        import resource
    except ImportError:
        return

    def lower(kind: int, soft: int, hard: int) -> None:
        _, held = resource.getrlimit(kind)
        if held != resource.RLIM_INFINITY:
            soft, hard = min(soft, held), min(hard, held)
        resource.setrlimit(kind, (soft, hard))

    memory = memory_mb * 1024 * 1024
    lower(resource.RLIMIT_AS, memory, memory)
    lower(resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1)
    lower(resource.RLIMIT_CORE, 0, 0)


def _render(template: str, messages: list[dict[str, str]]) -> str:
    """Render in jinja2's immutable sandbox (no attribute escapes), with the output and the
    size of any `*` / `**` result bounded."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context, operator, left, right):
            if operator == "**" or _repeated_items(left, right) > MAX_REPEATED_ITEMS:
                raise _TemplateTooCostly(f"it computes a large {operator}")
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
            raise _TemplateTooCostly(f"it renders more than {MAX_RENDERED_CHARS} characters")
        pieces.append(piece)
    return "".join(pieces)


def _repeated_items(left: object, right: object) -> int:
    """How many items `left * right` makes when it repeats a string or a list, else 0."""
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, (str, list, tuple)) and isinstance(count, int):
            return len(sequence) * count
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))

"""A harness for the per-surface fuzz targets: run a command as a user would, in a
child process under a time and memory bound, and judge what it did.

Every fuzz target (tests/test_fuzz_*.py) asserts the same four things of each
hostile input (docs/security.md): the exit code is 0, 1 or 2 and no traceback
is printed; the child finishes inside its time bound and under its address
space limit (a child killed at a bound is a failure, not a skip); no file is
created or changed outside the directories the command may write; and nothing
printed holds a character that drives a terminal (an escape, a carriage
return, a bidirectional override), since every echo of the input is escaped.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# What a command that is not training gets: far above a plan's needs, far below
# what a runaway allocation reaches before it is stopped.
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MEMORY_MB = 2048
# Characters a terminal acts on or that hide text: C0/C1 controls but line
# breaks and tabs, and the format characters (bidirectional overrides, zero
# widths) that reorder or hide what a reader sees.
_ALLOWED_CONTROLS = {"\n", "\t"}


@dataclass
class Outcome:
    """What one child did: its exit code, output, wall time and files it wrote."""

    argv: list[str]
    code: int | None
    stdout: bytes
    stderr: bytes
    seconds: float
    timed_out: bool
    written: list[Path] = field(default_factory=list)

    @property
    def text(self) -> str:
        return (self.stdout + self.stderr).decode("utf-8", "replace")

    def describe(self) -> str:
        tail = self.text[-2000:]
        return f"{self.argv!r}: exit {self.code} in {self.seconds:.1f} s\n{tail}"


def _limit_memory(memory_mb: int):
    def apply() -> None:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def snapshot(tree: Path) -> dict[bytes, tuple[int, int]]:
    """Every file under `tree` (by its name's bytes) with its size and mtime."""
    seen: dict[bytes, tuple[int, int]] = {}
    for directory, _dirs, files in os.walk(os.fsencode(tree)):
        for name in files:
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            seen[path] = (info.st_size, info.st_mtime_ns)
    return seen


def run_bounded(
    argv: Sequence[str | bytes | os.PathLike],
    cwd: Path,
    *,
    env: dict[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    watch: Path | None = None,
    stdin: bytes = b"",
) -> Outcome:
    """Run `argv` in a child with an address-space limit, killed at `timeout_s`.

    With `watch`, the outcome lists every file under it that the child created
    or changed (compare with `assert_safe_outcome(..., allowed=...)`).
    """
    before = snapshot(watch) if watch is not None else {}
    child_env = {**os.environ, **(env or {})}
    child_env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    started = time.monotonic()
    process = subprocess.Popen(
        [os.fspath(a) if not isinstance(a, bytes) else a for a in argv],
        cwd=cwd,
        env=child_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_limit_memory(memory_mb),
        start_new_session=True,
    )
    timed_out = False
    try:
        stdout, stderr = process.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(process.pid, 9)
        stdout, stderr = process.communicate()
    seconds = time.monotonic() - started
    written: list[Path] = []
    if watch is not None:
        after = snapshot(watch)
        written = [
            Path(os.fsdecode(path)) for path, stamp in after.items() if before.get(path) != stamp
        ]
    return Outcome(
        [os.fsdecode(a) if isinstance(a, bytes) else os.fspath(a) for a in argv],
        None if timed_out else process.returncode,
        stdout,
        stderr,
        seconds,
        timed_out,
        written,
    )


def run_cli(
    args: Sequence[str | bytes | os.PathLike],
    cwd: Path,
    **bounds,
) -> Outcome:
    """`dlm-gen ARGS...` in a bounded child (see run_bounded for the bounds)."""
    return run_bounded([sys.executable, "-m", "dlm_gen", *args], cwd, **bounds)


def terminal_hazards(text: str) -> list[str]:
    """The characters of `text` that a terminal would act on or hide, as escapes."""
    found = []
    for char in text:
        if char in _ALLOWED_CONTROLS:
            continue
        category = unicodedata.category(char)
        if category in ("Cc", "Cf") or char == "\u2028" or char == "\u2029":
            found.append(ascii(char))
    return found


def assert_safe_outcome(
    outcome: Outcome,
    *,
    allowed: Iterable[Path] = (),
    codes: Iterable[int] = (0, 1, 2),
    names: str | None = None,
    check_terminal: bool = True,
) -> None:
    """The four properties every fuzz target asserts (see the module docstring).

    `names`: text an exit-1 message must contain (the file at fault).
    """
    assert not outcome.timed_out, f"killed at the time bound: {outcome.describe()}"
    assert outcome.code in set(codes), f"unexpected exit: {outcome.describe()}"
    assert "Traceback (most recent call last)" not in outcome.text, outcome.describe()
    assert "MemoryError" not in outcome.text, outcome.describe()
    if names is not None and outcome.code == 1:
        assert names in outcome.text, (names, outcome.describe())
    roots = [Path(a).resolve() for a in allowed]
    outside = [p for p in outcome.written if not any(p.resolve().is_relative_to(r) for r in roots)]
    assert not outside, f"wrote outside {roots}: {outside[:5]}: {outcome.describe()}"
    if check_terminal:
        hazards = terminal_hazards(outcome.stdout.decode("utf-8", "replace")) + terminal_hazards(
            outcome.stderr.decode("utf-8", "replace")
        )
        hazards = [h for h in hazards if h != ascii("\ufffd")]
        assert not hazards, f"unescaped on the terminal: {hazards[:5]}: {outcome.describe()}"

"""Errors a user can act on: each names the file, the line, the field and the fix.

Everything that goes wrong because of the user's input is a `Problem`; the CLI
collects them and prints them all at once (a user with three mistakes learns
about all three in one run), then exits 1. A traceback is always a bug.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = f"{self.field}: " if self.field else ""
        return f"{where}: {what}{self.message}"


class DlmError(Exception):
    """One or more problems with the user's input; the CLI prints them and exits 1."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @classmethod
    def one(cls, file: str, line: int | None, field: str | None, message: str) -> DlmError:
        return cls([Problem(file, line, field, message)])


class RulesError(Exception):
    """The rule tables themselves are broken (a maintainer's error, not a user's)."""

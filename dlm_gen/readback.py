"""Reading literals back out of a rendered script, which is input like any file.

`diff` and `check` read a script's literals (ADAPTERS, ROWS, SOURCE_DOCUMENT)
with `ast.literal_eval`, which never executes anything but builds a syntax
tree first: about 500 bytes of memory per token, so a hand-made script of
`0,0,0,...` under its 32 MiB cap would take gigabytes. A reader therefore
counts the tokens of what it is about to parse against a budget for the whole
script (rules/limits.yaml max_script_literal_tokens) and refuses past it, and
accepts only the values dlm-gen's serializer writes (None, bools, ints, finite
floats, strings, lists and string-keyed dicts): a set, bytes, a complex number
or `1e999` is no rendered plan and must not reach JSON output or comparisons.
"""

from __future__ import annotations

import ast
import io
import math
import tokenize

# Tokens that build no node of their own.
_LAYOUT_TOKENS = frozenset({tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.ENDMARKER})


class NotAPlanLiteral(ValueError):
    """Text that is not a literal dlm-gen could have written, or past the budget."""


class LiteralReader:
    """Parses literals of one script within one budget of tokens."""

    def __init__(self, max_tokens: int) -> None:
        self.tokens_left = max_tokens

    def read(self, source: str) -> object:
        """The value `source` spells, after its tokens are counted against the budget."""
        self._spend(source)
        try:
            value = ast.literal_eval(source)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
            raise NotAPlanLiteral(f"not a literal: {type(exc).__name__}") from None
        check_plan_value(value)
        return value

    def _spend(self, source: str) -> None:
        try:
            for token in tokenize.generate_tokens(io.StringIO(source).readline):
                if token.type in _LAYOUT_TOKENS:
                    continue
                self.tokens_left -= 1
                if self.tokens_left < 0:
                    raise NotAPlanLiteral(
                        "more literal tokens than a rendered script holds "
                        "(rules/limits.yaml max_script_literal_tokens)"
                    )
        except (tokenize.TokenError, SyntaxError) as exc:
            raise NotAPlanLiteral(f"not a literal: {exc}") from None


def check_plan_value(value: object, depth: int = 0) -> None:
    """Raise NotAPlanLiteral unless `value` is JSON-like as dlm-gen writes plans and rows."""
    if depth > 64:
        raise NotAPlanLiteral("nested deeper than a plan")
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotAPlanLiteral("a number that is not finite")
        return
    if isinstance(value, list):
        for item in value:
            check_plan_value(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotAPlanLiteral("a mapping key that is not a string")
            check_plan_value(item, depth + 1)
        return
    raise NotAPlanLiteral(f"a {type(value).__name__}, which no rendered script holds")

"""The one way a value from a document reaches generated Python: as a literal.

`python_literal` turns None, bools, ints, floats, strings and lists/dicts of
them into Python source that `ast.literal_eval` reads back as the same value,
and that `ruff format` leaves alone: strings in double quotes (single quotes
when that needs fewer escapes, as ruff picks), every non-printable character
escaped, collections one item per line with a trailing comma. Nothing from a
document is ever pasted into source any other way, so no text can close a
string, start a statement or reach a Jinja tag.
"""

from __future__ import annotations

import math
import unicodedata

INDENT = "    "


def python_literal(value: object, indent: int = 0) -> str:
    """Python source for `value`, continuation lines indented `indent` levels."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"no Python literal for {value!r}")
        return repr(value)
    if isinstance(value, str):
        return string_literal(value)
    if isinstance(value, (list, tuple)):
        return _collection("[", "]", [python_literal(v, indent + 1) for v in value], indent)
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"dict keys must be strings, got {key!r}")
            items.append(f"{string_literal(key)}: {python_literal(item, indent + 1)}")
        return _collection("{", "}", items, indent)
    raise TypeError(f"no Python literal for {type(value).__name__}")


def _collection(opening: str, closing: str, items: list[str], indent: int) -> str:
    if not items:
        return opening + closing
    inner = INDENT * (indent + 1)
    body = "".join(f"{inner}{item},\n" for item in items)
    return f"{opening}\n{body}{INDENT * indent}{closing}"


def string_literal(text: str) -> str:
    quote = "'" if text.count('"') > text.count("'") else '"'
    return quote + "".join(_escape(char, quote) for char in text) + quote


_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}

# Categories a reviewer cannot see, or that draw onto their neighbour: controls,
# format characters (bidi, zero-width), unassigned and private code points,
# line/paragraph separators, every combining mark, and spaces other than ' '.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs", "Mn", "Mc", "Me"})
# Letters and symbols that render as blank space (Hangul fillers, braille blank, ...).
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e\u17b4\u17b5\u2061\u2062")


def is_hidden(char: str) -> bool:
    """Whether a reviewer could miss `char` on screen, or mistake what it does."""
    if " " <= char <= "~":  # printable ASCII, the common case
        return False
    return unicodedata.category(char) in _HIDDEN_CATEGORIES or char in _BLANK_GLYPHS


def visible(text: str) -> str:
    """`text` with every hidden character written as an escape (for terminals, comments)."""
    if all(" " <= char <= "~" for char in text):
        return text
    return "".join((_NAMED.get(char) or _code(char)) if is_hidden(char) else char for char in text)


def _escape(char: str, quote: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    if char == quote:
        return "\\" + char
    if not is_hidden(char):
        return char
    return _code(char)


def _code(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"

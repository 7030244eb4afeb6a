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

import functools
import math
from bisect import bisect_right
from collections import Counter
from itertools import accumulate

from dlm_gen.runtime.console import escaped, is_hidden, visible

INDENT = "    "
LINE_LENGTH = 100  # the project's ruff line length, which the script must pass


def python_literal(value: object, indent: int = 0, used: int = 0) -> str:
    """Python source for `value`, continuation lines indented `indent` levels.

    `used` is how many columns the value's first line shares with other text
    (a key, `NAME = `, a trailing comma and comment): a string that would
    overflow the line is written as parenthesized pieces, each within it.
    """
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"no Python literal for {value!r}")
        return repr(value)
    if isinstance(value, str):
        return _string(value, indent, used)
    if isinstance(value, (list, tuple)):
        items = [python_literal(v, indent + 1, used=1) for v in value]
        return _collection("[", "]", items, indent)
    if isinstance(value, dict):
        return commented_dict(value, {}, indent)
    raise TypeError(f"no Python literal for {type(value).__name__}")


def commented_dict(value: dict, comments: dict[str, str], indent: int = 0) -> str:
    """A dict literal, one item per line, an item's comment (if any) after its comma."""
    items = []
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"dict keys must be strings, got {key!r}")
        key_source = string_literal(key)
        comment = f"  # {visible(comments[key])}" if key in comments else ""
        used = len(key_source) + 2 + 1 + len(comment)
        items.append(f"{key_source}: {python_literal(item, indent + 1, used)},{comment}")
    return _collection("{", "}", items, indent, commas=False)


def assignment(name: str, value: object) -> str:
    """`NAME = literal`, wrapped to the line length."""
    return f"{name} = {python_literal(value, 0, used=len(name) + 3)}"


def _collection(
    opening: str, closing: str, items: list[str], indent: int, commas: bool = True
) -> str:
    if not items:
        return opening + closing
    inner = INDENT * (indent + 1)
    comma = "," if commas else ""
    body = "".join(f"{inner}{item}{comma}\n" for item in items)
    return f"{opening}\n{body}{INDENT * indent}{closing}"


def _string(text: str, indent: int, used: int) -> str:
    literal = string_literal(text)
    if len(INDENT) * indent + used + len(literal) <= LINE_LENGTH:
        return literal
    inner = INDENT * (indent + 1)
    pieces = _pieces(text, LINE_LENGTH - len(inner))
    body = "".join(f"{inner}{string_literal(piece)}\n" for piece in pieces)
    return f"(\n{body}{INDENT * indent})"


def _pieces(text: str, width: int) -> list[str]:
    """Cut `text` into pieces whose literals fit `width`: after a newline, else after a
    space, else anywhere (never inside an escape: a piece is escaped on its own).

    Greedy, one piece at a time: the character that would overflow the piece (double
    quotes: the costlier escaping, so safe) ends it after its last space, or right
    there, and is the new piece's first character whatever it costs. The escaped
    lengths of a piece's characters are summed at C speed (a Python step a character
    took ~10 s for a script at max_script_bytes)."""
    cost_of = {char: len(_escaped(char, '"')) for char in set(text)}.__getitem__
    pieces: list[str] = []
    lines = text.split("\n")
    for index, line in enumerate(lines):
        segment = line + "\n" if index < len(lines) - 1 else line  # a newline ends a piece
        start, first_check, end = 0, 1, len(segment)
        while start < end:
            # Each character costs 1 or more: the piece ends within width + 2 characters.
            sizes = list(accumulate(map(cost_of, segment[start : start + width + 2])))
            stop = start + bisect_right(sizes, width - 2, first_check - start)
            if stop >= end:
                pieces.append(segment[start:])
                break
            space = segment.rfind(" ", start, stop)
            cut = space + 1 if space >= 0 else stop
            pieces.append(segment[start:cut])
            start, first_check = cut, stop + 1  # the overflowing character is kept
    return pieces


def string_literal(text: str) -> str:
    quote = "'" if text.count('"') > text.count("'") else '"'
    table = {}
    for char in set(text):  # each distinct character escaped once, the text translated in C
        escaped = _escaped(char, quote)
        if escaped != char:
            table[ord(char)] = escaped
    return quote + (text.translate(table) if table else text) + quote


_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escaped_size(text: str) -> int:
    """The UTF-8 bytes of `text`'s characters as a literal writes them, each hidden
    character (and backslash, line break, tab) as its escape; quotes and the layout of
    long strings aside, so never more than `python_literal` writes for it.

    Linear at C speed: the characters that cost more than their own bytes are found
    among the distinct ones, and only those are counted, so a renderer can refuse a
    script past its size cap before building it (16 MiB of control characters would
    render to ~74 MB first)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    extra = {
        char: len(_NAMED.get(char) or escaped(char)) - len(char.encode("utf-8", "surrogatepass"))
        for char in set(text)
        if char in _NAMED or is_hidden(char)
    }
    if len(extra) <= _COUNTED_ONE_BY_ONE:
        return size + sum(text.count(char) * more for char, more in extra.items())
    counts = Counter(text)
    return size + sum(counts[char] * more for char, more in extra.items())


# Characters whose escapes are remembered (a performance knob: any size, same output).
_ESCAPES_CACHED = 65536
# Up to this many distinct escaped characters are counted with one str.count each;
# beyond, one Counter pass (the sum is the same, only the time differs).
_COUNTED_ONE_BY_ONE = 16


@functools.lru_cache(maxsize=_ESCAPES_CACHED)
def _escaped(char: str, quote: str) -> str:
    """`_escape`, remembered: a text repeats few distinct characters."""
    return _escape(char, quote)


def _escape(char: str, quote: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    if char == quote:
        return "\\" + char
    if not is_hidden(char):
        return char
    return escaped(char)

"""The console: text from a document, a path or the model is shown escaped.

Rows, the system prompt, adapter names, paths, the model's answers and the
libraries' messages reach the terminal and the run card only through
`visible`: none of them can retitle or recolour a terminal, reorder a line or
hide text from its reader. dlm-gen's own messages use the same function.
"""

from __future__ import annotations

import sys
import unicodedata
from typing import NoReturn

# What a reader cannot see, or what draws onto its neighbour: controls, format
# characters (bidirectional overrides, zero widths), surrogates (bytes that were not
# UTF-8), private and unassigned code points, line and paragraph separators, spaces
# other than ' ', combining marks; and letters drawn as blank space.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs", "Mn", "Mc", "Me"})
BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e\u17b4\u17b5\u2061\u2062")
NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def is_hidden(char: str) -> bool:
    """Whether a reader could miss `char` on screen, or a terminal would act on it."""
    if " " <= char <= "~":  # printable ASCII, the common case
        return False
    return unicodedata.category(char) in HIDDEN_CATEGORIES or char in BLANK_GLYPHS


def visible(text: str) -> str:
    """`text` with every hidden character written as an escape (\\x1b, \\u202e, \\n)."""
    if all(" " <= char <= "~" for char in text):
        return text
    return "".join(escaped(char) if is_hidden(char) else char for char in text)


def escaped(char: str) -> str:
    """One character as a Python escape: \\n, \\x1b, \\u202e, \\U000e0041."""
    if char in NAMED_ESCAPES:
        return NAMED_ESCAPES[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


class EscapedConsole:
    """sys.stdout or sys.stderr with every hidden character but line breaks and tabs
    escaped: what the libraries print (warnings, log lines, errors that echo a path or a
    row) reaches the terminal as safely as the script's own lines."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        lines = text.split("\n")
        self.stream.write("\n".join("\t".join(map(visible, line.split("\t"))) for line in lines))
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def escape_console() -> None:
    """Put the console behind EscapedConsole before anything is printed (argparse echoes
    argv); a character the console's encoding lacks is written as an escape, not an
    error at the end of a run."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None or isinstance(stream, EscapedConsole):
            continue
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
        setattr(sys, name, EscapedConsole(stream))


def say(line: str, file=None) -> None:
    """Print one line of the run's report, escaped: a value with a line break in it
    stays on its line."""
    print(visible(line), file=file, flush=True)


def fail(message: str) -> NoReturn:
    """Stop with exit code 1 and one escaped line on stderr (sys.exit(message) would
    print it raw)."""
    say(message, file=sys.stderr)
    sys.exit(1)


def rounded(value: float | None) -> str:
    """A loss or a rate as the report prints it: four decimals, or n/a."""
    return "n/a" if value is None else f"{value:.4f}"

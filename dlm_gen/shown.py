"""How a value is written inside a message, a reason line or a report: each way once.

- `plain`: a plan value as the reason line and `explain` write it (`null`, `true`,
  `bf16`, lists joined by commas): what a rule set or decided.
- `quoted`: a value where its type matters to a reader (`"lora"` against `8`), as JSON:
  diff's old and new values, a rule table's conflicting values.
- `one_line`: input text put inside a line of output, its line breaks escaped so it
  can never start a line of its own (everything else hidden is escaped by `visible`
  where the line is printed).
- `clipped`: input text quoted in a message, at most a given number of characters.
"""

from __future__ import annotations

import json


def plain(value: object) -> str:
    """A plan or fact value as the reason line and explain write it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(plain(v) for v in value)
    return str(value)


def quoted(value: object) -> str:
    """A value as JSON (strings in quotes, numbers bare), the text kept as it is."""
    return json.dumps(value, ensure_ascii=False)


def one_line(text: str) -> str:
    """Input text put inside a line of output: its own line breaks escaped."""
    return text.replace("\n", "\\n").replace("\r", "\\r")


def clipped(text: str, most: int) -> str:
    """`text` cut to at most `most` characters, '...' saying where."""
    return text if len(text) <= most else text[: most - 3] + "..."

"""Fuzz target for the document surface: a `.dlm` file a stranger wrote.

Each example writes a hostile document (frontmatter values, body sections,
terminal escapes, YAML aliases, huge lines inside the caps, a hostile file
name) and runs `explain`, `render` and `check` on it in a bounded child
(tests/fuzzing.py): exit 0, 1 or 2, no traceback, inside the time and memory
bound, nothing written outside the output directory, nothing unescaped on the
terminal.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from tests.fuzzing import assert_safe_outcome, run_cli

FUZZ = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))

HOSTILE_TEXT = st.sampled_from(
    [
        "\x1b]0;owned\x07",
        "\x1b[31mred\x1b[0m",
        "\u202eevil\u202c",
        "\r\x1b[2Kforged line",
        "a\x00b",
        "\x9b31m",
        "\u200b\u2028\u2029",
        "x" * 100_000,
        "{{ 7*7 }}",
        "'''; import os; os.system('true') #",
        '"""\nimport os\n"""',
        "\\N{BELL}",
    ]
)
FRONTMATTER_LINES = st.sampled_from(
    [
        "system_prompt: {text!r}",
        "base_model: {text!r}",
        "training:\n  adapters:\n    {text!r}: {{}}",
        "training:\n  sources:\n    - path: {text!r}",
        "training:\n  optimizer: {text!r}",
        "a: &a [*a]",
        "a: &a ['x', *a, *a, *a]",
        "training: &t {{lora_r: 8, x: *t}}",
        "dlm_version: {text!r}",
        "export:\n  quantizations: [{text!r}]",
    ]
)
BODY_PARTS = st.sampled_from(
    [
        "::instruction::\n### Q\n{text}\n### A\n{text}\n",
        "::preference::\n### Prompt\n{text}\n### Chosen\nyes\n### Rejected\nno\n",
        "::instruction#{text}::\n### Q\nq\n### A\na\n",
        "```\n{text}\n",
        "::{text}::\n",
        "{text}\n",
        "::image path={text}::\n",
    ]
)
NAMES = st.sampled_from(
    [b"doc.dlm", b"a\x1bb.dlm", b"caf\xe9.dlm", b"-n.dlm", b"\xe2\x80\xaeevil.dlm", b"x\ny.dlm"]
)


def _document(lines: list[tuple[str, str]], parts: list[tuple[str, str]]) -> str:
    frontmatter = "\n".join(line.format(text=text) for line, text in lines)
    body = "".join(part.format(text=text) for part, text in parts)
    return f"---\nbase_model: smollm2-135m\n{frontmatter}\n---\nSome prose to train on.\n\n{body}"


@FUZZ
@given(
    lines=st.lists(st.tuples(FRONTMATTER_LINES, HOSTILE_TEXT), max_size=2),
    parts=st.lists(st.tuples(BODY_PARTS, HOSTILE_TEXT | st.text(max_size=40)), max_size=3),
    name=NAMES,
)
@example(lines=[], parts=[], name=b"caf\xe9.dlm")  # a Latin-1 name: once a traceback in render
@example(lines=[("system_prompt: {text!r}", "\x1b]0;owned\x07")], parts=[], name=b"a\x1bb.dlm")
def test_a_hostile_document_is_answered_within_bounds(lines, parts, name):
    work = Path(tempfile.mkdtemp(prefix="dlm-gen-fuzz-doc-"))
    document = os.path.join(os.fsencode(work), name)
    with open(document, "wb") as handle:
        handle.write(_document(lines, parts).encode("utf-8", "surrogatepass"))
    out = work / "out"
    for command in (
        ["explain", "--target", "cpu"],
        ["render", "--target", "cpu", "--out", out],
        ["check", "--target", "cpu", "--out", out],
    ):
        outcome = run_cli([command[0], document, *command[1:]], ROOT, watch=work, timeout_s=30)
        assert_safe_outcome(outcome, allowed=[out])

"""Hostile text anywhere in a document reaches the script only as an inert literal."""

from __future__ import annotations

import ast
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlm_gen.literals import is_hidden, python_literal
from dlm_gen.pipeline import read_document
from dlm_gen.plan import make_plans
from dlm_gen.render import comment_text, render_plans
from dlm_gen.rules import load_rules
from tests.conftest import TINY_LLAMA_CONFIG, dlm_text

RULES = load_rules()
NASTY = [*"\"'\\\n\t{}%#`$ ()[]:;,.=*+-", "'''", '"""', "{{", "}}", "{%", "%}", "{#", "#}"]
NASTY += ["é", "€", "😀", "\u2028", "\u2029", "\x85", "\x00", "\x0b", "\x0c", "\x1e", "\ufeff"]
NASTY += ["import os", "os.system('echo pwned')", "\\n", "\\x00", "__import__('os')", "\r"]

any_character = st.characters(blacklist_categories=["Cs"])  # lone surrogates are not UTF-8
hostile = st.lists(st.sampled_from(NASTY) | any_character, min_size=1, max_size=60).map("".join)
long_hostile = st.one_of(hostile, hostile.map(lambda text: (text + "x") * 400))
_STRUCTURE = re.compile(r"^(::.*::|### (Q|A|Prompt|Chosen|Rejected)|```.*|~~~.*)$")


def body_safe(text: str) -> bool:
    """Text that stays one value: no line of it is a fence, heading or code fence."""
    lines = [line.removesuffix("\r").strip() for line in text.split("\n")]
    return bool(text.strip()) and not any(_STRUCTURE.match(line) for line in lines)


body_text = long_hostile.filter(body_safe)
directory_name = st.text(
    alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=40,
).filter(lambda name: name not in (".", "..") and not name.startswith("~"))
directory_name = directory_name.filter(lambda name: len(name.encode()) < 200)

TEMPLATE_BASE = Path(tempfile.mkdtemp(prefix="dlm-gen-injection-"))
CONFIG = TINY_LLAMA_CONFIG


def statement_shape(tree: ast.Module) -> list[str]:
    """Top-level statements by kind and name: what the template wrote, not the values."""
    shape = []
    for node in tree.body:
        names = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
        shape.append(f"{type(node).__name__}:{getattr(node, 'name', '')}:{names}")
    return shape


def constants(tree: ast.Module) -> dict[str, object]:
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in ("SYSTEM_PROMPT", "ROWS", "BASE_MODEL", "ADAPTERS")
    }


def render(directory: Path, system_prompt, base, prose, question, answer) -> str:
    front = {"base_model": base, "system_prompt": system_prompt}
    body = f"{prose}\n::instruction::\n### Q\n{question}\n### A\n{answer}\n"
    path = directory / "doc.dlm"
    frontmatter = yaml.safe_dump(front, default_style='"', allow_unicode=True)
    path.write_text("---\n" + frontmatter + "---\n" + body, encoding="utf-8")
    document = read_document(path)
    return render_plans(document, make_plans(document, RULES, "cpu"), RULES).text, document


def as_read(text: str) -> str:
    """A text as the document reader returns it: each is followed by a line feed in the
    body, lines are split there and a CR before the feed ends the line (CRLF), then
    the text is stripped."""
    return (text + "\n").replace("\r\n", "\n").strip()


BASELINE_DIR = TEMPLATE_BASE / "baseline"
BASELINE_DIR.mkdir()
(BASELINE_DIR / "model").mkdir()
(BASELINE_DIR / "model" / "config.json").write_text(json.dumps(CONFIG))
BASELINE_SHAPE = statement_shape(
    ast.parse(render(BASELINE_DIR, "plain", "./model", "prose", "q", "a")[0])
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(hostile, directory_name, body_text, body_text, body_text)
def test_hostile_text_is_only_ever_a_literal(system_prompt, base_name, prose, question, answer):
    directory = Path(tempfile.mkdtemp(dir=TEMPLATE_BASE))
    try:
        (directory / base_name).mkdir()
        (directory / base_name / "config.json").write_text(json.dumps(CONFIG))
        written = f"./{base_name}"  # a local directory is written as a path
        text, document = render(directory, system_prompt, written, prose, question, answer)
        tree = ast.parse(text)
        assert statement_shape(tree) == BASELINE_SHAPE
        values = constants(tree)
        assert values["SYSTEM_PROMPT"] == system_prompt
        assert values["BASE_MODEL"]["path"] == written  # relative to the document, as written
        [prose_row, pair] = values["ROWS"]
        [parsed_prose, parsed_pair] = document.rows
        assert prose_row["text"] == parsed_prose.text == as_read(prose)
        assert (pair["question"], pair["answer"]) == (parsed_pair.question, parsed_pair.answer)
        assert pair["question"] == as_read(question) and pair["answer"] == as_read(answer)
    finally:
        shutil.rmtree(directory)


INVISIBLE = ["\u3164", "\u115f", "\uffa0", "\u2800", "x\u0338", "\u00a0", "\u3000", "\ufe0f"]


@pytest.mark.parametrize("text", INVISIBLE)
def test_characters_a_reviewer_cannot_see_are_escaped(text):
    literal = python_literal(text)
    assert ast.literal_eval(literal) == text
    assert all(" " <= char <= "~" for char in literal), literal
    assert all(" " <= char <= "~" for char in comment_text(f"doc{text}.dlm"))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30))
def test_literals_show_no_hidden_character(text):
    literal = python_literal(text)
    assert ast.literal_eval(literal) == text
    assert not any(is_hidden(char) for char in literal if char != "\n")  # "\n": wrapping
    assert not any(is_hidden(char) for char in comment_text(text))


def test_a_document_name_with_hidden_characters_is_escaped_in_the_header(tmp_path):
    path = tmp_path / "a\u3164b\u202e.dlm"
    path.write_text(dlm_text({"base_model": "smollm2-135m"}))
    document = read_document(path)
    text = render_plans(document, make_plans(document, RULES, "cpu"), RULES, tmp_path).text
    header = text.split('"""')[0]
    assert "a\\u3164b\\u202e.dlm" in header
    assert not any(is_hidden(char) for char in header if char != "\n")

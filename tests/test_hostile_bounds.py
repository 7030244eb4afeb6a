"""Bounds a hostile tester went past: each case is refused (or read) within the caps
of rules/limits.yaml in well under a second and little memory, located, and never
printed raw.

YAML past its node budget is refused from the parser's events before a node is
composed; glob matching remembers its automaton's moves and the previous path's
states, and its work is capped (max_glob_work); a script past max_script_bytes is
refused from its rows' escaped size before it is built; safetensors headers and
tokenizer_config.json are counted (objects and lists) before they are parsed; the
target of a script whose header wraps is still read, and a script whose target
cannot be read is never removed; a source file linked into the output directory
is not read; argparse's errors and explain's lines escape the input they quote.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlm_gen import basemodels, globs, literals, render, yamlsrc
from dlm_gen.errors import DlmError
from dlm_gen.globs import GlobError, GlobSet, compile_glob
from dlm_gen.pipeline import read_document
from dlm_gen.scripts import parse_header, remove_replaced
from tests.conftest import TINY_LLAMA_CONFIG, write_dlm
from tests.test_sources import document_with, tree

# --- YAML: the node budget holds before PyYAML composes ------------------------------------


def test_yaml_past_the_node_budget_is_refused_before_a_node_is_composed(monkeypatch):
    """A 16 MiB `x: [a,a,...]` was composed whole first (~165 MB a MiB, a MemoryError at
    2 GB after 21 s); the budget is now spent on the parser's events."""

    def composed(self):
        raise AssertionError("PyYAML composed a node tree past the budget")

    items = "".join(f"  - item{i}\n" for i in range(yamlsrc.DEFAULT_NODE_BUDGET + 5))
    monkeypatch.setattr(yamlsrc._Loader, "get_single_node", composed)
    with pytest.raises(DlmError) as caught:
        yamlsrc.load("x:\n" + items, "doc.dlm", line_offset=1)
    (problem,) = caught.value.problems
    # The root and the list are values too: the one past the budget is item 19998.
    assert problem.line == yamlsrc.DEFAULT_NODE_BUDGET + 1, problem
    assert "too large" in problem.message
    with pytest.raises(DlmError, match="too large"):  # a flow list, one line
        yamlsrc.load("x: [" + "a," * 30_000 + "a]\n", "doc.dlm")


def test_yaml_keys_are_not_counted_against_the_budget():
    """The event count is the builder's: values, not keys (a mapping of 15,000 keys)."""
    text = "".join(f"k{i}: {i}\n" for i in range(15_000))
    assert len(yamlsrc.load(text, "t.yaml").value) == 15_000


def test_fence_lines_behind_any_whitespace_still_open_sections(tmp_path):
    """The body is scanned for fence-like lines at C speed; what str.strip() strips (an
    ideographic space, an information separator) still comes before a fence."""
    body = (
        "Prose first.\n\n"
        "\u3000::instruction::\n### Q\nWhat?\n### A\nThat.\n"
        "\x1c::prose::\n\u00a0```\n::instruction::\n```\nCode is prose.\n"
    )
    document = read_document(write_dlm(tmp_path, {"base_model": "smollm2-135m"}, body))
    assert [section.kind for section in document.sections] == ["prose", "instruction", "prose"]
    assert "::instruction::" in document.sections[2].rows[0].text


# --- globs: remembered moves, a shared path read once, the work capped ----------------------


def test_paths_sharing_long_directories_are_matched_in_linear_total_time():
    """64 patterns of 256 characters against names under 3,700-character paths: 6 ms a
    file before (45 s for 12,000 files); the directories are read once now."""
    patterns = ["**" + "q" * 250] * 64
    directory = "/".join(["d" * 250] * 14)
    paths = [f"{directory}/f{i:05d}" + "e" * 240 for i in range(1000)]
    glob = GlobSet(patterns)
    started = time.perf_counter()
    assert not any(glob.matches(path) for path in paths)
    assert time.perf_counter() - started < 1.5
    assert glob.work < 1000 * 400 + len(directory) * 100, glob.work


_NAMES = st.text(alphabet="ab/.", max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.text(alphabet="ab/*?[]!.", min_size=1, max_size=8), min_size=1, max_size=3),
    st.lists(_NAMES, min_size=1, max_size=12),
    st.sampled_from([2, 3, 5, 4096]),
)
def test_a_glob_set_used_for_many_paths_answers_as_a_fresh_one(patterns, names, states):
    """The numbered state sets, the previous path's states and starting afresh when the
    table is full (few states here) never change an answer."""
    try:
        shared = GlobSet(patterns)
    except GlobError:
        return
    original = globs._DFA_STATES
    globs._DFA_STATES = states
    try:
        for name in [*names, *sorted(names), *names]:
            assert shared.matches(name) == GlobSet(patterns).matches(name), (patterns, name)
    finally:
        globs._DFA_STATES = original


def test_glob_work_past_the_cap_refuses_the_directive_at_its_line(tmp_path, caps):
    tree(tmp_path / "notes", {f"n{i:03d}.md": b"Text.\n" for i in range(200)})
    path = document_with(tmp_path, {"path": "notes", "include": ["**/*.md", "*[a-z]?*"]})
    caps("max_glob_work", 500)
    with pytest.raises(DlmError) as caught:
        read_document(path)
    (problem,) = caught.value.problems
    assert problem.field == "training.sources.0.path"
    assert "rules/limits.yaml max_glob_work" in problem.message
    caps("max_glob_work", 1_000_000)
    assert len(read_document(path).sources[0].files) == 200


def test_the_work_of_a_computed_move_grows_with_the_automaton():
    small, large = GlobSet(["a?"]), GlobSet(["**a" + "?" * 250] * 64)
    for glob in (small, large):
        glob.matches("ab" * 40)
    assert large.work > 3 * small.work


# --- render: the script's size is known before it is built -------------------------------


def test_a_script_past_its_cap_is_refused_before_it_is_rendered(tmp_path, caps, cli, monkeypatch):
    """Control characters escape to 4 bytes each: 15 MiB of them rendered for 30 s and
    1.24 GB before the size was checked; their escaped size is summed first now."""
    tree(tmp_path / "notes", {"c.txt": ("\x01" * 99 + "\n").encode() * 700})
    document = document_with(tmp_path, {"path": "notes"})
    caps("max_script_bytes", 250_000)

    def rendered(*args, **kwargs):
        raise AssertionError("the template was rendered")

    monkeypatch.setattr(render, "_compiled", rendered)
    code, _, err = cli("render", document, "--out", tmp_path / "out", "--target", "cpu")
    assert code == 1, err
    least = int(err.split("would be at least ", 1)[1].split(" ", 1)[0])
    assert least >= 700 * (99 * 4 + 2) and "max_script_bytes" in err, err


@given(st.text(alphabet=st.characters(codec=None), max_size=40))
@settings(max_examples=200, deadline=None)
def test_escaped_size_is_a_literals_bytes_less_its_quotes_and_quote_escapes(text):
    literal = literals.string_literal(text)
    quote = literal[0]
    written = len(literal.encode("utf-8", "surrogatepass")) - 2 - text.count(quote)
    assert literals.escaped_size(text) == written


def _reference_pieces(text: str, width: int) -> list[str]:
    """How pieces were cut one character at a time (before they were cut at C speed)."""
    pieces: list[str] = []
    current: list[str] = []
    size, last_space = 2, -1
    for char in text:
        cost = len(literals._escape(char, '"'))
        if current and size + cost > width:
            cut = last_space + 1 if last_space >= 0 else len(current)
            pieces.append("".join(current[:cut]))
            current = current[cut:]
            size = 2 + sum(len(literals._escape(c, '"')) for c in current)
            last_space = -1
        current.append(char)
        size += cost
        if char == " ":
            last_space = len(current) - 1
        elif char == "\n":
            pieces.append("".join(current))
            current, size, last_space = [], 2, -1
    if current:
        pieces.append("".join(current))
    return pieces


@given(
    st.text(alphabet=["a", " ", "\n", "\x01", '"', "\\", "\u00e9", "\u200b", "\U0001f600"]),
    st.sampled_from([5, 8, 11, 12, 20, 88, 96]),
)
@settings(max_examples=300, deadline=None)
def test_long_strings_are_cut_into_the_same_pieces_as_before(text, width):
    assert literals._pieces(text, width) == _reference_pieces(text, width)


# --- a local base folder: JSON counted before it is parsed -------------------------------


def _header(raw: bytes) -> bytes:
    return len(raw).to_bytes(8, "little") + raw


def test_safetensors_headers_are_refused_before_they_are_parsed(tmp_path, caps, monkeypatch):
    """64 MiB of `[{},{},...]` parsed for 14.8 s into 1.74 GB before 'not an object'."""

    def parsed(file, raw):
        raise AssertionError("the header was parsed")

    monkeypatch.setattr(basemodels, "_safetensors_shapes", parsed)
    (tmp_path / "model.safetensors").write_bytes(_header(b" [" + b"{}," * 1000 + b"{}]"))
    with pytest.raises(basemodels.BaseModelError, match="header is not a JSON object"):
        basemodels.safetensors_parameters(tmp_path)
    caps("max_safetensors_containers", 10)
    (tmp_path / "model.safetensors").write_bytes(_header(b'{"a":[' + b"{}," * 10 + b"{}]}"))
    with pytest.raises(basemodels.BaseModelError, match="max_safetensors_containers"):
        basemodels.safetensors_parameters(tmp_path)


def test_tokenizer_config_containers_are_counted_before_it_is_parsed(tmp_path, caps):
    """16 MiB of nested lists parsed into 459 MB for a template it never held."""
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({"chat_template": "{{ messages }}", "x": [[]] * 20}))
    caps("max_tokenizer_config_containers", 10)
    _, template, problem = basemodels._chat_template(tmp_path, 2**20)
    assert template is None and "max_tokenizer_config_containers" in problem
    config.write_text("[" + "[]," * 100 + "[]]")
    assert basemodels._chat_template(tmp_path, 2**20)[2] == "not read: not a JSON object"


# --- rendered scripts: the target of a wrapped header ------------------------------------


def _long_base(tmp_path: Path) -> Path:
    """A document on a local base five 200-character directories deep: its `# Base:`
    line wraps and pushes `# Target:` past the header's first 12 lines."""
    model = tmp_path.joinpath(*(letter * 200 for letter in "abcde"))
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps(TINY_LLAMA_CONFIG))
    base = "./" + model.relative_to(tmp_path).as_posix()
    return write_dlm(tmp_path, {"base_model": base}, "Some prose.\n")


def test_a_wrapped_header_keeps_each_targets_script(tmp_path, cli):
    document, out = _long_base(tmp_path), tmp_path / "out"
    for target in ("a100-80gb", "h100"):
        code, _, err = cli("render", document, "--out", out, "--target", target)
        assert code == 0 and "removed" not in err, err
    scripts = sorted(out.glob("train_*.py"))
    assert len(scripts) == 2  # the a100-80gb script was removed as the same target's
    targets = {parse_header(s.read_text(encoding="utf-8"), s).target for s in scripts}
    assert {str(t).split(" ")[0] for t in targets} == {"a100-80gb", "h100"}
    for target in ("a100-80gb", "h100"):
        assert cli("check", document, "--out", out, "--target", target)[0] == 0


def test_a_script_whose_target_cannot_be_read_is_never_removed(tmp_path):
    lines = [
        "#!/usr/bin/env python3",
        "# Generated by dlm-gen 0.1.0 from ../doc.dlm. Do not edit:",
        "#",
        'SOURCE_DOCUMENT = "../doc.dlm"',
    ]
    old, new = tmp_path / "train_aaaaaaaaaaaa.py", tmp_path / "train_bbbbbbbbbbbb.py"
    old.write_text("\n".join(lines) + "\n")
    new.write_text("\n".join(lines) + "\n")
    assert parse_header(new.read_text(), new).target is None
    assert remove_replaced(tmp_path, [new]) == [] and old.exists()


# --- the output directory through a file link ---------------------------------------------


def test_a_file_linked_into_the_output_directory_is_not_read(tmp_path, cli):
    tree(tmp_path / "notes", {"a.md": b"Text.\n"})
    document, out = document_with(tmp_path, {"path": "notes"}), tmp_path / "out"
    assert cli("render", document, "--out", out, "--target", "cpu")[0] == 0
    (script,) = out.glob("train_*.py")
    (tmp_path / "notes" / "link.md").symlink_to(Path("..") / "out" / script.name)
    (tmp_path / "notes" / "later.md").symlink_to(Path("..") / "out" / "train_none.py")
    code, written, _ = cli("render", document, "--out", out, "--target", "cpu")
    assert code == 0
    (script,) = out.glob("train_*.py")
    text = script.read_text(encoding="utf-8")
    assert "notes: 1 file, 6 bytes; 2 links into the output directory not read" in text
    assert "link.md" not in text  # no row, no SOURCES entry: only a.md
    assert cli("check", document, "--out", out, "--target", "cpu")[0] == 0
    assert cli("render", document, "--out", out, "--target", "cpu")[1] == written


# --- nothing raw, no forged line ------------------------------------------------------------


def test_argparse_errors_quote_the_arguments_escaped(cli):
    code, out, err = cli("render", "a.dlm", "-\x1b]0;pwned\x07.dlm", "--x\nerror: FORGED")
    assert code == 2 and out == ""
    assert "\x1b" not in err and "\x07" not in err and "-\\x1b]0;pwned\\x07.dlm" in err
    assert not any(line.startswith("error: FORGED") for line in err.splitlines()), err


def test_no_input_forges_a_line_of_explain_or_render(tmp_path, cli):
    """A sources path, a base path and a config's class name, each with a line break."""
    model = tmp_path / "m\nFORGED base"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps({**TINY_LLAMA_CONFIG, "architectures": ["X\nFORGED architecture"]})
    )
    tree(tmp_path / "notes\nFORGED source", {"a.md": b"Text.\n"})
    training = {"sources": [{"path": "notes\nFORGED source"}]}
    document = write_dlm(tmp_path, {"base_model": "./m\nFORGED base", "training": training})
    code, out, err = cli("explain", "-v", document, "--target", "cpu")
    assert code == 0, err
    assert "./m\\nFORGED base" in out and "X\\nFORGED architecture" in out
    assert "notes\\nFORGED source: 1 file" in out
    code, out2, err2 = cli("render", document, "--out", tmp_path / "o\nFORGED out")
    assert code == 0, err2
    for text in (out, err, out2, err2):
        assert not any(line.startswith("FORGED") for line in text.splitlines()), text


def test_a_rule_message_escapes_the_line_breaks_of_the_facts_it_quotes():
    from dlm_gen.engine import fill

    assert fill("at {base.key}", {"base.key": "./m\nFORGED"}) == "at ./m\\nFORGED"


def _random_tree_names(count: int) -> list[str]:
    generator = random.Random(0)
    return sorted("".join(generator.choice("ab/") for _ in range(30)) for _ in range(count))


def test_shared_prefixes_are_read_once_even_when_paths_die_early():
    """A path whose states all died is answered from where it died."""
    glob = GlobSet(["a/**"])
    names = _random_tree_names(300)
    assert [glob.matches(n) for n in names] == [compile_glob("a/**").matches(n) for n in names]
    assert glob.work < 300 * 60

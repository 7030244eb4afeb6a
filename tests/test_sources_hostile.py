"""`training.sources` against hostile input: globs match in linear time and are
capped, the walk budget is shared by all directives, no regex warning leaks, and
the render's output directory is never read as a source (so `check` converges)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlm_gen import document as document_module
from dlm_gen.errors import DlmError
from dlm_gen.globs import GlobError, GlobSet, compile_glob
from dlm_gen.limits import limits
from dlm_gen.pipeline import read_document
from tests.fuzzing import assert_safe_outcome, run_cli
from tests.test_sources import document_with, source_rows, tree


def reference_glob(pattern: str) -> re.Pattern[str]:
    """The glob semantics written the obvious way, as a regular expression (fine on the
    small inputs of a property test): '**/' any directories or none, '**' anything,
    '*' and '?' within a directory, '[...]' a class that never matches '/'."""
    out, index = [], 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        elif pattern[index] == "[" and "]" in pattern[index + 2 :]:
            end = pattern.index("]", index + 2)
            body = pattern[index + 1 : end].replace("\\", "\\\\")
            negated = body[:1] in ("!", "^")
            out.append("(?!/)[" + ("^" + body[1:] if negated else body) + "]")
            index = end + 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # '[[' and '--' are literal here, as in the matcher
        return re.compile("".join(out), re.DOTALL)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="ab/*?[]!^-\\.", min_size=1, max_size=8),
    st.lists(st.text(alphabet="ab/-]![\\^.\n\u00e9", max_size=7), min_size=1, max_size=6),
)
def test_the_matcher_agrees_with_a_reference_on_small_inputs(pattern, names):
    try:
        glob = compile_glob(pattern)
    except GlobError:
        # What the regular expression refuses too (a reversed range), and a negated class
        # with nothing in it ('[!]', '[^]'), which the regex form of the old matcher
        # read together with the characters after it.
        if not re.search(r"\[[!^]\]", pattern):
            with pytest.raises(re.error):
                reference_glob(pattern)
        return
    reference = reference_glob(pattern)
    for name in names:
        assert glob.matches(name) == bool(reference.fullmatch(name)), (pattern, name)


@given(st.lists(st.text(alphabet="ab*?/", min_size=1, max_size=5), min_size=1, max_size=4))
@settings(max_examples=100, deadline=None)
def test_several_patterns_in_one_automaton_match_as_any_of_them(patterns):
    together = GlobSet(patterns)
    for name in ("a", "ab", "a/b", "b/a/b", "", "ba", "a/"):
        assert together.matches(name) == any(compile_glob(p).matches(name) for p in patterns)


def test_a_class_never_matches_a_slash_and_a_name_may_hold_any_character():
    assert not compile_glob("a[!x]b").matches("a/b")  # POSIX: only '/' matches '/'
    assert not compile_glob("a[/]b").matches("a/b")
    assert compile_glob("[!a]*").matches("\udcffname")  # an undecodable byte, escaped
    assert compile_glob("[\ud7ff-\U0010ffff]").matches("\U0001f600")


def test_a_backtracking_glob_is_matched_in_linear_time(tmp_path):
    """`*a` x 25 then 'b' against a 200-'a' name: a backtracking regex never finishes."""
    tree(tmp_path / "notes", {"a" * 200: b"Text.\n", "a" * 199 + "b": b"Kept.\n"})
    path = document_with(tmp_path, {"path": "notes", "include": ["*a" * 25 + "b"]})
    outcome = run_cli(["explain", "-v", path], tmp_path, timeout_s=20)
    assert_safe_outcome(outcome)
    assert outcome.code == 0 and outcome.seconds < 10, outcome.describe()
    assert "notes: 1 file, 6 bytes" in outcome.stdout.decode()


def test_a_glob_over_the_length_cap_is_refused_at_its_line(tmp_path):
    cap = limits()["max_glob_chars"]
    long = "x" * (cap + 1)
    path = document_with(tmp_path, {"path": ".", "include": ["*.md", long]})
    with pytest.raises(DlmError) as raised:
        read_document(path)
    (problem,) = raised.value.problems
    lines = path.read_text(encoding="utf-8").split("\n")
    assert problem.line == lines.index(f"    - {long}") + 1
    assert problem.field == "training.sources.0.include.1"
    assert "max_glob_chars" in problem.message and str(cap) in problem.message


def test_too_many_globs_in_one_directive_are_refused(tmp_path):
    cap = limits()["max_globs_per_source"]
    include = [f"{n}.md" for n in range(cap)]
    path = document_with(tmp_path, {"path": ".", "include": include, "exclude": ["x"]})
    with pytest.raises(DlmError, match="max_globs_per_source") as raised:
        read_document(path)
    assert raised.value.problems[0].field == "training.sources.0.include"


def test_a_glob_that_python_would_call_a_nested_set_prints_no_warning(tmp_path):
    tree(tmp_path / "notes", {"[a]x.md": b"Kept.\n", "b.md": b"Not.\n"})
    path = document_with(tmp_path, {"path": "notes", "include": ["[[a]]*", "[a&&b]*", "[z-a"]})
    outcome = run_cli(["explain", "-v", path], tmp_path, env={"PYTHONWARNINGS": "always"})
    assert_safe_outcome(outcome)
    assert outcome.code == 0 and "Warning" not in outcome.text, outcome.describe()
    assert "notes: 1 file" in outcome.stdout.decode()


def test_the_walk_budget_is_shared_by_all_the_directives(tmp_path, monkeypatch):
    tree(tmp_path / "notes", {f"{n}.md": b"Text.\n" for n in range(3)})
    capped = {**document_module.limits(), "max_source_files_walked": 5}
    monkeypatch.setattr(document_module, "limits", lambda: capped)
    path = document_with(tmp_path, {"path": "notes"}, {"path": "notes"})
    with pytest.raises(DlmError, match="max_source_files_walked") as raised:
        read_document(path)
    (problem,) = raised.value.problems
    assert problem.field == "training.sources.1.path"  # the second directive overspends


def test_the_output_directory_is_never_a_source_and_check_converges(tmp_path, cli):
    """`path: .` beside the document: the scripts rendered into ./generated are not read,
    so the second render writes the same script and `check` agrees."""
    document = document_with(tmp_path, {"path": "."})
    out = tmp_path / "generated"
    first = cli("render", document, "--out", out, "--target", "cpu")
    second = cli("render", document, "--out", out, "--target", "cpu")
    assert first[0] == second[0] == 0 and first[1] == second[1], (first, second)
    (script,) = out.glob("train_*.py")
    text = script.read_text(encoding="utf-8")
    assert "Generated by dlm-gen" not in text.split("\n", 2)[2]  # no script embedded
    assert "output directory generated not read" in text  # the header says so
    assert cli("check", document, "--out", out, "--target", "cpu")[0] == 0


def test_a_directive_inside_the_output_directory_reads_nothing(tmp_path):
    tree(tmp_path / "out" / "notes", {"a.md": b"Text.\n"})
    path = document_with(tmp_path, {"path": "out/notes"}, {"path": "out/notes/a.md"})
    kept = read_document(path, output_dir=tmp_path / "elsewhere")
    assert [row.source for row in kept.rows if getattr(row, "source", None)] == ["a.md", "a.md"]
    document = read_document(path, output_dir=tmp_path / "out")
    assert source_rows(path) and not [r for r in document.rows if getattr(r, "source", None)]
    assert all("lies in the output directory" in r.describe() for r in document.sources)


def test_explain_leaves_out_the_default_output_directory(tmp_path):
    tree(tmp_path, {"notes.md": b"Text.\n", "generated/train_x.py": b"x = 1\n"})
    path = document_with(tmp_path, {"path": "."})
    outcome = run_cli(["explain", "-v", path.name], tmp_path)
    assert_safe_outcome(outcome)
    assert ".: 2 files" in outcome.stdout.decode()  # doc.dlm and notes.md
    assert "output directory generated not read" in outcome.stdout.decode()


def test_a_symlink_to_the_output_directory_is_not_followed(tmp_path):
    tree(tmp_path / "project", {"a.md": b"Text.\n"})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "train_old.py").write_text("x = 1\n", encoding="utf-8")
    Path(tmp_path / "project" / "link").symlink_to(tmp_path / "out")
    path = document_with(tmp_path, {"path": "project"})
    document = read_document(path, output_dir=tmp_path / "out")
    assert [r.source for r in document.rows if getattr(r, "source", None)] == ["a.md"]

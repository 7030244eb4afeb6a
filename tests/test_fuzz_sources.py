"""Fuzz target for the `training.sources` surface: directives a stranger wrote, over a
tree a stranger filled.

The tree holds names that are not UTF-8 or that drive a terminal, a FIFO, a
symlink loop, a link to /dev/zero, a link to its parent, a deep directory and
a thousand small files; the render's output directory lies inside it. Each
example writes a document with hostile directives (paths, globs that backtrack,
globs over the caps, broken classes, many patterns, many directives) and runs
`explain` and `render` in a bounded child (tests/fuzzing.py): exit 0, 1 or 2,
no traceback, inside the time and memory bound, nothing written outside the
output directory, nothing unescaped on the terminal.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dlm_gen.resources import data_dir
from tests.fuzzing import assert_safe_outcome, run_cli

FUZZ = settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))

NASTY_PATHS = [
    ".",
    "notes",
    "notes/fifo",
    "notes/loop",
    "notes/zero",
    "notes/up",
    "/dev/zero",
    "/proc/self/fd",
    "out",
    "out/..",
    "many",
    "deep",
    "..",
    "~",
    "bad\0path",
    "\x1b]0;owned\x07",
    "x" * 5000,
    "notes/" + "../" * 50,
]
NASTY_GLOBS = [
    "*a" * 25 + "b",
    "**/" * 80 + "*",
    "**a" * 80,
    "[[a]]*",
    "[a&&b]*",
    "[z-a]",
    "[!]",
    "[",
    "x" * 300,
    "*" * 256,
    "[" * 120 + "]",
    "**/.dlm/**",
    "\x1b[2K*",
    "out/**",
]
PATHS = st.sampled_from(NASTY_PATHS) | st.text(alphabet="./*~an\x1b", max_size=12)
GLOBS = st.sampled_from(NASTY_GLOBS) | st.text(alphabet="*?[]!^-/ab.\\", max_size=30)
DIRECTIVES = st.fixed_dictionaries(
    {"path": PATHS},
    optional={
        "include": st.lists(GLOBS, min_size=1, max_size=4) | st.just(["*"] * 65),
        "exclude": st.lists(GLOBS, max_size=3),
        "max_files": st.integers(1, 10**12),
        "max_bytes_per_file": st.integers(1, 10**12),
    },
)


@pytest.fixture(scope="module")
def hostile_tree() -> Path:
    """The tree every example reads (built once: hundreds of files take a while)."""
    work = Path(tempfile.mkdtemp(prefix="dlm-gen-fuzz-sources-"))
    notes = os.fsencode(work / "notes")
    os.makedirs(notes)
    for name, data in {
        b"ok.md": b"Fine text.\n",
        b"na\xffme.md": b"Undecodable name.\n",
        b"a\x1bb.md": b"Escape in the name.\n",
        b"\xe2\x80\xaeevil.md": b"Bidi override in the name.\n",
        b"x\ny.md": b"Line break in the name.\n",
        b"binary.bin": b"\0\1\2",
        b"empty.md": b"",
        b"latin1.txt": b"caf\xe9\n",
    }.items():
        with open(os.path.join(notes, name), "wb") as handle:
            handle.write(data)
    os.mkfifo(os.path.join(notes, b"fifo"))
    os.symlink(b"loop", os.path.join(notes, b"loop"))
    os.symlink(b"/dev/zero", os.path.join(notes, b"zero"))
    os.symlink(b"..", os.path.join(notes, b"up"))
    deep = work / "deep" / Path(*["d"] * 40)
    deep.mkdir(parents=True)
    (deep / "leaf.md").write_text("Deep.\n", encoding="utf-8")
    for index in range(500):
        many = work / "many" / f"{index % 10}"
        many.mkdir(parents=True, exist_ok=True)
        (many / f"{'a' * 100}{index}.md").write_text("x\n", encoding="utf-8")
    (work / "out").mkdir()
    return work


@pytest.fixture(scope="module")
def small_budget_rules() -> dict[str, str]:
    """The shipped rules, but at most 2000 files walked: DLM_GEN_RULES for the child."""
    rules = Path(tempfile.mkdtemp(prefix="dlm-gen-fuzz-rules-")) / "rules"
    shutil.copytree(data_dir("rules"), rules)
    limits = rules / "limits.yaml"
    text = limits.read_text(encoding="utf-8")
    text = re.sub(r"max_source_files_walked: *\d+", "max_source_files_walked: 2000", text)
    limits.write_text(text, encoding="utf-8")
    return {"DLM_GEN_RULES": str(rules)}


def _document(directives: list[dict], copies: int) -> str:
    """The frontmatter in YAML's JSON subset: every string double-quoted and escaped."""
    training = {"sources_policy": "permissive", "sources": directives * copies}
    frontmatter = json.dumps({"base_model": "smollm2-135m", "training": training})
    return f"---\n{frontmatter}\n---\nSome prose to train on.\n"


@FUZZ
@given(
    directives=st.lists(DIRECTIVES, min_size=1, max_size=3),
    copies=st.sampled_from([1, 1, 2, 300]),
)
@example(directives=[{"path": "notes", "include": ["*a" * 25 + "b"]}], copies=1)
@example(directives=[{"path": ".", "include": ["[[a]]*", "**"]}], copies=1)
@example(directives=[{"path": "."}], copies=300)
def test_hostile_sources_are_answered_within_bounds(
    hostile_tree, small_budget_rules, directives, copies
):
    document = hostile_tree / "doc.dlm"
    document.write_text(_document(directives, copies), encoding="utf-8")
    out = hostile_tree / "out"
    for command in (["explain", "-v"], ["render", "--out", "out"]):
        outcome = run_cli(
            [command[0], "doc.dlm", "--target", "cpu", *command[1:]],
            hostile_tree,
            watch=hostile_tree,
            env=small_budget_rules,
            timeout_s=30,
        )
        assert_safe_outcome(outcome, allowed=[out], names="doc.dlm")

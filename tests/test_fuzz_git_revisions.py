"""Fuzz target: the git-revision surface of `dlm-gen diff OLD NEW`.

Hostile OLD/NEW arguments (options in disguise, git's other revision syntaxes,
paths that leave the repository, links, escapes and shell text), generated and
sampled, against a repository holding a document with sources, a link out of the
repository and a rendered script. Each run must keep the harness's properties
(tests/fuzzing.py) and write nothing: not in the work tree, not in the current
directory, and no temporary directory left behind.
"""

from __future__ import annotations

import os
import subprocess

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.conftest import dlm_text, run_dlm_gen
from tests.fuzzing import assert_safe_outcome, run_cli

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]

NASTY = [
    "--output=NAME:x",
    "--output=../escape:doc.dlm",
    "-c:doc.dlm",
    "--upload-pack=touch pwned:doc.dlm",
    "HEAD@{0}:doc.dlm",
    "@{-1}:doc.dlm",
    ":/first",
    ":/(a+)+$:doc.dlm",
    ":doc.dlm",
    ":0:doc.dlm",
    "HEAD^{tree}:doc.dlm",
    "HEAD~999999999:doc.dlm",
    "HEAD..HEAD:doc.dlm",
    "HEAD:../../etc/passwd",
    "HEAD:/etc/passwd",
    "HEAD:notes",
    "HEAD:notes/",
    "HEAD:leaky.dlm",
    "HEAD:notes/out.md",
    "HEAD:doc.dlm\x1b[2J",
    "HEAD:\u202edoc.dlm",
    "HEAD:doc.dlm\n+++ forged",
    "HEAD:doc.dlm:extra",
    "$(touch pwned):x",
    "`touch pwned`:x",
    "HEAD:'; touch pwned; '",
    "HEAD:doc.dlm",
    "HEAD:generated/train_fuzz.py",
    "doc.dlm",
    "generated/train_fuzz.py",
    "-",
    "",
]
# What argv can carry: no NUL byte, no lone surrogate outside surrogateescape's range.
_ARGUMENT_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=24
)
_REVISIONS = (
    st.sampled_from(["HEAD", "HEAD~1", "-x", "--output=o", "@", "main", ""]) | _ARGUMENT_TEXT
)
_PATHS = st.sampled_from(["doc.dlm", "../x", "./doc.dlm", "notes", "/etc", ""]) | _ARGUMENT_TEXT
ARGUMENTS = (
    st.sampled_from(NASTY)
    | st.builds(lambda rev, path: f"{rev}:{path}", _REVISIONS, _PATHS)
    | _ARGUMENT_TEXT
)


def _repository(root):
    """A repository with a document reading notes/, one whose sources link outside,
    and a rendered script, all committed."""
    repo = root / "repo"
    (repo / "notes").mkdir(parents=True)
    (repo / "notes" / "a.md").write_text("notes for the document\n")
    os.symlink("/etc/hostname", repo / "notes" / "out.md")
    document = {"base_model": "smollm2-135m", "training": {"sources": [{"path": "notes"}]}}
    (repo / "leaky.dlm").write_text(dlm_text(document))
    (repo / "doc.dlm").write_text(dlm_text({"base_model": "smollm2-135m"}))
    done = run_dlm_gen("render", "doc.dlm", "--out", "generated", "--target", "cpu", cwd=repo)
    assert done.returncode == 0, done.stderr
    (repo / done.stdout.strip()).rename(repo / "generated" / "train_fuzz.py")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "first"]):
        subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True)
    return repo


def test_fuzz_git_revision_arguments(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-git")
    repo = _repository(root)
    temporary = root / "tmp"
    temporary.mkdir()

    @settings(max_examples=20, deadline=None)
    @given(old=ARGUMENTS, new=ARGUMENTS)
    # The arguments that once reached git as options (git show --output wrote a file).
    @example(old="--output=NAME:x", new="HEAD:doc.dlm")
    @example(old="HEAD:leaky.dlm", new="--output=../escape:doc.dlm")
    @example(old=":/(a+)+$:doc.dlm", new="HEAD:doc.dlm\x1b[2J")
    def check(old: str, new: str) -> None:
        outcome = run_cli(
            ["diff", "--", old, new],
            repo,
            env={"TMPDIR": str(temporary)},
            watch=root,
            timeout_s=20,
        )
        assert_safe_outcome(outcome, allowed=[])
        assert not list(temporary.iterdir()), outcome.describe()
        assert not (root / "escape").exists() and not (repo / "pwned").exists()

    check()

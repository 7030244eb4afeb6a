"""`dlm-gen diff` against hostile arguments, repositories and environments.

Nothing typed reaches git as an option; git's other syntaxes are refused before it
runs; git runs nothing and writes nothing, within a time bound; a document at a
revision is planned with the files it read at that revision, and never with a file
outside the repository; a script is read in memory bounded by a small multiple
of its size; rows are compared in linear time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, TINY_LLAMA_CONFIG, dlm_text, rendered_script

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
SOURCES_DOC = {
    "base_model": "smollm2-135m",
    "training": {"sources": [{"path": "notes", "include": ["**/*.md"]}]},
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout


def repository(root: Path, files: dict[str, str], links: dict[str, str] | None = None) -> Path:
    """A repository at `root` with `files` (and symbolic `links`), committed."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for name, target in (links or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / name)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    return root


@pytest.fixture
def in_repo(tmp_path, monkeypatch):
    """Make a repository and run the in-process CLI from its top directory."""

    def make(files: dict[str, str], links: dict[str, str] | None = None) -> Path:
        repo = repository(tmp_path / "repo", files, links)
        monkeypatch.chdir(repo)
        return repo

    return make


def files_under(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if ".git" not in p.parts}


# --- class 1: nothing typed reaches git as an option --------------------------------


def test_an_argument_that_looks_like_an_option_never_reaches_git(in_repo, cli):
    """Before: `git show --output=NAME:x` ran and wrote the file NAME:x."""
    repo = in_repo({"doc.dlm": dlm_text({"base_model": "smollm2-135m"})})
    before = files_under(repo)
    for hostile in ("--output=NAME:x", "--output=../escape:doc.dlm", "-p:doc.dlm"):
        code, out, err = cli("diff", "--", hostile, "doc.dlm")
        assert code == 2, (hostile, out, err)
        assert "a revision cannot start with '-'" in err
    assert files_under(repo) == before
    assert not (repo.parent / "escape").exists()


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("HEAD@{1}:doc.dlm", "reflog revisions"),
        (":/first:doc.dlm", "a search of commit messages"),
        (":doc.dlm", "the index"),
        ("HEAD..main:doc.dlm", "not a revision"),
        ("HEAD:/etc/passwd", "not absolute"),
        ("HEAD:doc\n.dlm", "control character"),
        ("HEAD:\x1b[31mred.dlm", "control character"),
        ("HE AD:doc.dlm", "not a revision"),
        ("HEAD:notes/", "names a directory"),
    ],
)
def test_what_is_not_rev_path_is_refused_before_git_runs(tmp_path, monkeypatch, cli, given, says):
    """With no git on PATH, a grammar error (not "cannot run git") proves git never ran."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(empty))
    code, _, err = cli("diff", given, given)
    assert code == 2 and says in err, err
    assert "cannot run git" not in err and "\x1b" not in err
    assert "Traceback" not in err


def test_a_revision_outside_a_repository_says_so(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    code, _, err = cli("diff", "HEAD:doc.dlm", "HEAD:doc.dlm")
    assert code == 2 and "cannot read it from git: not a git repository" in err, err


def test_a_directory_a_link_a_missing_file_and_a_fifo_are_refused_plainly(in_repo, cli):
    repo = in_repo(
        {"notes/a.md": "text\n", "doc.dlm": dlm_text(SOURCES_DOC)}, {"ln.dlm": "doc.dlm"}
    )
    cases = {
        "HEAD:notes": "is a tree at HEAD, expected a file",
        "HEAD:ln.dlm": "is a symbolic link at HEAD",
        "HEAD:gone.dlm": "no file 'gone.dlm' at HEAD",
        "NOPE:doc.dlm": "no commit 'NOPE'",
        # git's own rule: ./ and ../ are relative to the current directory, here the top
        "HEAD:../../etc/passwd": "PATH leaves the repository",
    }
    for given, says in cases.items():
        code, _, err = cli("diff", given, "doc.dlm")
        assert code == 2 and says in err, (given, err)
    os.mkfifo(repo / "pipe.py")
    code, _, err = cli("diff", "pipe.py", "doc.dlm")  # never opened: it would block
    assert code == 2 and "not a regular file" in err


def test_a_blob_over_the_cap_is_refused_unread(in_repo, cli, caps):
    in_repo({"big.py": "x = 1\n" * 2000, "doc.dlm": dlm_text({"base_model": "smollm2-135m"})})
    caps("max_script_bytes", 5000)
    code, _, err = cli("diff", "HEAD:big.py", "doc.dlm")
    assert code == 2
    assert "'big.py' is 12000 bytes at HEAD; the limit is 5000 bytes" in err
    assert "rules/limits.yaml max_script_bytes" in err


def test_git_runs_nothing_from_the_environment_or_the_repository(tmp_path, monkeypatch, cli):
    """A partial clone whose config names an ext:: remote: reading a missing blob would
    make git run it (before: `git show` ran `sh -c touch ...`). Hostile GIT_* variables
    and core.fsmonitor must not run either."""
    marks = tmp_path / "marks"
    marks.mkdir()
    source = repository(tmp_path / "src", {"doc.dlm": dlm_text({"base_model": "smollm2-135m"})})
    git(source, "config", "uploadpack.allowfilter", "true")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--filter=blob:none", "--no-checkout", source.as_uri(), "clone")
    git(clone, "config", "remote.origin.url", f"ext::sh -c touch% {marks}/remote")
    git(clone, "config", "protocol.ext.allow", "always")
    git(clone, "config", "core.fsmonitor", f"touch {marks}/fsmonitor")
    git(clone, "config", "core.pager", f"touch {marks}/pager")
    hostile = {
        "GIT_EXTERNAL_DIFF": f"touch {marks}/external",
        "GIT_PAGER": f"touch {marks}/pager",
        "PAGER": f"touch {marks}/pager",
        "GIT_TRACE": str(marks / "trace"),
        "GIT_TRACE2_EVENT": str(marks / "trace2"),
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "core.fsmonitor",
        "GIT_CONFIG_VALUE_0": f"touch {marks}/config",
        "GIT_CONFIG_PARAMETERS": f"'core.fsmonitor'='touch {marks}/parameters'",
        "GIT_SSH_COMMAND": f"touch {marks}/ssh",
    }
    for name, value in hostile.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(clone)
    code, _, err = cli("diff", "HEAD:doc.dlm", "HEAD:doc.dlm")
    assert code == 2 and "cannot read it from git" in err, err
    assert sorted(p.name for p in marks.iterdir()) == []
    assert files_under(clone) == set()


@pytest.mark.parametrize(
    ("program", "says"),
    [
        ("exec sleep 20", "git took longer than 1 s (rules/limits.yaml git_wall_seconds)"),
        ("exec yes", "git took longer than 1 s"),
        ("exec cat /dev/zero", "git wrote a record longer than any path"),
        # a wrapper whose child outlives it unless its whole process group is killed
        ("sleep 20 & echo $! > child.pid; wait", "git took longer than 1 s"),
    ],
)
def test_a_git_that_hangs_or_floods_is_stopped(tmp_path, monkeypatch, cli, caps, program, says):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_text(f"#!/bin/sh\n{program}\n")
    (fake / "git").chmod(0o755)
    caps("git_wall_seconds", 1)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    code, _, err = cli("diff", "HEAD:doc.dlm", "HEAD:doc.dlm")
    assert code == 2 and says in err, err
    assert time.monotonic() - started < 10
    pid_file = tmp_path / "child.pid"
    if pid_file.exists():  # the wrapper's child was killed with git
        pid = int(pid_file.read_text())
        time.sleep(0.2)
        assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid), pid


def _state(pid: int) -> str:
    """A process's state letter from /proc (Z: a zombie, already dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


# --- class 8a: the old side reads its sources at its revision -------------------------


def test_the_old_side_reads_its_sources_at_the_revision(in_repo, cli, tmp_path, monkeypatch):
    """Before: after only notes/a.md changed, "the plan and the rows are the same"."""
    repo = in_repo({"notes/a.md": "old notes\n", "doc.dlm": dlm_text(SOURCES_DOC)})
    (repo / "notes" / "a.md").write_text("new notes, quite different\n")
    code, out, err = cli("diff", "HEAD:doc.dlm", "doc.dlm")
    assert code == 1, out + err
    assert "rows changed: 1" in out
    git(repo, "commit", "-qam", "second")
    assert cli("diff", "HEAD:doc.dlm", "doc.dlm")[0] == 0
    # The old side's hash is the one a render in a checkout of that revision gives.
    code, out, err = cli("diff", "HEAD~1:doc.dlm", "doc.dlm")
    old_hash = out.splitlines()[0].rsplit("(", 1)[1].rstrip(")")
    git(tmp_path, "clone", "-q", str(repo), "checkout")
    git(tmp_path / "checkout", "checkout", "-q", "HEAD~1")
    monkeypatch.chdir(tmp_path / "checkout")
    code, out, err = cli("render", "doc.dlm")
    assert code == 0 and out.strip() == f"generated/train_{old_hash}.py", out + err


def test_a_link_in_the_repository_is_laid_out_and_the_temporary_tree_removed(
    in_repo, cli, tmp_path, monkeypatch
):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    in_repo(
        {"shared/a.md": "shared notes\n", "doc.dlm": dlm_text(SOURCES_DOC)},
        {"notes/alias.md": "../shared/a.md"},
    )
    code, out, err = cli("diff", "HEAD:doc.dlm", "doc.dlm")
    assert code == 0, out + err  # the link's target was laid out, so its row is the same
    assert list(temporary.iterdir()) == []


@pytest.mark.parametrize(
    "links",
    [
        {"notes/leak.md": "/etc/hostname"},
        {"notes/leak.md": "../../../../../../../../etc/hostname"},
        # Inside by its letters (notes/up/../secret.md is notes/secret.md), outside by
        # the kernel's: notes/up is the top directory, and '..' above it leaves the tree.
        {"notes/up": "..", "notes/leak.md": "up/../secret.md"},
    ],
)
def test_a_link_stored_in_git_is_never_followed_outside(in_repo, cli, tmp_path, monkeypatch, links):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    (temporary / "secret.md").write_text("SECRET outside the repository\n")
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    in_repo({"notes/a.md": "notes\n", "doc.dlm": dlm_text(SOURCES_DOC)}, links)
    code, out, err = cli("diff", "HEAD:doc.dlm", "doc.dlm", "--json")
    assert code == 2, out + err
    assert "is a symbolic link at HEAD to a place outside the repository" in err
    assert "SECRET" not in out + err
    assert sorted(p.name for p in temporary.iterdir()) == ["secret.md"]


@pytest.mark.parametrize("path", ["../outside", "/etc", "~/notes"])
def test_sources_outside_the_repository_cannot_be_read_at_a_revision(in_repo, cli, path):
    document = {**SOURCES_DOC, "training": {"sources": [{"path": path}]}}
    in_repo({"doc.dlm": dlm_text(document)})
    code, _, err = cli("diff", "HEAD:doc.dlm", "doc.dlm")
    assert code == 2
    assert f"training.sources '{path}' lies outside the repository" in err


def test_sources_over_the_caps_at_a_revision_are_refused_plainly(in_repo, cli, caps):
    files = {f"notes/{i}.md": f"note {i}\n" for i in range(5)}
    in_repo({**files, "doc.dlm": dlm_text(SOURCES_DOC)})
    caps("max_source_files_walked", 3)
    code, _, err = cli("diff", "HEAD:doc.dlm", "HEAD:doc.dlm")
    assert code == 2 and "max_source_files_walked" in err, err


def test_a_local_base_is_read_at_the_revision_or_refused(in_repo, cli):
    import json

    repo = in_repo(
        {
            "models/tiny/config.json": json.dumps(TINY_LLAMA_CONFIG),
            "doc.dlm": dlm_text({"base_model": "./models/tiny"}),
        }
    )
    code, out, err = cli("diff", "HEAD:doc.dlm", "doc.dlm")
    assert code == 0, out + err
    git(repo, "rm", "-rq", "--cached", "models")
    git(repo, "commit", "-qm", "untrack the base")
    code, _, err = cli("diff", "HEAD:doc.dlm", "doc.dlm")
    assert code == 2 and "base_model './models/tiny' is not a directory stored in git" in err


def test_problems_name_the_revision_never_the_temporary_directory(in_repo, cli):
    document = dlm_text(SOURCES_DOC).replace("smollm2-135m", "no-such-base")
    in_repo({"notes/a.md": "notes\n", "doc.dlm": document})
    code, _, err = cli("diff", "HEAD:doc.dlm", "doc.dlm")
    assert code == 2 and "error: HEAD:doc.dlm:2: base_model: unknown base model" in err, err
    assert tempfile.gettempdir() not in err


# --- class 7, diff part: a script is read in bounded memory, rows compared linearly ---


def _script_of_size(size: int, tmp_path: Path) -> Path:
    """A rendered script whose ROWS are padded with instruction rows up to `size` bytes."""
    document = tmp_path / "doc.dlm"
    shutil.copy(EXAMPLES / "galore-smollm2.dlm", document)
    head, opening, tail = rendered_script(document).partition("ROWS = [\n")
    row = (
        '    {{\n        "kind": "instruction",\n        "adapter": None,\n'
        '        "line": {0},\n        "question": "question {0} about the corpus?",\n'
        '        "answer": "an answer of moderate length that fills the row {0}.",\n    }},\n'
    )
    rows, total, index = [], len(head) + len(opening) + len(tail), 0
    while total < size:
        rows.append(row.format(index))
        total += len(rows[-1])
        index += 1
    script = tmp_path / "train_big.py"
    script.write_text(head + opening + "".join(rows) + tail)
    return script


GROWTH = """
import resource, sys
from dlm_gen import diff
from dlm_gen.rules import load_rules
rules = load_rules()
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
side = diff.load_side(sys.argv[1], rules, None, None)
print(len(side.rows), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_a_script_is_read_in_memory_a_small_multiple_of_its_size(tmp_path):
    """Before: one syntax tree of the whole file, ~55x its size (4 GB for 60 MB)."""
    script = _script_of_size(4 * 2**20, tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", GROWTH, str(script)], capture_output=True, text=True, check=True
    )
    rows, growth_kib = (int(n) for n in done.stdout.split())
    assert rows > 15000
    assert growth_kib < 10 * script.stat().st_size / 1024, done.stdout


def test_rows_are_compared_in_linear_time():
    """Before: list membership and a scan of the removed rows for each added one, so two
    sides of max_rows different rows took minutes."""
    from dlm_gen.diff import AdapterSide, Side, _digest, compare_sides
    from dlm_gen.rules import load_rules

    def side(texts: list[str]) -> Side:
        rows = [
            {"kind": "instruction", "adapter": None, "line": i, "question": t, "answer": t}
            for i, t in enumerate(texts)
        ]
        return Side(
            "s", "script", None, {"": AdapterSide({}, {}, [], {})}, [], [_digest(r) for r in rows]
        )

    count = 20000  # rules/limits.yaml max_rows
    old = side([f"old {i}" for i in range(count)])
    new = side([f"new {i}" for i in range(count)])
    started = time.monotonic()
    difference = compare_sides(old, new, load_rules())
    assert time.monotonic() - started < 10  # quadratic took minutes
    assert len(difference.rows["changed"]) == count  # each at its own line
    assert difference.rows["changed"][5] == {"old_line": 5, "new_line": 5}


def test_warning_tokens_are_read_in_one_pass_over_a_hand_made_reason():
    """A script's reason line is input: the old `warn=(\\S+?)(?:,|$)` search restarted at
    every `warn=` and ran to the end of a line without commas (40k characters: 12.8 s)."""
    from dlm_gen.diff import warning_tokens

    reason = "precision=bf16, attn=sdpa, warn=galore-small-base(135M<1B), warn=x, optim=a"
    assert warning_tokens(reason) == ["galore-small-base(135M<1B)", "x"]
    assert warning_tokens("warn=, warn=a b, warn=c") == ["c"]
    assert warning_tokens("warn=" * 200_000) == ["warn=" * 199_999]


def test_a_tree_naming_a_link_and_a_directory_alike_makes_nothing_outside(
    tmp_path, cli, monkeypatch
):
    """A crafted tree lists D/B twice: a link to a directory outside, and a directory
    holding a link. Laying out D/B/q/r once made D/B/q through the fresh link (mkdir
    with parents, then a realpath check): a directory outside the temporary tree."""
    import binascii

    outside = tmp_path / "outside"
    outside.mkdir()
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", ".")

    def obj(kind: str, data: bytes) -> str:
        done = subprocess.run(
            ["git", "hash-object", "-t", kind, "--literally", "-w", "--stdin"],
            cwd=repo,
            input=data,
            capture_output=True,
            check=True,
        )
        return done.stdout.strip().decode()

    def tree(entries: list[tuple[str, str, str]]) -> str:
        body = b"".join(
            f"{mode} {name}".encode() + b"\0" + binascii.unhexlify(oid)
            for mode, name, oid in entries
        )
        return obj("tree", body)

    inner = tree([("40000", "q", tree([("120000", "r", obj("blob", b"zzz"))]))])
    twice = tree([("120000", "B", obj("blob", str(outside).encode())), ("40000", "B", inner)])
    document = obj(
        "blob", dlm_text({**SOURCES_DOC, "training": {"sources": [{"path": "D"}]}}).encode()
    )
    root = tree([("40000", "D", twice), ("100644", "doc.dlm", document)])
    commit = git(repo, "-c", "user.name=a", "-c", "user.email=a@b", "commit-tree", root, "-m", "x")
    git(repo, "update-ref", "refs/heads/main", commit.strip())
    git(repo, "symbolic-ref", "HEAD", "refs/heads/main")
    monkeypatch.chdir(repo)
    code, out, err = cli("diff", "HEAD:doc.dlm", "HEAD:doc.dlm")
    assert code == 2 and "lies under a symbolic link" in err, out + err
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    ("literal", "says"),
    [
        ("[\n" + "0," * (4 * 2**20) + "\n]", "not a script rendered by dlm-gen"),  # 8M tokens
        ('[\n    {"name": None, "reason": "x", "plan": {"lr": 1e999}},\n]', "not a script"),
        ('[\n    {"name": None, "reason": "x", "plan": {"lr": {1, 2}}},\n]', "not a script"),
        ('[\n    {"name": None, "reason": "x", "plan": {"lr": b"x"}},\n]', "not a script"),
        ('[\n    {"name": None, "reason": "x", "plan": {1: 2, "a": 3}},\n]', "not a script"),
    ],
)
def test_a_hand_made_script_is_read_within_bounds_or_refused(tmp_path, literal, says):
    """Found by a hostile tester: `0,0,...` in ADAPTERS took 2 GB at 4 MiB (the syntax
    tree costs ~250 bytes a token); `1e999` printed Infinity in --json; a set, bytes or
    a non-string key was a traceback. Now the tokens are counted against
    max_script_literal_tokens first and only JSON-like values are read."""
    from tests.fuzzing import assert_safe_outcome, run_cli

    good = tmp_path / "train_good.py"
    good.write_text('ADAPTERS = [\n    {"name": None, "reason": "x", "plan": {"lr": 1}},\n]\n')
    bad = tmp_path / "train_bad.py"
    bad.write_text(f"ADAPTERS = {literal}\n")
    outcome = run_cli(["diff", good, bad, "--json"], tmp_path, memory_mb=700, timeout_s=60)
    assert_safe_outcome(outcome, codes=(2,))
    assert says in outcome.stderr.decode(), outcome.describe()
    assert b"Infinity" not in outcome.stdout


def test_the_literal_reader_refuses_past_its_budget_before_building_a_tree():
    """The budget is spent while tokenizing, so a literal of millions of tokens is
    refused in the memory of a few tokens, not the ~2 GB of its syntax tree."""
    import tracemalloc

    from dlm_gen.readback import LiteralReader, NotAPlanLiteral

    tracemalloc.start()
    with pytest.raises(NotAPlanLiteral, match="max_script_literal_tokens"):
        LiteralReader(max_tokens=100_000).read("[" + "0," * (2 * 2**20) + "]")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 64 * 2**20, peak
    assert LiteralReader(max_tokens=100).read('{"a": [1, 2.5, None, "x"]}') == {
        "a": [1, 2.5, None, "x"]
    }

"""`training.sources`: files become prose rows, in order, bounded, confined, hashed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlm_gen.document import TextRow
from dlm_gen.errors import DlmError
from dlm_gen.pipeline import read_document
from dlm_gen.sources import _glob
from tests.conftest import EXAMPLES, run_dlm_gen, write_dlm

REPOSITORY = EXAMPLES.parent


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def document_with(tmp_path: Path, *directives: dict, policy: str = "permissive") -> Path:
    training = {"sources_policy": policy, "sources": list(directives)}
    return write_dlm(tmp_path, {"base_model": "smollm2-135m", "training": training}, "Body.\n")


def source_rows(path: Path) -> list[TextRow]:
    return [row for row in read_document(path).rows if getattr(row, "source", None)]


def test_each_file_is_one_prose_row_headed_by_its_path_in_lexicographic_order(tmp_path):
    tree(
        tmp_path / "notes",
        {
            "b.md": b"Second.\n",
            "a.md": b"\xef\xbb\xbfFirst,\r\nwith CRLF.\r\n",
            "sub/c.txt": b"Third.\n",
            "image.png": b"\x89PNG\r\n\x1a\n\0\0\0",
            "latin1.txt": "caf\xe9".encode("latin-1"),
            "blank.md": b"  \n",
        },
    )
    path = document_with(tmp_path, {"path": "notes"})
    rows = source_rows(path)
    assert [row.source for row in rows] == ["a.md", "b.md", "sub/c.txt"]
    assert rows[0].text == "# source: a.md\n\nFirst,\nwith CRLF.\n"  # BOM and CR gone
    path_line = path.read_text(encoding="utf-8").split("\n").index("  - path: notes") + 1
    assert rows[0].line == path_line and rows[0].adapter is None  # the directive's line
    (report,) = read_document(path).sources
    assert report.skipped == {
        "binary": 1,
        "not_utf8": 1,
        "empty": 1,
        "over_max_bytes": 0,
        "over_max_files": 0,
        "unreadable": 0,
    }
    assert "3 files" in report.describe() and "1 not UTF-8" in report.describe()


def test_include_exclude_and_the_caps(tmp_path):
    tree(
        tmp_path / "code",
        {
            "a.py": b"a = 1\n",
            "pkg/b.py": b"b = 2\n",
            "pkg/c.py": b"c = 3\n" * 100,
            "tests/test_a.py": b"assert True\n",
            "README.md": b"Read me.\n",
        },
    )
    directive = {"path": "./code", "include": ["**/*.py"], "exclude": ["tests/**"]}
    path = document_with(tmp_path, directive)
    assert [r.source for r in source_rows(path)] == ["a.py", "pkg/b.py", "pkg/c.py"]
    path = document_with(tmp_path, {**directive, "max_bytes_per_file": 100, "max_files": 1})
    assert [r.source for r in source_rows(path)] == ["a.py"]
    (report,) = read_document(path).sources
    assert report.skipped["over_max_files"] == 2  # cut first, in order
    single = document_with(tmp_path, {"path": "code/README.md"})
    assert [r.text for r in source_rows(single)] == ["# source: README.md\n\nRead me.\n"]


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("**/*.py", ["a.py", "x/y/a.py"], ["a.pyc", "a.py/x"]),
        ("*.md", ["a.md"], ["sub/a.md"]),
        ("tests/**", ["tests/a", "tests/a/b.py"], ["src/tests/a"]),
        ("file?.[ch]", ["file1.c", "filex.h"], ["file12.c", "file1.py"]),
        ("[!a]*.txt", ["b.txt"], ["a.txt"]),
        ("notes (old).md", ["notes (old).md"], ["notes old.md"]),
    ],
)
def test_globs_follow_posix_rules_where_double_star_spans_directories(pattern, matches, misses):
    glob = _glob(pattern)
    assert all(glob.fullmatch(path) for path in matches)
    assert not any(glob.fullmatch(path) for path in misses)


def test_a_missing_path_is_a_located_error_naming_the_path_line(tmp_path):
    path = document_with(tmp_path, {"path": "./nowhere"}, {"path": "/no/such/dir"})
    done = run_dlm_gen("explain", path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = path.read_text(encoding="utf-8").split("\n")
    first, second = (
        lines.index("  - path: ./nowhere") + 1,
        lines.index("  - path: /no/such/dir") + 1,
    )
    assert (
        f"doc.dlm:{first}: training.sources.0.path: no such file or directory './nowhere' "
        "(relative to the document's directory)"
    ) in done.stderr
    assert (
        f"doc.dlm:{second}: training.sources.1.path: no such file or directory '/no/such/dir'"
        in (done.stderr)
    )


def test_tilde_is_the_home_directory(tmp_path, monkeypatch):
    tree(tmp_path / "home" / "notes", {"n.md": b"From home.\n"})
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = document_with(tmp_path, {"path": "~/notes"})
    assert [r.text for r in source_rows(path)] == ["# source: n.md\n\nFrom home.\n"]
    assert read_document(path).sources[0].path == "~/notes"  # kept as written


def test_strict_policy_confines_paths_and_links_to_the_documents_directory(tmp_path):
    tree(tmp_path / "outside", {"secret.txt": b"key\n"})
    project = tmp_path / "project"
    tree(project / "notes", {"ok.md": b"Fine.\n"})
    os.symlink(tmp_path / "outside" / "secret.txt", project / "notes" / "link.txt")
    escaping = document_with(project, {"path": "../outside"}, policy="strict")
    with pytest.raises(DlmError, match="resolves outside the document's directory"):
        read_document(escaping)
    linked = document_with(project, {"path": "notes"}, policy="strict")
    with pytest.raises(DlmError, match=r"'notes/link\.txt' is a link to a file outside"):
        read_document(linked)
    permissive = document_with(project, {"path": "notes"})
    assert [r.source for r in source_rows(permissive)] == ["link.txt", "ok.md"]
    inside = document_with(project, {"path": "notes", "exclude": ["link.txt"]}, policy="strict")
    assert [r.source for r in source_rows(inside)] == ["ok.md"]


def test_sources_count_toward_the_document_size_cap(tmp_path, monkeypatch):
    from dlm_gen import document as document_module

    tree(tmp_path / "big", {"a.txt": b"x" * 5000})
    capped = {**document_module.limits(), "max_document_bytes": 4000}
    monkeypatch.setattr(document_module, "limits", lambda: capped)
    with pytest.raises(DlmError, match="add more text than the document may hold"):
        read_document(document_with(tmp_path, {"path": "big"}))


def test_a_bad_directive_is_a_located_schema_error(tmp_path):
    path = document_with(tmp_path, {"path": "notes", "max_files": 0, "includes": ["*"]})
    done = run_dlm_gen("explain", path)
    assert done.returncode == 1
    assert "training.sources.0.max_files" in done.stderr
    assert "unknown key 'includes'" in done.stderr


def repository_docs_example(tmp_path: Path, tiny_model: Path) -> tuple[Path, Path]:
    """examples/from-docs.dlm over a copy of this repository's docs/, on the tiny model."""
    shutil.copytree(REPOSITORY / "docs", tmp_path / "docs")
    (tmp_path / "examples").mkdir()
    text = (EXAMPLES / "from-docs.dlm").read_text(encoding="utf-8")
    text = text.replace("base_model: ../runs/tiny-llama", f"base_model: {tiny_model}")
    document = tmp_path / "examples" / "from-docs.dlm"
    document.write_text(text, encoding="utf-8")
    return document, tmp_path / "docs"


@pytest.mark.slow
def test_a_sources_document_trains_and_check_flags_a_changed_source(tmp_path, tiny_model):
    import subprocess
    import sys

    document, docs = repository_docs_example(tmp_path, tiny_model)
    out = tmp_path / "generated"
    rendered = run_dlm_gen("render", document, "--out", out, "--target", "cpu")
    assert rendered.returncode == 0, rendered.stderr
    script = Path(rendered.stdout.strip())
    text = script.read_text(encoding="utf-8")
    assert str(tmp_path) not in text  # paths stay as written, relative
    assert '"path": "../docs"' in text and "# source: dora-vs-lora.md" in text
    config = ["--config", str(REPOSITORY / "pyproject.toml"), "--no-cache"]
    for command in (["check"], ["format", "--check"]):
        ruff = subprocess.run(
            [sys.executable, "-m", "ruff", *command, *config, str(script)], capture_output=True
        )
        assert ruff.returncode == 0, ruff.stdout.decode()
    run = subprocess.run(
        [sys.executable, str(script), "--output-dir", str(tmp_path / "run"), "--max-steps", "3"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    manifest = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    (source,) = manifest["sources"]
    files = {f["path"] for f in source["files"]}
    assert files == {p.relative_to(docs).as_posix() for p in docs.rglob("*.md")}
    assert manifest["adapters"][0]["steps"] == 3
    assert run_dlm_gen("check", document, "--out", out, "--target", "cpu").returncode == 0
    changed = docs / "dora-vs-lora.md"
    changed.write_text(changed.read_text(encoding="utf-8") + "\nOne more line.\n", "utf-8")
    stale = run_dlm_gen("check", document, "--out", out, "--target", "cpu")
    assert stale.returncode == 1 and "stale:" in stale.stderr


@pytest.mark.parametrize(
    ("written", "outcome"),
    [
        ("bad\0path", "no such file or directory"),
        ("x" * 4000, "cannot read"),
        ("/dev/zero", "unreadable"),  # a device: counted, never read
        ("fifo", "unreadable"),  # a FIFO: counted, never opened (no hang)
    ],
)
def test_hostile_paths_are_located_errors_or_skips_never_a_hang(tmp_path, written, outcome):
    os.mkfifo(tmp_path / "fifo")
    path = document_with(tmp_path, {"path": written})
    if outcome == "unreadable":
        (report,) = read_document(path).sources
        assert report.files == () and report.skipped["unreadable"] == 1
        return
    with pytest.raises(DlmError) as raised:
        read_document(path)
    (problem,) = raised.value.problems
    assert problem.field == "training.sources.0.path" and outcome in problem.message


def test_a_pattern_that_is_no_glob_is_refused_at_its_line(tmp_path):
    tree(tmp_path / "notes", {"a.md": b"A.\n"})
    path = document_with(tmp_path, {"path": "notes", "include": ["[z-a]*.md"]})
    done = run_dlm_gen("explain", path)
    line = path.read_text(encoding="utf-8").split("\n").index("    - '[z-a]*.md'") + 1
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"doc.dlm:{line}: training.sources.0.include.0: pattern '[z-a]*.md' is not a valid" in (
        done.stderr
    )


def test_source_text_reaches_the_script_only_as_a_literal(tmp_path):
    import ast

    from dlm_gen.pipeline import plan_document

    hostile = '"""\nimport os; os.system("touch pwned")  # \\\n{{ x }} {% raw %}\n'
    tree(tmp_path / "notes", {"evil.py": hostile.encode()})
    path = document_with(tmp_path, {"path": "notes"})
    text = plan_document(path, "cpu").render(tmp_path / "out").text
    module = ast.parse(text)
    calls = [
        node.func.attr
        for node in ast.walk(module)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    ]
    assert "system" not in calls
    constants = [n.value for n in ast.walk(module) if isinstance(n, ast.Constant)]
    assert f"# source: evil.py\n\n{hostile}" in constants


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(alphabet="abcXYZ019_-. ()", min_size=1, max_size=8).filter(
            lambda part: part not in (".", "..")
        ),
        min_size=1,
        max_size=4,
    )
)
def test_a_glob_without_wildcards_matches_exactly_its_path(parts):
    relpath = "/".join(parts)
    assert _glob(relpath).fullmatch(relpath)
    assert not _glob(relpath).fullmatch(relpath + "x")
    assert _glob("**/" + parts[-1]).fullmatch(relpath)  # '**/' spans any directories
    assert _glob("**").fullmatch(relpath) and _glob("**/*").fullmatch(relpath)
    if len(parts) > 1:
        assert not _glob("*").fullmatch(relpath)  # '*' stays within one directory


def test_the_dlm_tools_per_directory_configs_are_refused_not_trained(tmp_path):
    tree(tmp_path / "repo", {"a.py": b"a = 1\n", "sub/.dlm/ignore": b"*.log\n"})
    with pytest.raises(DlmError, match=r"'repo/sub/\.dlm/ignore' is one of the dlm tool's"):
        read_document(document_with(tmp_path, {"path": "repo"}))
    excluded = document_with(tmp_path, {"path": "repo", "exclude": ["**/.dlm/**"]})
    assert [r.source for r in source_rows(excluded)] == ["a.py"]

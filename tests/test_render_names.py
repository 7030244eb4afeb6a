"""File names are bytes, and render's bookkeeping keys on them exactly.

A document or source file whose name is not UTF-8 renders, checks and explains
(shown escaped, hashed by its bytes); one failing document never stops a batch;
two documents whose names look alike once escaped never remove each other's
scripts; and a script that cannot be written leaves no batch file behind."""

from __future__ import annotations

import ast
import os
from pathlib import Path

from dlm_gen import pipeline
from dlm_gen.pipeline import plan_document
from tests.conftest import dlm_text
from tests.fuzzing import assert_safe_outcome, run_cli, terminal_hazards

BODY = "Some prose.\n"


def write_named(directory: Path, name: bytes, frontmatter: dict | None = None, body=BODY) -> str:
    """A document whose file name is exactly `name` (bytes); returns it as the OS gives
    it to a Python program (surrogate escapes for bytes that are not UTF-8)."""
    text = dlm_text(frontmatter or {"base_model": "smollm2-135m"}, body)
    Path(os.fsdecode(directory / os.fsdecode(name))).write_bytes(text.encode("utf-8"))
    return os.fsdecode(name)


def constants(script: Path) -> dict[str, object]:
    """The script's top-level literal assignments (a list of functions is no literal)."""
    module = ast.parse(script.read_text(encoding="utf-8"))
    found = {}
    for node in module.body:
        if not (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, (ast.Constant, ast.List, ast.Dict, ast.Tuple))
        ):
            continue
        try:
            found[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            continue
    return found


def test_a_source_file_whose_name_is_not_utf8_renders_and_checks(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (Path(os.fsdecode(bytes(notes) + b"/na\xffme.md"))).write_bytes(b"Text.\n")
    frontmatter = {"base_model": "smollm2-135m", "training": {"sources": [{"path": "notes"}]}}
    write_named(tmp_path, b"doc.dlm", frontmatter)
    rendered = run_cli(["render", "doc.dlm", "--out", "out", "--target", "cpu"], tmp_path)
    assert_safe_outcome(rendered)
    assert rendered.code == 0, rendered.describe()
    (script,) = (tmp_path / "out").glob("train_*.py")
    sources = constants(script)["SOURCES"]
    assert sources[0]["files"][0]["path"] == os.fsdecode(b"na\xffme.md")  # exact
    text = script.read_text(encoding="utf-8")
    assert "# source: na\\\\udcffme.md" in text  # the row's header: an escape, no surrogate
    for command in (["check", "doc.dlm", "--out", "out"], ["explain", "-v", "doc.dlm"]):
        outcome = run_cli([*command, "--target", "cpu"], tmp_path)
        assert_safe_outcome(outcome)
        assert outcome.code == 0, outcome.describe()


def test_a_latin1_document_name_renders_and_the_batch_goes_on(tmp_path):
    cafe = write_named(tmp_path, b"caf\xe9.dlm")
    other = write_named(tmp_path, b"z.dlm", body="Other prose.\n")
    rendered = run_cli(["render", cafe, other, "--out", "out", "--target", "cpu"], tmp_path)
    assert_safe_outcome(rendered)
    assert rendered.code == 0, rendered.describe()
    scripts = sorted((tmp_path / "out").glob("train_*.py"))
    assert len(scripts) == 2 and len(rendered.stdout.decode().split()) == 2
    documents = {constants(s)["SOURCE_DOCUMENT"] for s in scripts}
    assert documents == {"../" + cafe, "../z.dlm"}  # exact, the bytes recoverable
    assert "caf\\udce9.dlm" in scripts[0].read_text(encoding="utf-8") + scripts[1].read_text(
        encoding="utf-8"
    )  # shown escaped in the header
    for command in (["check", cafe, other, "--out", "out"], ["explain", cafe]):
        outcome = run_cli([*command, "--target", "cpu"], tmp_path)
        assert_safe_outcome(outcome)
        assert outcome.code == 0, outcome.describe()


def test_an_unexpected_failure_is_reported_for_its_document_and_the_others_render(
    tmp_path, cli, monkeypatch
):
    first = tmp_path / write_named(tmp_path, b"a.dlm")
    second = tmp_path / write_named(tmp_path, b"b.dlm", body="Other prose.\n")
    real = pipeline.render_plans

    def failing(document, *args, **kwargs):
        if document.path.endswith("a.dlm"):
            raise RuntimeError("boom")
        return real(document, *args, **kwargs)

    monkeypatch.setattr(pipeline, "render_plans", failing)
    code, out, err = cli("render", first, second, "--out", tmp_path / "out", "--target", "cpu")
    assert code == 1
    assert f"error: {first}: dlm-gen failed on this document (RuntimeError: boom)" in err
    (script,) = (tmp_path / "out").glob("train_*.py")
    assert out.strip() == str(script)  # the second document was still written and reported
    code, out, err = cli("check", first, second, "--out", tmp_path / "out", "--target", "cpu")
    assert code == 1 and "RuntimeError: boom" in err and str(second) not in err


def test_names_that_look_alike_escaped_keep_their_own_scripts(tmp_path):
    """`a<ESC>b.dlm` and `a\\x1bb.dlm` (a backslash) both show as `a\\x1bb.dlm`."""
    escape = write_named(tmp_path, b"a\x1bb.dlm")
    backslash = write_named(tmp_path, b"a\\x1bb.dlm", body="Other prose.\n")
    for name in (escape, backslash):
        outcome = run_cli(["render", name, "--out", "out", "--target", "cpu"], tmp_path)
        assert_safe_outcome(outcome)
        assert outcome.code == 0 and b"removed" not in outcome.stderr, outcome.describe()
    assert len(list((tmp_path / "out").glob("train_*.py"))) == 2
    checked = run_cli(["check", escape, backslash, "--out", "out", "--target", "cpu"], tmp_path)
    assert checked.code == 0, checked.describe()
    assert not terminal_hazards(checked.text)


def test_an_older_render_is_still_removed_with_its_batch_file(tmp_path, cli):
    document = tmp_path / write_named(tmp_path, b"caf\xe9.dlm")
    out = tmp_path / "out"
    assert cli("render", document, "--out", out, "--target", "cpu", "--sbatch")[0] == 0
    document.write_text(dlm_text({"base_model": "smollm2-135m"}, "Changed.\n"), "utf-8")
    code, _, err = cli("render", document, "--out", out, "--target", "cpu", "--sbatch")
    assert code == 0 and "removed" in err
    assert len(list(out.glob("train_*.py"))) == len(list(out.glob("train_*.sbatch"))) == 1


def test_a_script_that_cannot_be_written_leaves_no_batch_file(tmp_path, cli):
    document = tmp_path / write_named(tmp_path, b"doc.dlm")
    out = tmp_path / "out"
    name = plan_document(document, "cpu").render(out).name
    (out / name).mkdir(parents=True)  # a directory where the script should go
    code, _, err = cli("render", document, "--out", out, "--target", "cpu", "--sbatch")
    assert code == 1 and f"error: {out / name}: Is a directory" in err
    assert sorted(p.name for p in out.iterdir()) == [name]  # no .sbatch, no temporary


def test_the_hash_tells_every_two_names_apart_and_keeps_unicode_hashes():
    import hashlib
    import json

    from dlm_gen.render import HASH_LENGTH, inputs_hash

    names = ["caf\xe9.dlm", os.fsdecode(b"caf\xe9.dlm"), "caf\\xe9.dlm", "caf\ud800.dlm"]
    assert len({inputs_hash({"document_name": name}) for name in names}) == len(names)
    canonical = json.dumps({"document_name": "caf\xe9"}, separators=(",", ":"), ensure_ascii=False)
    before = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:HASH_LENGTH]
    assert inputs_hash({"document_name": "caf\xe9"}) == before  # valid names: as before


def test_a_long_document_name_written_in_pieces_is_still_recognised(tmp_path, cli):
    """A name too long for one line is a parenthesized literal in the script."""
    document = tmp_path / write_named(tmp_path, b"n" * 150 + b"\xff.dlm")
    out = tmp_path / "out"
    assert cli("render", document, "--out", out, "--target", "cpu")[0] == 0
    (first,) = out.glob("train_*.py")
    assert "SOURCE_DOCUMENT = (\n" in first.read_text(encoding="utf-8")
    document.write_text(dlm_text({"base_model": "smollm2-135m"}, "Changed.\n"), "utf-8")
    code, _, err = cli("render", document, "--out", out, "--target", "cpu")
    assert code == 0 and "removed" in err and not first.exists()
    assert cli("check", document, "--out", out, "--target", "cpu")[0] == 0

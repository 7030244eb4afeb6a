"""`dlm-gen check`: in sync, missing, stale after a document edit, hand-edited."""

from __future__ import annotations

import shutil

import yaml

from tests.conftest import EXAMPLES, ROOT


def setup_document(tmp_path):
    document = tmp_path / "corpus.dlm"
    shutil.copy(EXAMPLES / "galore-smollm2.dlm", document)
    return document, tmp_path / "generated"


def test_missing_then_in_sync(tmp_path, cli):
    document, out = setup_document(tmp_path)
    code, _, err = cli("check", document, "--out", out, "--target", "cpu")
    assert code == 1 and "missing:" in err and "dlm-gen render" in err
    assert cli("render", document, "--out", out, "--target", "cpu")[0] == 0
    code, out_text, _ = cli("check", document, "--out", out, "--target", "cpu")
    assert code == 0 and "in sync" in out_text


def test_hand_edit_fails_and_rerender_fixes(tmp_path, cli):
    document, out = setup_document(tmp_path)
    cli("render", document, "--out", out)
    [script] = out.glob("train_*.py")
    script.write_text(script.read_text().replace("learning_rate=", "learning_rate=0.1 * "))
    code, _, err = cli("check", document, "--out", out)
    assert code == 1 and "hand-edited" in err and script.name in err
    cli("render", document, "--out", out)
    assert cli("check", document, "--out", out)[0] == 0


def test_document_edit_makes_the_script_stale(tmp_path, cli):
    document, out = setup_document(tmp_path)
    cli("render", document, "--out", out)
    [old] = out.glob("train_*.py")
    document.write_text(document.read_text().replace("lora_r: 8", "lora_r: 16"))
    code, _, err = cli("check", document, "--out", out)
    assert code == 1 and "stale:" in err and old.name in err
    cli("render", document, "--out", out)
    assert cli("check", document, "--out", out)[0] == 0


def test_check_lists_every_document(tmp_path, cli):
    first, out = setup_document(tmp_path)
    second = tmp_path / "other.dlm"
    shutil.copy(EXAMPLES / "qlora-t4.dlm", second)
    code, _, err = cli("check", first, second, "--out", out)
    assert code == 1 and err.count("missing:") == 2


def test_pre_commit_hook_runs_check():
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["entry"] == "dlm-gen check" and hook["files"] == r"\.dlm$"


def two_documents_named_alike(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "docs" / name).mkdir(parents=True)
        shutil.copy(EXAMPLES / "galore-smollm2.dlm", tmp_path / "docs" / name / "x.dlm")
    return tmp_path / "docs" / "a" / "x.dlm", tmp_path / "docs" / "b" / "x.dlm"


def test_stale_matching_uses_the_recorded_document_path(tmp_path, cli):
    a, b = two_documents_named_alike(tmp_path)
    out = tmp_path / "generated"
    b.write_text(b.read_text().replace("lora_r: 8", "lora_r: 4"))  # a and b differ
    assert cli("render", a, "--out", out)[0] == 0
    assert cli("render", b, "--out", out)[0] == 0
    scripts = {p.name: p.read_text().splitlines()[1] for p in out.glob("train_*.py")}
    [script_b] = [name for name, line in scripts.items() if "docs/b/x.dlm" in line]
    b.write_text(b.read_text().replace("lora_r: 4", "lora_r: 16"))
    code, _, err = cli("check", a, b, "--out", out)
    assert code == 1
    [problem] = err.strip().splitlines()
    assert "stale:" in problem and script_b in problem and str(b) in problem


def test_render_removes_the_documents_older_script(tmp_path, cli):
    document, out = setup_document(tmp_path)
    cli("render", document, "--out", out)
    [old] = out.glob("train_*.py")
    document.write_text(document.read_text().replace("lora_r: 8", "lora_r: 16"))
    code, printed, err = cli("render", document, "--out", out)
    assert code == 0 and f"removed {old}" in err
    assert [p.name for p in out.glob("train_*.py")] == [printed.strip().rsplit("/", 1)[1]]
    assert cli("check", document, "--out", out)[0] == 0


def test_render_keeps_the_script_of_another_target(tmp_path, cli):
    document, out = setup_document(tmp_path)
    cli("render", document, "--out", out, "--target", "cpu")
    cli("render", document, "--out", out, "--target", "h100")
    assert len(list(out.glob("train_*.py"))) == 2


def test_a_script_for_another_target_is_named_as_such(tmp_path, cli):
    document, out = setup_document(tmp_path)
    cli("render", document, "--out", out, "--target", "cpu")
    code, _, err = cli("check", document, "--out", out)
    assert code == 1
    assert "target differs:" in err and "for cpu (host CPU)" in err
    assert "check with --target cpu" in err and "stale" not in err


def test_a_script_with_a_stray_byte_is_hand_edited_and_the_rest_is_checked(tmp_path, cli):
    document, out = setup_document(tmp_path)
    cli("render", document, "--out", out)
    [script] = out.glob("train_*.py")
    script.write_bytes(script.read_bytes() + b"\xff")
    other = tmp_path / "other.dlm"
    shutil.copy(EXAMPLES / "qlora-t4.dlm", other)
    code, _, err = cli("check", document, other, "--out", out)
    assert code == 1 and "Traceback" not in err
    assert "hand-edited" in err and "missing:" in err


def test_a_killed_render_leaves_no_temporary_behind(tmp_path, cli, monkeypatch):
    import os
    import time

    from dlm_gen import render

    document, out = setup_document(tmp_path)
    out.mkdir()
    old = out / ".train_left_by_a_kill.tmp"
    old.write_text("partial")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    recent = out / ".train_being_written.tmp"
    recent.write_text("another render, still running")
    assert cli("render", document, "--out", out)[0] == 0
    assert not old.exists() and recent.exists()

    def disk_full(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(render.os, "replace", disk_full)
    document.write_text(document.read_text().replace("lora_r: 8", "lora_r: 16"))
    code, _, err = cli("render", document, "--out", out)
    assert code == 1 and "No space left on device" in err
    assert f"{out}/train_" in err and ".tmp" not in err  # names the destination
    assert sorted(p.name for p in out.glob(".train_*.tmp")) == [recent.name]


def test_a_rendered_script_is_fsynced_and_executable(tmp_path, cli, monkeypatch):
    import os

    from dlm_gen import render

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(render.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    document, out = setup_document(tmp_path)
    cli("render", document, "--out", out)
    [script] = out.glob("train_*.py")
    assert synced and os.access(script, os.X_OK)


def test_a_hand_edit_inside_the_runtime_names_its_module(tmp_path, cli):
    document, out = setup_document(tmp_path)
    cli("render", document, "--out", out)
    [script] = out.glob("train_*.py")
    text = script.read_text()
    assert text.count('f"{value:.4f}"') == 1  # console.rounded, in the runtime
    script.write_text(text.replace('f"{value:.4f}"', 'f"{value:.2f}"'))
    code, _, err = cli("check", document, "--out", out)
    line = text[: text.index('f"{value:.4f}"')].count("\n") + 1
    assert code == 1 and f"hand-edited at line {line}, inside the runtime" in err
    assert "(dlm_gen/runtime/console.py, dlm-gen 0.1.0's, sha256 " in err
    # An edit of the plan is the document's business.
    script.write_text(text.replace('"lora_r": 8,', '"lora_r": 9,', 1))
    code, _, err = cli("check", document, "--out", out)
    assert code == 1 and "in the plan, the header or the data" in err


def test_a_script_of_another_release_is_stale_and_says_its_runtime(tmp_path, cli, older_dlm_gen):
    from tests.conftest import run_dlm_gen

    document, out = setup_document(tmp_path)
    done = run_dlm_gen("render", document, "--out", out, extra_path=older_dlm_gen, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    code, _, err = cli("check", document, "--out", out)
    assert code == 1 and "stale:" in err
    assert "with dlm-gen 0.0.9's runtime (sha256 " in err and "installed: 0.1.0" in err

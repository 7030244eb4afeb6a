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

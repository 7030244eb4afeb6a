"""`dlm-gen diff`: what a pull request changes, in plan terms."""

from __future__ import annotations

import json
import shutil
import subprocess

from dlm_gen.resources import data_dir
from tests.conftest import EXAMPLES, run_dlm_gen


def two_documents(tmp_path):
    galore = tmp_path / "galore.dlm"
    shutil.copy(EXAMPLES / "galore-smollm2.dlm", galore)
    lora = tmp_path / "lora.dlm"
    lora.write_text(galore.read_text().replace("optimizer: galore_adamw", "optimizer: adamw_torch"))
    return lora, galore


def render(document, out, env_rules=None, cwd=None):
    extra = {} if env_rules is None else {"DLM_GEN_RULES": str(env_rules)}
    done = run_dlm_gen("render", document, "--out", out, env=extra, cwd=cwd or out.parent)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_lora_vs_galore_scripts_name_the_optim_change_and_both_rules(tmp_path):
    lora, galore = two_documents(tmp_path)
    old = render(lora, tmp_path / "a")
    new = render(galore, tmp_path / "b")
    done = run_dlm_gen("diff", old, new)
    assert done.returncode == 1, done.stderr
    assert 'optim: "adamw_torch_fused" -> "galore_adamw"' in done.stdout
    assert (
        "decided by optim-adamw-torch (rules/optimizers.yaml:" in done.stdout
        and "-> optim-galore-adamw (rules/optimizers.yaml:" in done.stdout
    )
    assert "warning added: galore-small-base(135M<1B)" in done.stdout
    assert "requirement added: galore-torch" in done.stdout


def test_a_comment_in_a_rule_table_changes_only_the_hash(tmp_path):
    _, galore = two_documents(tmp_path)
    tables = tmp_path / "rules"
    shutil.copytree(data_dir("rules"), tables)
    old = render(galore, tmp_path / "a", env_rules=tables)
    table = tables / "optimizer.yaml"
    table.write_text("# a reviewer's note\n" + table.read_text())
    new = render(galore, tmp_path / "b", env_rules=tables)
    assert old.rsplit("/", 1)[1] != new.rsplit("/", 1)[1]  # the hash moved
    done = run_dlm_gen("diff", old, new)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "only the hash differs" in done.stdout


def test_json_and_markdown(tmp_path):
    lora, galore = two_documents(tmp_path)
    done = run_dlm_gen("diff", lora, galore, "--json")
    assert done.returncode == 1
    data = json.loads(done.stdout)
    [plan] = data["adapters"]
    [optim] = [c for c in plan["fields"] if c["field"] == "optim"]
    assert optim["old"] == "adamw_torch_fused" and optim["new"] == "galore_adamw"
    assert optim["new_source"].startswith("rules/optimizers.yaml:")
    # AdamW's fused kernel needs torch>=2.8; GaLore's plan needs only packing's torch>=2.6.
    assert data["requirements_added"] == ["galore-torch", "torch>=2.6"]
    assert data["requirements_removed"] == ["torch>=2.8"] and data["changed"] is True
    markdown = run_dlm_gen("diff", lora, galore, "--format", "md").stdout
    assert markdown.startswith("### dlm-gen diff")
    assert '| `optim` | `"adamw_torch_fused"` | `"galore_adamw"` | optim-adamw-torch' in markdown


def test_rows_added_removed_and_changed_with_their_lines(tmp_path):
    lora, _ = two_documents(tmp_path)
    edited = tmp_path / "edited.dlm"
    text = lora.read_text()
    edited.write_text(text + "\n::instruction::\n### Q\nA new question?\n### A\nA new answer.\n")
    done = run_dlm_gen("diff", lora, edited)
    assert done.returncode == 1
    assert "rows added: 1 (document lines" in done.stdout
    assert "plan:" not in done.stdout  # the plan is the same


def test_revision_paths_read_from_git(tmp_path):
    lora, galore = two_documents(tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    script = render(lora, tmp_path / "generated", cwd=tmp_path)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "lora"], cwd=tmp_path, check=True)
    new = render(galore, tmp_path / "generated", cwd=tmp_path)
    relative = script.split("generated/", 1)[1]
    done = run_dlm_gen("diff", f"HEAD:generated/{relative}", new, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert 'optim: "adamw_torch_fused" -> "galore_adamw"' in done.stdout
    same = run_dlm_gen("diff", "HEAD:lora.dlm", "lora.dlm", cwd=tmp_path)
    assert same.returncode == 0, same.stdout + same.stderr


def test_an_unreadable_side_exits_2_with_a_located_message(tmp_path):
    (tmp_path / "junk.py").write_text("print('hello')\n")
    done = run_dlm_gen("diff", tmp_path / "junk.py", tmp_path / "junk.py")
    assert done.returncode == 2 and "not a script rendered by dlm-gen" in done.stderr
    done = run_dlm_gen("diff", "NOPE:missing.dlm", tmp_path / "junk.py", cwd=tmp_path)
    assert done.returncode == 2 and "cannot read it from git" in done.stderr
    assert "Traceback" not in done.stderr


def test_revision_paths_without_git_say_so(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    done = run_dlm_gen("diff", "HEAD:a.dlm", "HEAD:b.dlm", env={"PATH": str(empty)}, cwd=tmp_path)
    assert done.returncode == 2 and "cannot run git" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_runtime_change_is_one_line_beside_the_plan_changes(tmp_path, older_dlm_gen):
    """Scripts of two dlm-gen releases whose runtimes differ: the runtime is one line
    (versions and digests), never its code; the plan change is reported as always."""
    lora, _ = two_documents(tmp_path)
    wider = tmp_path / "wider.dlm"
    wider.write_text(lora.read_text().replace("lora_r: 8", "lora_r: 16"))
    done = run_dlm_gen(
        "render", lora, "--out", tmp_path / "a", extra_path=older_dlm_gen, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    old = done.stdout.strip()
    new = render(wider, tmp_path / "b")
    done = run_dlm_gen("diff", old, new)
    assert done.returncode == 1, done.stderr
    [line] = [text for text in done.stdout.splitlines() if text.startswith("runtime:")]
    assert (
        line.startswith("runtime: dlm-gen 0.0.9 (sha256 ") and "-> dlm-gen 0.1.0 (sha256 " in line
    )
    assert "lora_r: 8 -> 16" in done.stdout
    assert "def " not in done.stdout and ".3f" not in done.stdout
    data = json.loads(run_dlm_gen("diff", old, new, "--json").stdout)
    assert data["runtime"]["changed"] is True
    assert data["runtime"]["old"]["dlm_gen"] == "0.0.9"
    # The same release on both sides: no runtime line.
    same = run_dlm_gen("diff", render(lora, tmp_path / "c"), new)
    assert "runtime:" not in same.stdout

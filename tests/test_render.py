"""`dlm-gen render`: reproducible bytes, a hash that moves with its inputs, clean code."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dlm_gen import render as render_module
from dlm_gen.pipeline import read_document
from dlm_gen.plan import make_plans
from dlm_gen.resources import data_dir
from dlm_gen.rules import load_rules
from tests.conftest import EXAMPLES, ROOT, dlm_text, write_dlm

GALORE = EXAMPLES / "galore-smollm2.dlm"


def rendered_text(path, target="cpu", rules_dir=None):
    rules = load_rules(rules_dir)
    document = read_document(path)
    return render_module.render_plans(document, make_plans(document, rules, target), rules)


def render_cli(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "dlm_gen", "render", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def test_render_writes_the_script_and_prints_its_path(tmp_path, cli):
    code, out, err = cli("render", GALORE, "--target", "cpu", "--out", tmp_path / "gen")
    assert code == 0, err
    [script] = (tmp_path / "gen").glob("train_*.py")
    assert out.strip() == str(script)
    assert script.stat().st_mode & 0o111  # executable
    assert not list((tmp_path / "gen").glob(".train_*"))  # no temp file left behind


def test_render_takes_many_documents_and_reports_each_failure_in_place(tmp_path, cli):
    names = []
    for index in range(3):
        path = write_dlm(
            tmp_path,
            {"base_model": "smollm2-135m", "training": {"lora_r": 4 + index}},
            name=f"doc{index}.dlm",
        )
        names.append(path)
    broken = write_dlm(tmp_path, {"base_model": "no-such-model"}, name="broken.dlm")
    out = tmp_path / "gen"
    code, stdout, err = cli("render", names[0], broken, *names[1:], "--target", "cpu", "--out", out)
    assert code == 1
    assert "broken.dlm:2: base_model: unknown base model 'no-such-model'" in err
    scripts = sorted(out.glob("train_*.py"))
    assert len(scripts) == 3 and sorted(stdout.split()) == [str(s) for s in scripts]
    # The same three, one at a time, give the same bytes.
    for name in names:
        cli("render", name, "--target", "cpu", "--out", tmp_path / "one")
    assert sorted(p.read_bytes() for p in (tmp_path / "one").glob("train_*.py")) == sorted(
        p.read_bytes() for p in scripts
    )


def test_rendering_again_replaces_each_documents_older_script_only(tmp_path, cli):
    first = write_dlm(tmp_path, {"base_model": "smollm2-135m"}, name="first.dlm")
    second = write_dlm(tmp_path, {"base_model": "smollm2-135m"}, "Other prose.\n", name="two.dlm")
    out = tmp_path / "gen"
    assert cli("render", first, second, "--target", "cpu", "--out", out)[0] == 0
    before = {p.name for p in out.glob("train_*.py")}
    changed = write_dlm(
        tmp_path, {"base_model": "smollm2-135m", "training": {"lora_r": 4}}, name="first.dlm"
    )
    code, _, err = cli("render", changed, second, "--target", "cpu", "--out", out)
    after = {p.name for p in out.glob("train_*.py")}
    assert code == 0 and len(after) == 2 and len(before & after) == 1  # second's stays
    assert "an older render of ../first.dlm" in err


def test_same_inputs_give_byte_identical_files(tmp_path):
    """Different PYTHONHASHSEED, cwd, and a relative vs absolute document path."""
    shutil.copy(GALORE, tmp_path / "doc.dlm")
    (tmp_path / "elsewhere").mkdir()
    first = render_cli(
        "doc.dlm", "--out", tmp_path / "a", cwd=tmp_path, env={"PYTHONHASHSEED": "1"}
    )
    second = render_cli(
        tmp_path / "doc.dlm",
        "--out",
        tmp_path / "b",
        cwd=tmp_path / "elsewhere",
        env={"PYTHONHASHSEED": "2"},
    )
    assert first.returncode == 0 and second.returncode == 0, (first.stderr, second.stderr)
    [a] = (tmp_path / "a").glob("train_*.py")
    [b] = (tmp_path / "b").glob("train_*.py")
    assert a.name == b.name and a.read_bytes() == b.read_bytes()


def test_hash_moves_with_each_input_and_only_then(tmp_path):
    base = {"base_model": "smollm2-135m", "training": {"optimizer": "galore_adamw"}}
    original = rendered_text(write_dlm(tmp_path, base))
    assert rendered_text(write_dlm(tmp_path, base)).script_hash == original.script_hash
    changed_plan = {**base, "training": {"optimizer": "adamw_torch"}}
    assert rendered_text(write_dlm(tmp_path, changed_plan)).script_hash != original.script_hash
    changed_rows = rendered_text(write_dlm(tmp_path, base, body="Other prose.\n"))
    assert changed_rows.script_hash != original.script_hash
    other_target = rendered_text(write_dlm(tmp_path, base), target="h100")
    assert other_target.script_hash != original.script_hash
    # A comment-only edit of a rule table still changes the rules version, so the hash.
    rules_copy = tmp_path / "rules"
    shutil.copytree(data_dir("rules"), rules_copy)
    with (rules_copy / "corpus.yaml").open("a") as handle:
        handle.write("# a reviewed comment\n")
    edited = rendered_text(write_dlm(tmp_path, base), rules_dir=rules_copy)
    assert edited.script_hash != original.script_hash
    assert original.name == f"train_{original.script_hash}.py"
    assert f"# Hash:         {original.script_hash}" in original.text


def test_template_change_changes_the_hash(tmp_path, monkeypatch):
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m"})
    before = rendered_text(path)
    templates = tmp_path / "templates"
    shutil.copytree(data_dir("templates"), templates)
    with (templates / render_module.TEMPLATE).open("a") as handle:
        handle.write("# changed\n")
    real_data_dir = render_module.data_dir
    monkeypatch.setattr(
        render_module,
        "data_dir",
        lambda name: templates if name == "templates" else real_data_dir(name),
    )
    assert rendered_text(path).script_hash != before.script_hash


@pytest.mark.parametrize(
    ("example", "target"),
    [
        ("galore-smollm2.dlm", "cpu"),
        ("galore-smollm2.dlm", "a100-80gb"),
        ("multi-adapter.dlm", "a10g"),
        ("qlora-t4.dlm", "t4"),
    ],
)
def test_rendered_script_passes_ruff_check_and_format(tmp_path, example, target):
    script = render_module.write_atomically(tmp_path, rendered_text(EXAMPLES / example, target))
    ruff = [sys.executable, "-m", "ruff"]
    config = ["--config", str(ROOT / "pyproject.toml"), "--no-cache"]  # the project's rules
    check = subprocess.run([*ruff, "check", *config, str(script)], capture_output=True)
    assert check.returncode == 0, check.stdout.decode()
    fmt = subprocess.run([*ruff, "format", *config, "--check", str(script)], capture_output=True)
    assert fmt.returncode == 0, fmt.stdout.decode()
    ast.parse(script.read_text())


def test_refused_plan_renders_nothing(tmp_path, cli):
    path = write_dlm(
        tmp_path,
        {"base_model": "smollm2-135m", "training": {"optimizer": "galore_adamw_8bit"}},
    )
    code, _, err = cli("render", path, "--target", "cpu", "--out", tmp_path / "gen")
    assert code == 1 and "optim-needs-cuda" in err
    assert not (tmp_path / "gen").exists()


def test_interrupted_write_leaves_no_partial_script(tmp_path, monkeypatch):
    rendered = rendered_text(GALORE)

    def crash(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(render_module.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        render_module.write_atomically(tmp_path, rendered)
    assert list(tmp_path.iterdir()) == []


def test_prose_with_typographic_characters_passes_the_project_ruff_config(tmp_path):
    body = "It\u2019s a \u201cquote\u201d \u2013 \u0430 caf\u00e9.\n\n::instruction::\n"
    body += "### Q\nWhy\u2009not?\n### A\nBecause \u2014 reasons.\n"
    document = tmp_path / "prose.dlm"
    document.write_text(dlm_text({"base_model": "smollm2-135m"}, body), encoding="utf-8")
    code, out, err = cli_render(document, tmp_path / "out")
    assert code == 0, err
    ruff = [sys.executable, "-m", "ruff"]
    config = ["--config", str(ROOT / "pyproject.toml"), "--no-cache"]
    check = subprocess.run([*ruff, "check", *config, out], capture_output=True)
    assert check.returncode == 0, check.stdout.decode()
    assert "\u2019s a" in Path(out).read_text(encoding="utf-8")  # kept readable


def cli_render(document, out):
    done = subprocess.run(
        [sys.executable, "-m", "dlm_gen", "render", str(document), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return done.returncode, done.stdout.strip(), done.stderr


def test_header_tells_a_reviewer_what_they_need(tmp_path):
    text = rendered_text(EXAMPLES / "multi-adapter.dlm", "a10g").text
    header = text.split('"""')[0]
    assert "from ../examples/multi-adapter.dlm. Do not edit:" in header
    assert "# Target:         a10g (NVIDIA A10G)" in header
    assert "# Reason [facts]: precision=bf16" in header
    assert "# Warning [tone]: few-preference-pairs(1)" in header
    assert "preference=dpo" in header  # tone's triple trains in a DPO phase
    assert "# Requires:       accelerate>=1.0, peft>=0.9," in header
    assert "# Launch:         python train_" in header
    assert all(len(line) <= 100 for line in header.splitlines())
    assert "#                 triples: 1 train, none held out" in header  # counted per adapter
    imported = {
        alias.name.split(".")[0] if isinstance(node, ast.Import) else (node.module or "")
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert not any(name.startswith("dlm_gen") for name in imported)  # runs without dlm-gen


def test_generated_script_directory_is_ignored_in_this_repo():
    assert (ROOT / "generated" / ".gitignore").read_text().splitlines()[1] == "*"


def test_unwritable_output_directory_is_a_clear_error(tmp_path, cli):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = cli("render", GALORE, "--out", blocker / "generated")
    assert code == 1 and err.startswith("error: ") and "Traceback" not in err


def test_the_launch_line_lists_every_flag_the_script_takes(tmp_path):
    """render.LAUNCH_FLAGS is written by hand: a flag added to the template must join it."""
    import ast

    from tests.conftest import rendered_script, write_dlm

    text = rendered_script(write_dlm(tmp_path, {"base_model": "smollm2-135m"}))
    flags = {
        node.args[0].value
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", None) == "add_argument"
        and isinstance(node.args[0], ast.Constant)
    }
    assert len(flags) >= 8
    header = text.split('"""', 1)[0]
    launch = header[header.index("# Launch:") :].split("# Hash:")[0]
    assert {flag for flag in flags if flag not in launch} == set()

"""A plain (non-editable) `pip install .` in a fresh venv ships the tables, schemas, templates."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from tests.conftest import EXAMPLES, ROOT


@pytest.mark.slow
def test_fresh_venv_install_explains_from_anywhere(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, str(ROOT)], check=True, timeout=600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    document = elsewhere / "doc.dlm"
    document.write_text((EXAMPLES / "galore-smollm2.dlm").read_text())
    result = subprocess.run(
        [str(venv / "bin" / "dlm-gen"), "explain", "doc.dlm", "--target", "a100-80gb"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DLM_GEN_CACHE_DIR": "off"},
    )
    assert result.returncode == 0, result.stderr
    assert "warn=galore-small-base(135M<1B)" in result.stdout
    schema = subprocess.run(
        [str(venv / "bin" / "dlm-gen"), "schema"], cwd=elsewhere, capture_output=True, text=True
    )
    assert schema.returncode == 0 and '"base_model"' in schema.stdout
    # The data came from the installed package, not from this checkout.
    located = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "from dlm_gen.resources import data_dir; print(data_dir('rules'))",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )
    assert str(venv) in located.stdout and "_data" in located.stdout
    heavy = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True
    )
    assert heavy.returncode != 0  # the core install pulls in no training stack


@pytest.mark.slow
def test_wheel_contains_rules_schemas_and_templates(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("dlm_gen-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for table in sorted((ROOT / "rules").glob("*.yaml")):
        assert f"dlm_gen/_data/rules/{table.name}" in names
    assert "dlm_gen/_data/schema/rules.schema.json" in names
    assert "dlm_gen/_data/schema/dlm-frontmatter.schema.json" in names
    for template in sorted((ROOT / "templates").iterdir()):
        assert f"dlm_gen/_data/templates/{template.name}" in names

"""Documents written for the `dlm` tool: the parts of its format dlm-gen keeps or answers."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_dlm_gen, write_dlm

EXPORT = {"default_quant": "Q5_K_M", "default_temperature": 0.2, "default_top_p": None}


def test_the_export_block_is_validated_and_kept(tmp_path):
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m", "export": EXPORT})
    done = run_dlm_gen("explain", path, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["export"] == EXPORT
    plain = write_dlm(tmp_path, {"base_model": "smollm2-135m"}, name="plain.dlm")
    # It changes no training decision.
    assert json.loads(run_dlm_gen("explain", plain, "--json").stdout)["plan"] == data["plan"]
    out = tmp_path / "out"
    script = run_dlm_gen("render", path, "--out", out).stdout.strip()
    assert '"default_quant": "Q5_K_M"' in Path(script).read_text(encoding="utf-8")


def test_a_bad_export_value_is_a_located_error(tmp_path):
    for export, expected in (
        ({"default_quant": "Q3"}, "export.default_quant: expected 'Q4_K_M', 'Q5_K_M'"),
        ({"default_temperature": 3}, "export.default_temperature"),
        ({"quant": "Q8_0"}, "unknown key 'quant'"),
    ):
        path = write_dlm(tmp_path, {"base_model": "smollm2-135m", "export": export})
        done = run_dlm_gen("explain", path)
        assert done.returncode == 1 and expected in done.stderr, done.stderr
        assert "doc.dlm:" in done.stderr and "Traceback" not in done.stderr


def test_format_versions_up_to_the_dlm_tools_current_are_read(tmp_path):
    for version in (1, 2, 15):
        path = write_dlm(tmp_path, {"dlm_version": version, "base_model": "smollm2-135m"})
        assert run_dlm_gen("explain", path).returncode == 0
    path = write_dlm(tmp_path, {"dlm_version": 16, "base_model": "smollm2-135m"})
    done = run_dlm_gen("explain", path)
    assert done.returncode == 1
    assert "doc.dlm:2: dlm_version: 16 is newer than the format versions" in (done.stderr)
    assert "(1..15)" in done.stderr

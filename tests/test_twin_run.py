"""The seed's twin-run fixture: LoRA and DoRA twins of one document, trained, compared."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import write_dlm
from tests.test_train_e2e import BODY, FAST

pytestmark = pytest.mark.slow


def test_lora_and_dora_twins_train_and_compare(tmp_path, tiny_model):
    runs = {}
    for kind in ("lora", "dora"):
        twin = tmp_path / kind
        twin.mkdir()
        training = {**FAST, "adapter": kind, "lora_r": 4}
        document = write_dlm(twin, {"base_model": str(tiny_model), "training": training}, BODY)
        rendered = subprocess.run(
            [
                sys.executable,
                "-m",
                "dlm_gen",
                "render",
                str(document),
                "--target",
                "cpu",
                "--out",
                str(twin / "generated"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        script = rendered.stdout.strip()
        runs[kind] = twin / "run"
        trained = subprocess.run(
            [sys.executable, script, "--output-dir", str(runs[kind]), "--max-steps", "10"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert trained.returncode == 0, trained.stderr[-2000:]
    png = tmp_path / "twins.png"
    compared = subprocess.run(
        [
            sys.executable,
            "-m",
            "dlm_gen",
            "compare",
            str(runs["lora"]),
            str(runs["dora"]),
            "--plot",
            str(png),
        ],
        capture_output=True,
        text=True,
    )
    assert compared.returncode == 0, compared.stderr
    out = compared.stdout
    for figure in (
        "adapter kind",
        "rank",
        "trainable parameters",
        "final train loss",
        "eval loss",
        "delta_kl",
        "mean step time",
        "peak memory",
        "wall time",
    ):
        assert figure in out
    assert out.splitlines()[2].split()[-3:-1] == ["lora", "dora"]
    verdict = next(line for line in out.splitlines() if line.startswith("verdict: "))
    assert "compare-keep-lora-unless-dora-wins" in verdict
    # 4 rows: every row trains and the eval loss is measured on them, so no verdict
    # (tests/test_real_model.py has the conclusive twins, on 6 held-out rows).
    a = json.loads((runs["lora"] / "run.json").read_text())["adapters"][0]
    b = json.loads((runs["dora"] / "run.json").read_text())["adapters"][0]
    assert a["rows"]["eval_on"] == b["rows"]["eval_on"] == "training rows"
    assert verdict.startswith("verdict: inconclusive: lora's eval loss is measured on its train")
    assert b["trainable_parameters"] > a["trainable_parameters"]  # the magnitude vectors
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000

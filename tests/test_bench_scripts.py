"""The benchmark scripts run (the GPU check in its CPU smoke mode): no dead code in bench/."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def run_bench(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run bench/SCRIPT; it must exit 0 (its stderr tail is the failure message)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_gpu_check_smoke_runs_on_the_cpu():
    result = run_bench("gpu_check.py", "--smoke")
    lines = result.stdout.splitlines()
    assert any(line.startswith("lora ") for line in lines)
    assert any(line.startswith("galore (full)") for line in lines)
    assert "DoRA/LoRA step time ratio:" in result.stdout
    assert "packed/unpacked effective tokens/s:" in result.stdout
    # Two CPU processes, and the plan itself chose FSDP (a replica does not fit the profile).
    [fsdp] = [line for line in lines if line.startswith("FSDP LoRA, 2 processes")]
    assert "fsdp2)" in fsdp and "world size 2" in fsdp and fsdp.endswith("one adapter: True")


# A small document, and the compare and diff parts at a few MB (the caps are the
# benchmark's business; here the parts must run and print their lines).
SMALL_DOCUMENT = ("--rows", "300", "--bytes", "300000")
SMALL_PARTS = ("--run-json-bytes", "2000000", "--script-bytes", "2000000")


def test_limits_check_runs_on_a_small_document():
    result = run_bench("limits_check.py", *SMALL_DOCUMENT, *SMALL_PARTS)
    assert "document: 300 rows" in result.stdout
    assert "--help:   median" in result.stdout


def test_explain_speed_runs():
    result = run_bench("explain_speed.py", "--runs", "1")
    assert "ratio explain / import" in result.stdout
    assert "2400-row table" in result.stdout


def test_preference_overhead_runs_and_starts_at_ln2():
    result = run_bench("preference_overhead.py", "--runs", "1", "--steps", "3")
    assert "DPO step: generated" in result.stdout and "ratio" in result.stdout
    assert "step-1 loss of the generated phase: 0.6931" in result.stdout


def test_render_many_renders_every_document_in_one_process():
    result = run_bench("render_many.py", "--documents", "30", "--separate", "2")
    assert "30 documents, 30 scripts written" in result.stdout
    assert "ratio one-process / separate" in result.stdout


def test_packing_throughput_runs_and_packing_cuts_padding():
    result = run_bench("packing_throughput.py", "--runs", "1", "--steps", "2")
    assert "packed / unpacked:" in result.stdout and "packed / TRL packing=True:" in result.stdout
    [line] = [line for line in result.stdout.splitlines() if line.startswith("padding fraction")]
    unpacked, packed = (float(x.rstrip(",")) for x in line.split()[3::2])
    assert packed < unpacked  # the mixed-length corpus pads less once packed


def test_train_phases_prints_where_the_time_goes():
    result = run_bench("train_phases.py", "--runs", "1")
    for phase in ("whole process", "to the first step", "training loop", "after the last"):
        assert phase in result.stdout

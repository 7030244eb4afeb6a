"""Input written to break dlm-gen: every case exits 1 with file, line and field, no traceback.

Each test reproduces a defect found by trying dlm-gen as a hostile user would
(the trust issue): devices and FIFOs as documents, unclosed code blocks, CR
line endings, non-finite and enormous numbers, self-referencing aliases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, dlm_text, write_dlm


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """dlm-gen in a subprocess: a hang or a traceback cannot hide in-process."""
    return subprocess.run(
        [sys.executable, "-m", "dlm_gen", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def assert_clean_failure(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, f"{fragment!r} not in {done.stderr!r}"


def test_a_symlink_to_dev_zero_is_refused_without_reading_it(tmp_path):
    link = tmp_path / "z.dlm"
    link.symlink_to("/dev/zero")
    done = run_cli("check", link, "--out", tmp_path, timeout=20)
    assert_clean_failure(done, f"{link}: not a regular file")


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "f.dlm"
    os.mkfifo(fifo)
    done = run_cli("explain", fifo, timeout=20)  # a blocking open() would time out here
    assert_clean_failure(done, f"{fifo}: not a regular file")


def test_an_unclosed_code_block_is_reported_at_its_opening_line(tmp_path, cli):
    body = (
        "::instruction::\n### Q\nHow do I print?\n### A\n```python\nprint(1)\n"
        "### Q\nSecond?\n### A\nYes.\n::instruction#x::\n### Q\nThird?\n### A\nNo.\n"
    )
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m"}, body)
    code, _, err = cli("explain", path, "--target", "cpu")
    assert code == 1
    assert f"{path}:8: code block opened here with '```' is never closed" in err


def test_a_closed_code_block_keeps_headings_inside_it_as_text(tmp_path):
    from dlm_gen.document import load_document

    body = (
        "::instruction::\n### Q\nShow a heading\n### A\n~~~markdown\n### Q\n```\n~~~\n"
        "### Q\nSecond?\n### A\nYes.\n"
    )
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m"}, body)
    rows = load_document(path).rows
    assert len(rows) == 2
    assert rows[0].answer == "~~~markdown\n### Q\n```\n~~~"


def test_cr_only_line_endings_are_named(tmp_path, cli):
    path = tmp_path / "mac.dlm"
    path.write_bytes(b"---\rbase_model: smollm2-135m\r---\rhello\r")
    code, _, err = cli("explain", path)
    assert code == 1
    assert f"{path}:1: the lines end in a carriage return alone" in err


@pytest.mark.parametrize("value", [".inf", "-.inf", "1e309", ".nan"])
@pytest.mark.parametrize("command", ["explain", "render", "check"])
def test_non_finite_numbers_are_refused_by_every_command(tmp_path, value, command):
    path = tmp_path / "doc.dlm"
    path.write_text(f"---\nbase_model: smollm2-135m\ntraining:\n  learning_rate: {value}\n---\nx\n")
    out = ["--out", tmp_path / "out"] if command != "explain" else []
    done = run_cli(command, path, *out)
    assert_clean_failure(done, f"{path}:4: training.learning_rate: expected a finite number")
    assert not (tmp_path / "out").exists()


def test_explain_json_is_standard_json(tmp_path):
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m"})
    done = run_cli("explain", path, "--json")
    assert done.returncode == 0
    json.loads(done.stdout, parse_constant=lambda name: pytest.fail(f"non-standard {name}"))


def test_a_self_referencing_alias_is_refused_and_check_goes_on(tmp_path):
    bad = tmp_path / "bad.dlm"
    bad.write_text("---\nbase_model: smollm2-135m\nx: &a [*a]\n---\nx\n")
    good = write_dlm(tmp_path, {"base_model": "smollm2-135m"}, name="good.dlm")
    done = run_cli("check", bad, good, "--out", tmp_path / "out")
    assert_clean_failure(done, f"{bad}:3: x.0: YAML alias refers to a value that contains it")
    assert f"missing: {good}" in done.stderr  # the second document was checked too


def test_a_5000_digit_integer_is_refused(tmp_path, cli):
    path = tmp_path / "doc.dlm"
    path.write_text(f"---\nbase_model: smollm2-135m\ntraining:\n  seed: {'9' * 5000}\n---\nx\n")
    code, _, err = cli("explain", path)
    assert code == 1
    assert f"{path}:4: training.seed: number has far too many digits" in err


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_epochs", int("9" * 400)),
        ("lora_alpha", 10**9),
        ("micro_batch_size", 10**9),
        ("grad_accum", 10**9),
        ("learning_rate", 5.0),
    ],
)
def test_numbers_beyond_documented_bounds_are_refused(tmp_path, cli, field, value):
    path = tmp_path / "doc.dlm"
    path.write_text(dlm_text({"base_model": "smollm2-135m", "training": {field: value}}))
    code, _, err = cli("explain", path)
    assert code == 1
    assert f"training.{field}: expected " in err and "less than or equal to" in err


@pytest.mark.parametrize("processes", ["0", "99999999999999999999999", "70000"])
def test_absurd_process_counts_are_usage_errors(tmp_path, cli, processes):
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m"})
    code, _, err = cli("explain", path, "--processes", processes)
    assert code == 2
    assert "must be between 1 and 65536" in err

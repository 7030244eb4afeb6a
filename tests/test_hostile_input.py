"""Input written to break dlm-gen: every case exits 1 with file, line and field, no traceback.

Each test reproduces a defect found by trying dlm-gen as a hostile user would
(the trust issue): devices and FIFOs as documents, unclosed code blocks, CR
line endings, non-finite and enormous numbers, self-referencing aliases.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import dlm_text, run_dlm_gen, write_dlm


def run_cli(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    return run_dlm_gen(*args, timeout=timeout)


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
    from dlm_gen.pipeline import read_document

    body = (
        "::instruction::\n### Q\nShow a heading\n### A\n~~~markdown\n### Q\n```\n~~~\n"
        "### Q\nSecond?\n### A\nYes.\n"
    )
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m"}, body)
    rows = read_document(path).rows
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


def test_terminal_escapes_in_input_are_printed_escaped(tmp_path):
    base = tmp_path / "base.dlm"
    base.write_text('---\nbase_model: "nope\\e[2K\\r\\e[32mdlm-gen: 0 problems"\n---\nx\n')
    fence = tmp_path / "fence.dlm"
    fence.write_text("---\nbase_model: smollm2-135m\n---\nx\n::instr\x1b[2Kuction::\n")
    for path, shown in (
        (base, "nope\\x1b[2K\\r\\x1b[32mdlm-gen: 0 problems"),
        (fence, "::instr\\x1b[2Kuction::"),
    ):
        done = run_cli("explain", path)
        assert done.returncode == 1
        assert "\x1b" not in done.stderr and "\r" not in done.stderr
        assert shown in done.stderr


def test_compare_labels_are_printed_escaped(tmp_path):
    record = {"plan": {"adapter": "lora"}, "eval_loss": 1.0, "rows_sha256": "ab"}
    runs = []
    for name in ("a\x1b[31m", "b\u202e"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(json.dumps({"adapters": [record]}))
        runs.append(tmp_path / name)
    done = run_cli("compare", *runs)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\u202e" not in done.stdout
    assert "a\\x1b[31m" in done.stdout


@pytest.mark.parametrize(
    ("base", "problem"),
    [
        ("hf:../evil", "each part holds only"),
        ("hf:./x", "each part holds only"),
        ("hf:org/with space", "each part holds only"),
        ("hf:\u043e\u0440\u0433/name", "each part holds only"),
        ("hf:org/na--me", "'--' are not allowed"),
        ("hf:a/b/c", "exactly one org and one name"),
    ],
)
def test_hub_ids_follow_the_repository_id_grammar(tmp_path, cli, base, problem):
    path = write_dlm(tmp_path, {"base_model": base})
    code, _, err = cli("explain", path)
    assert code == 1 and "expected hf:org/name with a Hub repository id" in err and problem in err


def test_a_registry_key_wins_and_a_directory_must_be_written_as_a_path(tmp_path, cli):
    (tmp_path / "smollm2-135m").mkdir()  # a directory named like a registry key
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m"})
    code, out, _ = cli("explain", path, "--json")
    assert code == 0 and json.loads(out)["base_model"]["source"] == "registry"
    (tmp_path / "tiny").mkdir()
    path = write_dlm(tmp_path, {"base_model": "tiny"})
    code, _, err = cli("explain", path)
    assert code == 1 and "a local directory is written as a path: ./tiny" in err


@pytest.mark.parametrize(
    ("base", "training", "target"),
    [
        ("hf:meta-llama/Llama-3.1-405B", {"adapter": "full"}, "t4"),
        ("hf:meta-llama/Llama-3.1-70B-Instruct", {}, "8xh100"),
    ],
)
def test_an_unknown_size_says_the_fit_is_unchecked(tmp_path, cli, base, training, target):
    path = write_dlm(tmp_path, {"base_model": base, "training": training})
    code, out, _ = cli("explain", path, "--target", target)
    assert code == 0 and "warn=fit-unchecked(size-unknown)" in out
    code, out, _ = cli("render", path, "--target", target, "--out", tmp_path / "out")
    assert "# Warning:      fit-unchecked(size-unknown):" in Path(out.strip()).read_text()

"""Hypothesis fuzzing of every input surface: exit 0, 1 or 2, never a traceback.

Surfaces: frontmatter values, a local base's config.json and safetensors
header, run.json files for `compare`, and the rule tables themselves
(DLM_GEN_RULES). Each example runs the real CLI entry point in-process; an
exception escaping `main` is the traceback a user would see. A failure
(exit 1) must name the file that is wrong.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlm_gen.cli import main
from dlm_gen.resources import data_dir
from dlm_gen.rules import forget_loaded_rules
from tests.conftest import TINY_LLAMA_CONFIG

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
WORK = Path(tempfile.mkdtemp(prefix="dlm-gen-fuzz-"))


def run(*args: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def assert_clean(code: int, err: str, names: str) -> None:
    assert code in (0, 1, 2), (code, err)
    if code == 1:
        assert names in err, (names, err)
    assert "Traceback" not in err


def fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(dir=WORK))


# --- frontmatter values -----------------------------------------------------------------

YAML_SCALARS = st.sampled_from(
    [
        ".inf",
        "-.inf",
        ".nan",
        "1e309",
        "9" * 5000,
        "-0",
        "0x1F",
        "0o17",
        "true",
        "null",
        "~",
        "''",
        '"\\x1b[2K\\r"',
        "[]",
        "{}",
        "&a [*a]",
        "[&b [*b]]",
        "2e-4",
        "1_000",
        "!!binary aGk=",
        "2001-12-14",
        "!!python/object/apply:os.system ['true']",
        "{a: {b: {c: [1, [2, [3]]]}}}",
        "'\u202e\u200b\u3164'",
        "- 1\n  - 2",
        "[1, 2",
        "auto",
        "lora",
        "dora",
        "galore_adamw",
        "-1",
        "0",
        "1",
        "2",
        "8",
        "256",
        "65537",
    ]
)
# Mostly the hand-picked hostile scalars, some numbers of any size.
SCALAR_TEXT = st.one_of(
    YAML_SCALARS,
    YAML_SCALARS,
    YAML_SCALARS,
    st.integers(-(10**40), 10**40).map(str),
    st.floats().map(repr),
)
TRAINING_KEYS = st.sampled_from(
    [
        "adapter",
        "use_dora",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "target_modules",
        "learning_rate",
        "sequence_len",
        "micro_batch_size",
        "grad_accum",
        "num_epochs",
        "optimizer",
        "lr_scheduler",
        "warmup_ratio",
        "precision",
        "attention",
        "seed",
        "galore_rank",
        "galore_scale",
        "galore_proj_type",
        "adapters",
        "unknown_key",
    ]
)


@FUZZ
@given(
    base=st.sampled_from(["smollm2-135m", "hf:org/name", "'\u202e'", "./nowhere", "qwen2.5-0.5b"])
    | SCALAR_TEXT,
    fields=st.lists(st.tuples(TRAINING_KEYS, SCALAR_TEXT), max_size=5),
    body=st.text(max_size=200)
    | st.sampled_from(["::instruction::\n### Q\nq\n### A\n```\n", "::bogus::\n", "\r\r"]),
)
def test_frontmatter_values(base, fields, body):
    directory = fresh_dir()
    training = "".join(f"\n  {key}: {value}" for key, value in fields)
    text = f"---\nbase_model: {base}\ntraining:{training or ' {}'}\n---\n{body}\n"
    document = directory / "doc.dlm"
    document.write_text(text, encoding="utf-8", errors="surrogatepass")
    for command in (["explain", "--target", "cpu"], ["render", "--out", directory / "out"]):
        code, _, err = run(command[0], document, *command[1:])
        assert_clean(code, err, str(document))


# --- a local base: config.json and safetensors headers -----------------------------------

CONFIG_VALUES = (
    st.integers(-(10**30), 10**30)
    | st.integers(-2, 5000)
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10)
    | st.lists(st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)
CONFIG_KEYS = st.sampled_from([*TINY_LLAMA_CONFIG, "head_dim", "model_type", "architectures"])


def local_base_document(directory: Path) -> Path:
    document = directory / "doc.dlm"
    document.write_text("---\nbase_model: ./model\n---\nSome prose.\n")
    (directory / "model").mkdir()
    return document


@FUZZ
@given(
    changes=st.dictionaries(CONFIG_KEYS, CONFIG_VALUES, max_size=4),
    raw=st.none()
    | st.binary(max_size=40)
    | st.sampled_from([b"[" * 200_000, b"{}", b"[]", b'{"hidden_size": 1' + b"0" * 5000 + b"}"]),
)
def test_config_json(changes, raw):
    directory = fresh_dir()
    document = local_base_document(directory)
    config = directory / "model" / "config.json"
    if raw is not None:
        config.write_bytes(raw)
    else:
        config.write_text(json.dumps({**TINY_LLAMA_CONFIG, **changes}))
    code, _, err = run("explain", document, "--target", "h100")
    assert_clean(code, err, str(document))
    if code == 1 and "config.json" in err:
        assert "./model/config.json" in err


@FUZZ
@given(
    header=st.binary(max_size=64)
    | st.builds(
        lambda body: struct.pack("<Q", len(body)) + body,
        st.sampled_from(
            [
                b"[]",
                b"{}",
                b'{"a": 1}',
                b'{"a": {"shape": [-1]}}',
                b'{"a": {"shape": "x"}}',
                b'{"a": {"shape": [99999999999]}}',
                b"not json",
                b'{"a": {"shape": [2, 3]}}',
            ]
        ),
    )
)
def test_safetensors_header_of_an_unknown_family(header):
    directory = fresh_dir()
    document = local_base_document(directory)
    (directory / "model" / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    (directory / "model" / "model.safetensors").write_bytes(header)
    code, _, err = run("explain", document, "--target", "h100")
    assert_clean(code, err, str(document))
    if code == 1:
        assert "model.safetensors" in err


# --- run.json for compare ------------------------------------------------------------------

VALID_RECORD = {
    "name": None,
    "plan": {"adapter": "lora", "peft": True},
    "settings": {"lora_r": 8},
    "trainable_parameters": 1000,
    "steps": 10,
    "final_train_loss": 1.5,
    "eval_loss": 1.6,
    "delta_kl": 0.01,
    "delta_js": 0.001,
    "mean_step_seconds": 0.1,
    "peak_memory_bytes": 2**30,
    "wall_seconds": 3.0,
    "losses": [2.0, 1.5],
    "rows_sha256": "ab" * 32,
}
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**500), 10**500)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@FUZZ
@given(
    field=st.sampled_from([*VALID_RECORD, "adapters"]),
    value=JSON_VALUES,
    raw=st.none() | st.sampled_from([b"[" * 100_000, b"", b"\xff\xfe", b'{"adapters": 1}']),
)
def test_run_json_for_compare(field, value, raw):
    directory = fresh_dir()
    good = directory / "good.json"
    good.write_text(json.dumps({"adapters": [{**VALID_RECORD, "plan": {"adapter": "dora"}}]}))
    bad = directory / "bad.json"
    if raw is not None:
        bad.write_bytes(raw)
    elif field == "adapters":
        bad.write_text(json.dumps({"adapters": value}))
    else:
        bad.write_text(json.dumps({"adapters": [{**VALID_RECORD, field: value}]}))
    for order in ((bad, good), (good, bad)):
        code, _, err = run("compare", *order)
        assert_clean(code, err, str(bad))


# --- the rule tables -------------------------------------------------------------------

TABLES = sorted(p.name for p in data_dir("rules").glob("*.yaml"))


@FUZZ
@given(
    table=st.sampled_from(TABLES),
    line=st.integers(0, 200),
    replacement=SCALAR_TEXT | st.sampled_from(["\xff", "- {id: x}", "kind: rules"]),
    raw=st.none() | st.binary(max_size=30),
)
def test_rule_tables(table, line, replacement, raw):
    directory = fresh_dir()
    tables = directory / "rules"
    shutil.copytree(data_dir("rules"), tables)
    target = tables / table
    if raw is not None:
        target.write_bytes(raw)
    else:
        lines = target.read_text().splitlines()
        index = line % len(lines)
        head, colon, _ = lines[index].partition(":")
        lines[index] = f"{head}: {replacement}" if colon else replacement
        target.write_text("\n".join(lines) + "\n", errors="surrogatepass")
    document = directory / "doc.dlm"
    document.write_text("---\nbase_model: smollm2-135m\n---\nSome prose.\n")
    previous = os.environ.get("DLM_GEN_RULES")
    os.environ["DLM_GEN_RULES"] = str(tables)
    try:
        for command in (["explain", document, "--target", "h100"], ["targets"]):
            code, _, err = run(*command)
            assert code in (0, 1), err
            assert "Traceback" not in err
            if code == 1:
                assert "rules/" in err or str(document) in err, err
        from dlm_gen import limits
        from dlm_gen.rules import load_rules

        forget_loaded_rules()
        try:
            load_rules().models()
            limits.limits()
        except Exception as exc:  # only RulesError may come out
            assert type(exc).__name__ == "RulesError", exc
    finally:
        if previous is None:
            os.environ.pop("DLM_GEN_RULES")
        else:
            os.environ["DLM_GEN_RULES"] = previous
        forget_loaded_rules()

"""Hostile files beside a document: config.json, safetensors, run.json, rule tables, torch.

Each case is a reproduction from the trust issue that printed a traceback or
planned nonsense; each must now exit 1 naming the file and what was expected.
"""

from __future__ import annotations

import json
import shutil
import struct

import pytest

from dlm_gen.resources import data_dir
from tests.conftest import TINY_LLAMA_CONFIG, run_dlm_gen


def local_base(tmp_path, config: dict | str | bytes) -> tuple:
    (tmp_path / "model").mkdir()
    file = tmp_path / "model" / "config.json"
    if isinstance(config, bytes):
        file.write_bytes(config)
    elif isinstance(config, str):
        file.write_text(config)
    else:
        file.write_text(json.dumps(config))
    document = tmp_path / "doc.dlm"
    document.write_text("---\nbase_model: ./model\ntraining:\n  optimizer: galore_adamw\n---\nx\n")
    return document


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"num_attention_heads": 0}, "num_attention_heads: expected a whole number from 1"),
        ({"num_hidden_layers": -50}, "num_hidden_layers: expected a whole number from 1"),
        ({"head_dim": 0}, "head_dim: expected a whole number from 1"),
        ({"hidden_size": True}, "hidden_size: expected a whole number from 1"),
        ({"vocab_size": 2**40}, "vocab_size: expected a whole number from 1"),
        ({"model_type": ["llama"]}, "model_type: expected a string"),
    ],
)
def test_implausible_config_values_are_refused(tmp_path, cli, change, expected):
    document = local_base(tmp_path, {**TINY_LLAMA_CONFIG, **change})
    code, _, err = cli("explain", document, "--target", "h100")
    assert code == 1 and "Traceback" not in err
    assert f"{document}:2: base_model: ./model/config.json: {expected}" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[" * 200_000, "nested too deeply"),
        ('{"hidden_size": ' + "9" * 4000 + "}", "hidden_size: expected a whole number"),
        ('{"hidden_size": ' + "9" * 5000 + "}", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_broken_config_files_are_refused(tmp_path, cli, text, expected):
    document = local_base(tmp_path, text)
    code, _, err = cli("explain", document, "--target", "h100")
    assert code == 1 and "Traceback" not in err
    assert "./model/config.json" in err and expected in err


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"\x01\x02", "shorter than a safetensors header"),
        (struct.pack("<Q", 2) + b"[]", "header is not a JSON object"),
        (struct.pack("<Q", 20) + b'{"w": {"shape": -1}}', "expected a shape"),
    ],
)
def test_broken_safetensors_headers_name_the_safetensors_file(tmp_path, cli, header, expected):
    document = local_base(tmp_path, {"model_type": "mamba"})
    (tmp_path / "model" / "model.safetensors").write_bytes(header)
    code, _, err = cli("explain", document, "--target", "h100")
    assert code == 1 and "Traceback" not in err
    assert "./model/model.safetensors" in err and expected in err
    assert "config.json" not in err


def run_json(directory, **record) -> str:
    base = {
        "plan": {"adapter": "lora"},
        "settings": {"lora_r": 8},
        "trainable_parameters": 10,
        "steps": 20,
        "rows": {"train": 20, "held_out": 6, "eval_on": "held-out rows"},
        "final_train_loss": 1.0,
        "eval_loss": 1.0,
        "peak_memory_bytes": 1,
        "wall_seconds": 1.0,
        "losses": [1.0],
        "rows_sha256": "ab",
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "run.json").write_text(json.dumps({"adapters": [{**base, **record}]}))
    return str(directory)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"eval_loss": int("9" * 400)}, "adapters[0].eval_loss: expected a number from 0"),
        ({"eval_loss": -5}, "adapters[0].eval_loss: expected a number from 0"),
        ({"losses": {"x": 1}}, "adapters[0].losses: expected a list of losses"),
        ({"plan": {"adapter": "\x1b[31mlora"}}, "adapters[0].plan.adapter: expected"),
    ],
)
def test_implausible_run_json_is_refused(tmp_path, cli, record, expected):
    good = run_json(tmp_path / "good", plan={"adapter": "dora"})
    bad = run_json(tmp_path / "bad", **record)
    code, _, err = cli("compare", good, bad, "--plot", tmp_path / "p.png")
    assert code == 1 and "Traceback" not in err and "\x1b" not in err
    assert f"{bad}/run.json: {expected}" in err


def test_nan_and_deep_run_json_are_refused(tmp_path, cli):
    good = run_json(tmp_path / "good", plan={"adapter": "dora"})
    (tmp_path / "nan").mkdir()
    (tmp_path / "nan" / "run.json").write_text('{"adapters": [{"eval_loss": NaN}]}')
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "run.json").write_text("[" * 100_000)
    for bad, expected in (("nan", "NaN is not a number"), ("deep", "nested too deeply")):
        code, _, err = cli("compare", good, tmp_path / bad)
        assert code == 1 and expected in err and "Traceback" not in err


def test_a_zero_eval_loss_is_not_called_missing(tmp_path, cli):
    lora = run_json(tmp_path / "lora", eval_loss=0.0)
    dora = run_json(tmp_path / "dora", plan={"adapter": "dora"}, eval_loss=0.5)
    code, out, _ = cli("compare", lora, dora)
    assert code == 0
    assert "verdict: keep lora: its eval loss is 0" in out and "missing" not in out


@pytest.fixture
def tables(tmp_path, monkeypatch):
    copy = tmp_path / "rules"
    shutil.copytree(data_dir("rules"), copy)
    monkeypatch.setenv("DLM_GEN_RULES", str(copy))
    document = tmp_path / "doc.dlm"
    document.write_text("---\nbase_model: smollm2-135m\n---\nx\n")
    return copy, document


def edit(table, old: str, new: str) -> None:
    text = table.read_text()
    assert old in text
    table.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("vocabulary.yaml", "fields:", "fields: [", "rules/vocabulary.yaml:"),
        ("vocabulary.yaml", "adapter: [lora, qlora, dora, full]", "adapter: []", "fields/adapter"),
        (
            "lora.yaml",
            "set: {target_modules: all-linear}",
            "set: {target_modules: .inf}",
            "expected a finite number",
        ),
        ("targets.yaml", "memory_gb: 80", "memory_gb: .inf", "expected a finite number"),
    ],
)
def test_broken_rule_tables_are_located_errors(tables, file, old, new, expected):
    copy, document = tables
    edit(copy / file, old, new)
    done = run_dlm_gen("explain", document, "--target", "cpu")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"rules/{file}:" in done.stderr and expected in done.stderr


def test_a_non_utf8_table_is_a_located_error(tables):
    copy, document = tables
    (copy / "lora.yaml").write_bytes((copy / "lora.yaml").read_bytes() + b"\n# caf\xe9\n")
    done = run_dlm_gen("explain", document, "--target", "cpu")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "rules/lora.yaml:" in done.stderr and "not valid UTF-8" in done.stderr


def test_doctor_with_a_torch_that_raises_on_import(tmp_path):
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise RuntimeError('CUDA driver mismatch')\n")
    done = run_dlm_gen("doctor", extra_path=tmp_path / "fake")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "torch: installed but broken: RuntimeError: CUDA driver mismatch" in done.stderr

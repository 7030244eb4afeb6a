"""A local base folder is untrusted input: every file dlm-gen reads there is bounded.

`base_model: ./folder` makes dlm-gen read config.json, the safetensors headers
and the chat template (chat_template.jinja or tokenizer_config.json). Each case
here is a reproduction that hung, ate gigabytes or planned nonsense: a
template whose constant expression Jinja folds while compiling, a FIFO in
place of a file, a shape of 64 dimensions of 2**24, num_hidden_layers of
2**24. The cases that could hang run in a bounded child (tests/fuzzing.py).
"""

from __future__ import annotations

import json
import os
import struct
import tracemalloc
from pathlib import Path

import pytest

from dlm_gen import chat
from dlm_gen.memory import estimate
from dlm_gen.rules import load_rules
from tests.conftest import TINY_LLAMA_CONFIG
from tests.fuzzing import assert_safe_outcome, run_cli

# Every bounded child here: far above what a plan needs, far below a runaway.
TIMEOUT_S = 20
MEMORY_MB = 1024
CPU_BOUND_S = 1  # rules/limits.yaml chat_template_cpu_seconds


def base_folder(tmp_path: Path, config: dict | None = None, **files: bytes | str) -> Path:
    """tmp_path/doc.dlm naming ./model, a folder with this config.json and these files."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(TINY_LLAMA_CONFIG if config is None else config))
    for name, content in files.items():
        name = name.replace("__", ".")
        data = content.encode("utf-8") if isinstance(content, str) else content
        (model / name).write_bytes(data)
    document = tmp_path / "doc.dlm"
    document.write_text("---\nbase_model: ./model\n---\nSome prose.\n")
    return document


def safetensors(header: object, raw: bytes | None = None, data: bytes = b"") -> bytes:
    """A safetensors file: the 8-byte length, the JSON header, then `data`."""
    body = raw if raw is not None else json.dumps(header).encode("utf-8")
    return struct.pack("<Q", len(body)) + body + data


def explain_bounded(tmp_path: Path, document: Path, *extra: str):
    outcome = run_cli(
        ["explain", document, "--target", "h100", *extra],
        tmp_path,
        watch=tmp_path,
        timeout_s=TIMEOUT_S,
        memory_mb=MEMORY_MB,
    )
    assert_safe_outcome(outcome, names="./model/")
    return outcome


# --- chat templates: compile time and render time ------------------------------------------

HOSTILE_TEMPLATES = {
    # Jinja folds these constants while it compiles, before any render-time check.
    "center-1.5e9": '{{ "x"|center(1500000000) }}',
    "center-wordwrap": '{{ "x"|center(3000000)|wordwrap(4) }}',
    "format-center": '{{ "%s%s"|format("x"|center(100000000), "y") }}',
    # Render time: doubling a string, nested loops, recursion, nesting, a huge literal.
    "doubling": "{% set a = 'xx' %}" + "{% set a = a ~ a %}" * 40 + "{{ messages }}",
    "loop-nest": "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}",
    "macro-recursion": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "nested-parens": "{{ " + "(" * 50_000 + "1" + ")" * 50_000 + " }}",
    "huge-literal": "{{ '" + "x" * 900_000 + "' }}{{ messages }}",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_TEMPLATES))
def test_a_hostile_chat_template_is_stopped_at_its_bound_and_the_plan_goes_on(tmp_path, name):
    """Old: minutes and 1.5 GB for a folded constant (the render-time alarm never fired);
    now the template runs in a child under CPU and memory limits: unknown + a warning."""
    document = base_folder(tmp_path, chat_template__jinja=HOSTILE_TEMPLATES[name])
    outcome = explain_bounded(tmp_path, document, "--json")
    assert outcome.code == 0, outcome.describe()
    assert outcome.seconds < CPU_BOUND_S + 6, outcome.describe()
    explained = json.loads(outcome.stdout)
    assert explained["system_prompt"]["text"] is None
    (warning,) = [w for w in explained["warnings"] if w["id"] == "base-chat-template-unevaluated"]
    assert warning["message"].startswith("./model/chat_template.jinja: not evaluated: ")
    assert "unknown before the run" in warning["message"]


def test_a_hostile_template_in_tokenizer_config_is_named_with_its_field(tmp_path):
    config = {"chat_template": HOSTILE_TEMPLATES["center-wordwrap"]}
    document = base_folder(tmp_path, tokenizer_config__json=json.dumps(config))
    outcome = explain_bounded(tmp_path, document)
    assert outcome.code == 0 and outcome.stdout.startswith(b"reason: "), outcome.describe()
    assert b"warn=chat-template-unevaluated" in outcome.stdout, outcome.describe()
    verbose = explain_bounded(tmp_path, document, "--verbose").stdout.decode()
    assert "./model/tokenizer_config.json: chat_template: not evaluated: it used more than" in (
        verbose
    )


def test_a_real_template_costs_one_child_per_process_and_none_without_one(
    tmp_path, cli, monkeypatch
):
    """The common case stays fast: a template is evaluated once per process (cached by
    digest), and a folder without a template starts no child at all."""
    from tests.test_chat import SMOLLM2

    children = []
    run = chat.subprocess.run
    monkeypatch.setattr(chat.subprocess, "run", lambda *a, **k: children.append(a) or run(*a, **k))
    monkeypatch.setattr(chat, "_verdicts", {})
    document = base_folder(tmp_path, chat_template__jinja=SMOLLM2 + "{# this test #}")
    second = tmp_path / "second.dlm"
    second.write_text(document.read_text().replace("Some prose.", "Other prose."))
    code, out, err = cli("render", document, second, "--out", tmp_path / "out")
    assert code == 0 and not err, err
    assert len(children) == 1
    for script in out.split():
        assert "named SmolLM" in Path(script).read_text(encoding="utf-8").split('"""', 1)[0]
    (tmp_path / "model" / "chat_template.jinja").unlink()
    assert cli("explain", document, "--target", "h100")[0] == 0
    assert len(children) == 1


def test_the_wall_clock_bound_holds_when_the_cpu_bound_is_looser():
    verdict = chat.evaluate(HOSTILE_TEMPLATES["loop-nest"], chat.Bounds(30, 256, 1))
    assert verdict.prompt is None and verdict.problem == "it ran for more than 1 s"


def test_an_injected_prompt_reaches_the_script_as_one_escaped_comment(tmp_path, cli):
    """The default a template injects is text from the folder: the header quotes it
    through the literal serializer, and it appears nowhere else in the script."""
    injected = 'Hi\\"\\"\\"\\nimport os; os.system(\\"x\\")\\n\\x1b[31m\\u202e'
    template = (
        "{% for m in messages %}{% if loop.first and m['role'] != 'system' %}"
        '{{ "<|system|>' + injected + '<|e|>" }}{% endif %}'
        "{{ '<|' + m['role'] + '|>' + m['content'] + '<|e|>' }}{% endfor %}"
    )
    document = base_folder(tmp_path, chat_template__jinja=template)
    code, out, err = cli("render", document, "--out", tmp_path / "out")
    assert code == 0, err
    script = Path(out.strip()).read_text(encoding="utf-8")
    compile(script, "script", "exec")
    [line] = [line for line in script.splitlines() if "os.system" in line]
    assert line.startswith("# System turn:  ") and "\\x1b[31m\\u202e" in line


# --- special files in place of folder files ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "config", "code", "expected"),
    [
        ("model.safetensors", {"model_type": "mamba"}, 1, "./model/model.safetensors: not a"),
        ("tokenizer_config.json", None, 0, "model/tokenizer_config.json: not read: not a"),
        ("chat_template.jinja", None, 0, "model/chat_template.jinja: not read: not a"),
        ("config.json", None, 1, "./model/config.json: not a regular file"),
    ],
)
def test_a_fifo_in_place_of_a_folder_file_never_blocks(tmp_path, name, config, code, expected):
    """Old: a FIFO at model.safetensors (unknown model_type) blocked `explain` for ever."""
    document = base_folder(tmp_path, config)
    fifo = tmp_path / "model" / name
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    outcome = explain_bounded(tmp_path, document, "--verbose")
    assert outcome.code == code, outcome.describe()
    # exit 1: the located error; exit 0: the chat-template warning in the plan
    assert expected in (outcome.stderr if code else outcome.stdout).decode(), outcome.describe()


def test_a_fifo_at_the_hub_caches_refs_main_never_blocks(tmp_path):
    """hf:org/name reads its size from the local Hub cache: refs/main is read bounded."""
    repository = tmp_path / "hub" / "models--acme--tiny"
    snapshot = repository / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(TINY_LLAMA_CONFIG))
    (repository / "refs").mkdir()
    os.mkfifo(repository / "refs" / "main")
    document = tmp_path / "doc.dlm"
    document.write_text("---\nbase_model: hf:acme/tiny\n---\nSome prose.\n")
    outcome = run_cli(
        ["explain", document, "--target", "h100", "--json"],
        tmp_path,
        env={"HF_HUB_CACHE": str(tmp_path / "hub")},
        timeout_s=TIMEOUT_S,
        memory_mb=MEMORY_MB,
    )
    assert_safe_outcome(outcome)
    assert outcome.code == 0, outcome.describe()
    assert json.loads(outcome.stdout)["plan"]["adapter"] == "lora"


def test_a_directory_or_a_device_named_safetensors_is_refused(tmp_path, cli):
    document = base_folder(tmp_path, {"model_type": "mamba"})
    (tmp_path / "model" / "model.safetensors").mkdir()
    code, _, err = cli("explain", document, "--target", "h100")
    assert code == 1 and "./model/model.safetensors: is a directory" in err
    (tmp_path / "model" / "model.safetensors").rmdir()
    (tmp_path / "model" / "model.safetensors").symlink_to("/dev/zero")
    code, _, err = cli("explain", document, "--target", "h100")
    assert code == 1 and "./model/model.safetensors: not a regular file" in err


# --- safetensors headers -------------------------------------------------------------------


def one_tensor(shape: object) -> dict:
    return {"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            safetensors(one_tensor([2**24] * 64)),
            "tensor 'w': shape [16777216, 16777216, 16777216, 16777216, ...] (64 dimensions) "
            "holds more than 10T parameters, the limit (rules/limits.yaml "
            "max_base_billion_parameters)",
        ),
        (safetensors(one_tensor([4, -1])), "tensor 'w': expected a shape of sizes 0..2**24"),
        (safetensors(one_tensor([4, 1.5])), "tensor 'w': expected a shape of sizes"),
        (safetensors(one_tensor([True])), "tensor 'w': expected a shape of sizes"),
        (safetensors(one_tensor(["3"])), "tensor 'w': expected a shape of sizes"),
        (struct.pack("<Q", 2**63) + b"{}", "header of 9223372036854775808 bytes is implausible"),
        (
            struct.pack("<Q", 1000) + b'{"w": 1}',
            "header of 1000 bytes is longer than the file (16 bytes)",
        ),
        (
            safetensors(None, raw=b'{"w": {"shape": [1]}, "w": {"shape": [2]}}'),
            "header names 'w' twice",
        ),
        (safetensors(None, raw=b"[" * 100_000), "header is not a JSON object"),
        (safetensors(None, raw=b'{"a":' + b"[" * 100_000), "header is nested too deeply"),
        (safetensors(None, raw=b"\xff\xfe"), "header is not valid JSON"),
    ],
)
def test_hostile_safetensors_headers_are_refused_naming_the_file(tmp_path, cli, content, expected):
    """Old: [2**24]*64 planned a 2.4e462-parameter model (exit 0); a key twice counted once;
    a header length past the end of the file read as 'not valid JSON'."""
    document = base_folder(tmp_path, {"model_type": "mamba"}, model__safetensors=content)
    code, _, err = cli("explain", document, "--target", "h100")
    assert code == 1 and "Traceback" not in err, err
    assert f"{document}:2: base_model: ./model/model.safetensors: {expected}" in err, err


def test_the_totals_of_all_headers_are_bounded(tmp_path, cli):
    """Each shard plausible, the sum not: 10 tensors of 2**24 x 2**16 (1.1e13)."""
    tensors = {f"t{i}": {"shape": [2**24, 2**16]} for i in range(10)}
    shards = list(tensors.items())
    document = base_folder(
        tmp_path,
        {"model_type": "mamba"},
        **{
            "model-00001__safetensors": safetensors(dict(shards[:5])),
            "model-00002__safetensors": safetensors(dict(shards[5:])),
        },
    )
    code, _, err = cli("explain", document, "--target", "h100")
    assert code == 1
    assert "./model/model-00002.safetensors: the headers add up to more than 10T" in err, err
    # Half of it is a plausible (unknown-family) base: 5.5e12 parameters.
    (tmp_path / "model" / "model-00002.safetensors").unlink()
    assert cli("explain", document, "--target", "h100")[0] == 0


def test_tensor_count_and_header_bytes_are_capped_across_files(tmp_path, cli, caps):
    four = {f"t{i}": {"shape": [2]} for i in range(4)}
    document = base_folder(tmp_path, {"model_type": "mamba"}, model__safetensors=safetensors(four))
    caps("max_safetensors_tensors", 3)
    code, _, err = cli("explain", document, "--target", "h100")
    assert code == 1
    assert "model.safetensors: more than 3 tensors in the folder's headers" in err, err
    caps("max_safetensors_tensors", 4)
    assert cli("explain", document, "--target", "h100")[0] == 0

    size = len(json.dumps(four))
    (tmp_path / "model" / "second.safetensors").write_bytes(safetensors({"x": {"shape": [1]}}))
    caps("max_safetensors_tensors", 100)
    caps("max_safetensors_header_bytes", size + 10)
    code, _, err = cli("explain", document, "--target", "h100")
    assert code == 1 and "second.safetensors: header of 21 bytes is implausible" in err, err
    assert "may hold 10 more bytes (rules/limits.yaml max_safetensors_header_bytes)" in err


# --- config.json totals --------------------------------------------------------------------


def test_a_config_deeper_than_any_decoder_is_refused_at_its_field(tmp_path):
    """Old: num_hidden_layers 2**24 (within its per-field bound) hung with 2 GB and growing."""
    document = base_folder(tmp_path, {**TINY_LLAMA_CONFIG, "num_hidden_layers": 2**24})
    outcome = explain_bounded(tmp_path, document)
    assert outcome.code == 1, outcome.describe()
    assert (
        "./model/config.json: num_hidden_layers: 16777216 layers; the limit is 1024 "
        "(rules/limits.yaml max_base_layers)" in outcome.stderr.decode()
    )


def test_a_config_whose_shapes_make_an_implausible_model_is_refused(tmp_path, cli):
    wide = {**TINY_LLAMA_CONFIG, "hidden_size": 2**24, "intermediate_size": 2**24}
    document = base_folder(tmp_path, wide)
    code, _, err = cli("explain", document, "--target", "h100")
    assert code == 1 and "./model/config.json: its shapes (hidden_size 16777216" in err, err
    assert "parameters: more than 10T parameters, the limit" in err


def test_the_memory_estimate_is_closed_form_in_the_layer_count():
    """Old: one list entry (and one GaLore loop turn) per matrix per layer, so a config's
    layer count decided the memory and time a plan took."""
    table = load_rules().memory
    shape = {key: TINY_LLAMA_CONFIG[key] for key in ("hidden_size", "intermediate_size")}
    shape |= {"num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256}
    modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

    def trainable(layers: int, peft: bool) -> tuple[float, float]:
        facts = {
            "base.shape": {**shape, "num_hidden_layers": layers, "head_dim": None},
            "base.params": 10**9,
            "base.target_modules": modules,
            "plan.torch_dtype": "bfloat16",
            "plan.peft": peft,
            "plan.target_modules": "all-linear",
            "plan.galore_rank": 8,
            "optimizer.state_bytes": 8,
            "training.lora_r": 8,
            "training.sequence_len": 64,
            "target.memory_gb": 80,
            "plan.processes": 1,
        }
        tracemalloc.start()
        memory = estimate(facts, table)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 200_000, peak
        return memory["memory.trainable_params"], memory["memory.optimizer_gb"]

    one, many = trainable(1, True), trainable(100_000, True)
    assert many[0] == 100_000 * one[0]
    assert many[1] > one[1]
    trainable(100_000, False)  # full fine-tuning: the same bound on what it allocates

"""Fuzz target for the local base folder surface: `base_model: ./folder` a stranger filled.

Each example fills a folder: config.json (plausible, huge or broken values, or
raw bytes), model.safetensors (headers with hostile shapes, lengths, duplicate
keys, nesting), tokenizer_config.json and chat_template.jinja (templates that
attack Jinja's compile time and render time), any of them replaced by a FIFO, a
directory, a link to /dev/zero or a dangling link, under a name that may drive
a terminal. `explain` runs in a bounded child (tests/fuzzing.py, 1 GB of
address space): exit 0 or 1, no traceback, inside the time bound, nothing
written anywhere, nothing unescaped on the terminal, and an exit-1 message
names the document's base_model line and the folder file at fault (or the
rule that refuses the plan a plausible folder gives).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dlm_gen.basemodels import SHAPE_KEYS
from tests.conftest import TINY_LLAMA_CONFIG
from tests.fuzzing import assert_safe_outcome, run_cli

FUZZ = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
MEMORY_MB = 1024
TIMEOUT_S = 20
FILES = ("config.json", "model.safetensors", "tokenizer_config.json", "chat_template.jinja")
SPECIAL = ("fifo", "directory", "dev-zero", "dangling")

NASTY_CONFIG_VALUES = [2**24, 2**24 + 1, 2**31, 0, -1, 10**30, True, 1.5, "64", None, [64], {}]
CONFIG_KEYS = [*SHAPE_KEYS, "num_local_experts", "model_type"]
CONFIG_CHANGES = st.dictionaries(
    st.sampled_from(CONFIG_KEYS),
    st.sampled_from(NASTY_CONFIG_VALUES) | st.integers(1, 2**24) | st.just("mamba"),
    max_size=3,
)
TINY = json.dumps(TINY_LLAMA_CONFIG).encode()
UNKNOWN_FAMILY = b'{"model_type": "mamba"}'  # its size comes from the safetensors headers
# A family no table knows, its decoder's shapes in text_config (read for the estimate).
SHAPE_FIELDS = {key: TINY_LLAMA_CONFIG[key] for key in SHAPE_KEYS if key in TINY_LLAMA_CONFIG}
# Half plausible (so the safetensors headers and the templates are reached), half hostile.
CONFIGS = (
    st.sampled_from([TINY, UNKNOWN_FAMILY])
    | st.builds(
        lambda changes: json.dumps({**TINY_LLAMA_CONFIG, **changes}).encode(), CONFIG_CHANGES
    )
    | st.builds(
        lambda changes: json.dumps(
            {"model_type": "mystery_vl", "text_config": {**SHAPE_FIELDS, **changes}}
        ).encode(),
        CONFIG_CHANGES,
    )
    | st.sampled_from([b'{"model_type": "x", "text_config": [1]}', b'{"text_config": "x"}'])
    | st.sampled_from([b"[" * 100_000, b"{}", b"\xff", b'{"hidden_size": 1' + b"0" * 5000 + b"}"])
)

DIMS = st.sampled_from([2**24, 2**24 + 1, -1, 0, 1.5, True, "3", None]) | st.integers(0, 2**24)
SHAPES = st.lists(DIMS, max_size=6) | st.just([2**24] * 64)
HEADERS = st.dictionaries(
    st.text(alphabet="w.\x1b\u202e", min_size=1, max_size=4),
    st.fixed_dictionaries({"shape": SHAPES}) | st.sampled_from([1, "x", None, {}]),
    max_size=4,
)


def _with_length(body: bytes, how: str) -> bytes:
    length = {"true": len(body), "huge": 2**63, "past-end": len(body) + 1000, "zero": 0}[how]
    return struct.pack("<Q", length) + body


SAFETENSORS = st.builds(
    _with_length,
    st.builds(lambda header: json.dumps(header).encode(), HEADERS)
    | st.sampled_from(
        [
            b'{"w": {"shape": [1]}, "w": {"shape": [2]}}',
            b"[" * 100_000,
            b"\xff\xfe",
            b'{"__metadata__": {"a": "b"}}',
        ]
    ),
    st.sampled_from(["true", "true", "huge", "past-end", "zero"]),
) | st.binary(max_size=16)

NASTY_TEMPLATES = [
    '{{ "x"|center(1500000000) }}',
    '{{ "x"|center(3000000)|wordwrap(4) }}',
    "{{ range(10**9)|list }}",
    "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "{{ " + "(" * 30_000 + "1" + ")" * 30_000 + " }}",
    "{{ '" + "x" * 200_000 + "' }}{{ messages }}",
    "{% set a = 'xx' %}" + "{% set a = a ~ a %}" * 40,
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{% for m in messages %}\x1b[31m{{ m['content'] }}\u202e{% endfor %}",
    "{% if messages[0]['role'] != 'system' %}<s>\x1b]0;owned\x07</s>{% endif %}"
    "{% for m in messages %}<s>{{ m['content'] }}</s>{% endfor %}",
]
TOKENS = ["{{", "}}", "{%", "%}", "(", ")", "|", "center(9999999)", "messages", " for ", "~"]
TEMPLATES = st.sampled_from(NASTY_TEMPLATES) | st.lists(st.sampled_from(TOKENS), max_size=12).map(
    "".join
)
FOLDER_NAMES = st.sampled_from(["model", "mo\x1b[31mdel", "m\u202eodel", "m\nodel", "m odel"])


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("base-folder-fuzz")


def _special(path: Path, kind: str) -> None:
    """A file that is not a regular file, in place of a folder file."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.symlink_to(path.parent / "nowhere")


def _fill(folder: Path, config, safetensors, tokenizer, template, special) -> None:
    folder.mkdir()
    contents = {
        "config.json": config,
        "model.safetensors": safetensors,
        "tokenizer_config.json": (
            json.dumps({"chat_template": tokenizer}).encode() if tokenizer is not None else None
        ),
        "chat_template.jinja": template.encode("utf-8", "surrogatepass") if template else None,
    }
    for name, data in contents.items():
        if name in special:
            _special(folder / name, special[name])
        elif data is not None:
            (folder / name).write_bytes(data)


@FUZZ
@given(
    folder=FOLDER_NAMES,
    config=CONFIGS,
    safetensors=st.none() | SAFETENSORS,
    tokenizer=st.none() | TEMPLATES,
    template=st.none() | TEMPLATES,
    special=st.just({})
    | st.dictionaries(st.sampled_from(FILES), st.sampled_from(SPECIAL), max_size=1),
)
@example(
    folder="model",
    config=b'{"model_type": "mamba"}',
    safetensors=None,
    tokenizer=None,
    template=None,
    special={"model.safetensors": "fifo"},
)
@example(
    folder="mo\x1b[31mdel",
    config=json.dumps(TINY_LLAMA_CONFIG).encode(),
    safetensors=None,
    tokenizer=NASTY_TEMPLATES[1],
    template=NASTY_TEMPLATES[0],
    special={},
)
@example(
    folder="model",
    config=json.dumps({**TINY_LLAMA_CONFIG, "num_hidden_layers": 2**24}).encode(),
    safetensors=None,
    tokenizer=None,
    template=None,
    special={"tokenizer_config.json": "fifo"},
)
def test_explain_of_a_hostile_base_folder(
    root, folder, config, safetensors, tokenizer, template, special
):
    work = Path(tempfile.mkdtemp(dir=root))
    _fill(work / folder, config, safetensors, tokenizer, template, special)
    document = work / "doc.dlm"
    written = json.dumps("./" + folder)  # a YAML double-quoted scalar: escapes and all
    document.write_text(f"---\nbase_model: {written}\n---\nSome prose.\n", encoding="utf-8")
    outcome = run_cli(
        ["explain", document, "--target", "h100"],
        work,
        watch=work,
        timeout_s=TIMEOUT_S,
        memory_mb=MEMORY_MB,
    )
    assert_safe_outcome(outcome, codes=(0, 1), names="doc.dlm:2: base_model: ")
    if outcome.code == 1:  # a folder file at fault, or a plan the rules refuse
        named = any(name in outcome.text for name in FILES) or "refused (" in outcome.text
        assert named, outcome.describe()
    assert outcome.seconds < TIMEOUT_S / 2, outcome.describe()

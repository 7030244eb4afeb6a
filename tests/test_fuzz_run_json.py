"""Fuzz target: `dlm-gen compare` on hostile run.json files and flags (docs/security.md).

An attacker controls both run.json files (any bytes under max_run_json_bytes:
huge lists, NaN and infinities, deep nesting, wrong types, terminal escapes in
strings), the directory names that label them, and --threshold / --adapter.
Each child must exit 0, 1 or 2 in bounded time and memory, print no traceback
and no terminal control character, write nothing but the --plot file, and
print JSON that a strict parser reads (no NaN, no Infinity).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.fuzzing import assert_safe_outcome, run_cli
from tests.test_compare import run_record

# Fields compare reads (and some it does not), each a target for a hostile value.
FIELDS = (
    "plan",
    "name",
    "settings",
    "trainable_parameters",
    "steps",
    "packing",
    "tokens_trained",
    "padding_tokens",
    "final_train_loss",
    "eval_loss",
    "rows",
    "delta_kl",
    "delta_js",
    "median_step_seconds",
    "mean_step_seconds",
    "step_seconds",
    "peak_memory_bytes",
    "wall_seconds",
    "losses",
    "preference",
    "rows_sha256",
    "samples",
)
DEEP = 100_000
# Stand-ins replaced by raw JSON text after json.dumps (what no Python value dumps to).
RAW = {
    "@nan@": "NaN",
    "@inf@": "-Infinity",
    "@overflow@": "1e999",
    "@digits@": "9" * 5000,
    "@deep@": "[" * DEEP + "]" * DEEP,
    "@deep-objects@": '{"a":' * 5000 + "1" + "}" * 5000,
}
NASTY_VALUES = [
    *RAW,
    [0.5] * 2_000_000,  # the 2,000,000-item list, ~8 MB
    [1.0] * 300_000 + ["x"],
    [{}] * 200_000,  # more objects than max_run_json_containers
    "\x1b[2J\x1b]0;pwned\x07",
    "\u202eevil\u2066",
    "x" * 100_000,
    {"adapter": "\x1b[31mlora"},
    {"adapter": "dora", "lora_r": 10**40},
    {"on": [1]},
    {"train": True, "held_out": -1, "eval_on": "\r\n"},
    {"method": "dpo", "steps": 1.5, "eval_rows": 1, "losses": [], "reward_accuracy": {}},
    5e-324,
    -0.0,
    1e300,
    True,
    None,
    [],
]
NASTY_FILES = [
    b"",
    b"{",
    b"[]",
    b'{"adapters": []}',
    b"\xff\xfe{\x00}\x00",
    '{"adapters": [{"plan": {"adapter": "lora"}}]}'.encode("utf-16"),
    b"[" * DEEP,
    b'{"adapters": [' + b"{}," * 200_000 + b"{}]}",
    b"9" * 5000,
    b'{"adapters": NaN}',
]
NASTY_THRESHOLDS = ["nan", "inf", "-inf", "1e999", "-0.0", "0", "10", "10.0001", "0x10", "1_0"]
NASTY_LABELS = ["runs", "\x1b[2Jruns", "r\u202euns", "r\nuns", "-runs", " runs "]

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
argv_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)


@st.composite
def run_files(draw) -> bytes:
    """A run.json: a hostile file, or twin records with hostile values in some fields."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from(NASTY_FILES))
    record = run_record(draw(st.sampled_from(["lora", "dora", "qlora", "full"])), 4.5)
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        record[field] = draw(st.sampled_from(NASTY_VALUES) | json_value)
    text = json.dumps({"adapters": [record]})
    for stand_in, raw in RAW.items():
        text = text.replace(json.dumps(stand_in), raw)
    return text.encode()


def twin(kind: str, eval_loss: float, **extra: object) -> bytes:
    return json.dumps({"adapters": [run_record(kind, eval_loss, **extra)]}).encode()


def output_bounded(outcome) -> None:
    """A table is a few dozen lines: nothing of the input is ever printed whole."""
    assert len(outcome.stdout) + len(outcome.stderr) < 64 * 1024, outcome.describe()


@settings(max_examples=25, deadline=None)
# The cases, always run: a 2,000,000-item list printed whole (405 MB);
# `--threshold nan` accepted and printed as NaN in --json; an infinite ratio.
@example(
    twin("lora", 5.0),
    twin("dora", 4.5, tokens_trained=[0.5] * 2_000_000),
    "runs",
    None,
    None,
    "table",
)
@example(twin("lora", 5.0), twin("dora", 4.5), "runs", "nan", None, "--json")
@example(
    twin("lora", 5e-324, final_train_loss=1.0), twin("dora", 4.0), "runs", None, None, "--json"
)
@given(
    first=run_files(),
    second=run_files(),
    label=st.sampled_from(NASTY_LABELS),
    threshold=st.none() | st.sampled_from(NASTY_THRESHOLDS) | argv_text,
    adapter=st.none() | argv_text,
    output=st.sampled_from(["table", "--json", "--plot"]),
)
def test_compare_on_hostile_run_json(first, second, label, threshold, adapter, output):
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        sides = []
        for index, data in enumerate((first, second)):
            side = root / f"{label}{index}"
            side.mkdir()
            (side / "run.json").write_bytes(data)
            sides.append(side)
        out = root / "out"
        out.mkdir()  # --plot makes no directory: an exit 1 is then the run files' fault
        args = ["compare", *sides, "--force"]
        args += [] if threshold is None else [f"--threshold={threshold}"]
        args += [] if adapter is None else [f"--adapter={adapter}"]
        args += {"table": [], "--json": ["--json"], "--plot": ["--plot", out / "c.png"]}[output]
        outcome = run_cli(args, root, watch=root, timeout_s=30)
        assert_safe_outcome(outcome, allowed=[out], names="run.json")
        output_bounded(outcome)
        if outcome.code == 0 and output == "--json":

            def refuse(name: str) -> object:
                raise AssertionError(f"{name} in --json output")

            json.loads(outcome.stdout, parse_constant=refuse)

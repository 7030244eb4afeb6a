"""Fuzz target: rule tables, receipts, cache variables and --target/--nodes (docs/security.md).

An attacker controls what DLM_GEN_RULES points at (edited, truncated, binary,
missing or odd tables: a fifo, a directory, a link loop), the checked-rules
receipts in the cache (forged for a broken set, damaged, replaced by a
directory or a link), DLM_GEN_CACHE_DIR / XDG_CACHE_HOME (relative, a file,
missing) and the target strings. `dlm-gen explain` must exit 0, 1 or 2 in
bounded time and memory, print no traceback and no terminal control character,
and write only into the cache directory it was given (never the working one).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from dlm_gen import rulecache
from dlm_gen.resources import data_dir
from tests.conftest import dlm_text
from tests.fuzzing import assert_safe_outcome, run_cli

TABLES = sorted(p.name for p in data_dir("rules").glob("*.yaml"))
# What replaces one table: broken structure, hostile YAML, hostile bytes.
NASTY_TABLES = [
    "",
    "kind: rules\nid_prefix: corpus\nhit_policy: collect\nrules:\n  - warn: 5\n",
    "kind: rules\nrules: [{id: x, when: {a: 1}, set: {b: 1}, why: y}]\n",
    "kind: limits\nlimits: {max_rows: 0}\n",
    "kind: limits\nlimits: {max_rows: 1e999}\n",
    "kind: limits\nlimits: {max_rows: 010}\n",
    "kind: verdicts\nverdicts: [{id: v, threshold: .nan}]\n",
    "a: &a [*a, *a]\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n",
    "x: !!python/object/apply:os.system [touch pwned]\n",
    "kind: targets\ndefault: cpu\ntargets: {cpu: {gpu: null, gpu_count: 99999999999}}\n",
    "- " * 5000 + "x\n",
    "{" * 5000,
    "kind: rules\n\x1b[2J: 1\n",
    "kind: sets\nsets: {s: [yes, no, 0x10, 1_0, 190:20:30]}\n",
]
NASTY_TABLE_BYTES = [b"\xff\xfe\x00k", b"kind: rules\n" + b"#" * (5 * 2**20)]
# Odd things at a table's name, or as the whole rules directory.
SPECIAL_TABLES = ["fifo", "directory", "link-loop", "missing-limits"]
RULES_DIRS = ["shipped", "copy", "missing", "a-file", "empty"]
RECEIPTS = ["none", "forged", "garbage", "directory", "link", "fifo"]
CACHE_SETTINGS = ["dir", "off", "relative", "a-file", "xdg", "xdg-relative", "xdg-a-file"]
TARGETS = [
    "cpu",
    "99999999999999999999999x8xh100",
    "9" * 5000 + "xcpu",
    "4097xcpu",
    "2x(8xh100)",
    "2x((cpu))",
    "0xcpu",
    "x8xh100",
    "2x",
    "\x1b[2Jh100",
    "h100\u202e",
    "h" * 100_000,
]
NODES = [None, "2", "4097", "9" * 30, "0", "1_2", "\u0662"]


def build_rules(root: Path, kind: str, table: str, content: str | bytes | None) -> Path | None:
    """The DLM_GEN_RULES directory of this example (None: the shipped tables)."""
    rules = root / "rules"
    if kind == "shipped":
        return None
    if kind == "missing":
        return rules
    if kind == "a-file":
        rules.write_text("kind: rules\n")
        return rules
    rules.mkdir()
    if kind == "empty":
        return rules
    for name in TABLES:
        shutil.copyfile(data_dir("rules") / name, rules / name)
    target = rules / table
    target.unlink()
    if content == "fifo":
        os.mkfifo(target)
    elif content == "directory":
        target.mkdir()
    elif content == "link-loop":
        target.symlink_to(target.name)
    elif content == "missing-limits":
        (rules / "limits.yaml").unlink(missing_ok=True)
        shutil.copyfile(data_dir("rules") / table, target)
    elif isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    return rules


def cache_env(root: Path, setting: str) -> tuple[dict[str, str], Path]:
    """The cache variables of this example, and where the cache may be written."""
    cache = root / "cache"
    env = {"HOME": str(root / "home"), "XDG_CACHE_HOME": "", "DLM_GEN_CACHE_DIR": ""}
    if setting == "dir":
        env["DLM_GEN_CACHE_DIR"] = str(cache)
    elif setting == "off":
        env["DLM_GEN_CACHE_DIR"] = "off"
    elif setting == "relative":  # our own variable: relative to the working directory
        env["DLM_GEN_CACHE_DIR"] = "cache"
        cache = root / "cwd" / "cache"
    elif setting == "a-file":
        cache.write_text("not a directory")
        env["DLM_GEN_CACHE_DIR"] = str(cache)
    else:
        del env["DLM_GEN_CACHE_DIR"]
        env["XDG_CACHE_HOME"] = {
            "xdg": str(root / "xdg"),
            "xdg-relative": "cache",  # ignored (the XDG spec): ~/.cache, never ./cache
            "xdg-a-file": str(root / "xdg-file"),
        }[setting]
        (root / "xdg-file").write_text("not a directory")
        home = root / "home" / ".cache" / "dlm-gen"
        cache = root / "xdg" / "dlm-gen" if setting == "xdg" else home
    return env, cache


def plant_receipt(rules: Path | None, cache_dir: Path, kind: str) -> None:
    """A receipt where the load looks for one: forged for these tables, or something odd."""
    if kind == "none" or rules is None or not rules.is_dir():
        return
    texts = []
    for table in sorted(rules.glob("*.yaml")):
        if not table.is_file():  # a FIFO would block this read (the load refuses it unread)
            return
        try:
            texts.append((table.name, table.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            return  # the load stops at this table, before any receipt
    key = rulecache.cache_key(texts)
    receipt = cache_dir / f"rules-{key[:32]}.json"
    try:
        receipt.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return
    if kind == "forged":
        receipt.write_text(json.dumps({"format": rulecache.RECEIPT_FORMAT, "key": key}))
    elif kind == "garbage":
        receipt.write_bytes(b"\x80\x04" + b"{" * 5000)
    elif kind == "directory":
        receipt.mkdir()
    elif kind == "link":
        receipt.symlink_to("/etc/passwd")
    else:
        os.mkfifo(receipt)


@settings(max_examples=20, deadline=None)
# The cases, always run: a forged receipt for a broken set (was a traceback), a
# directory at the receipt's name (was a temporary file per run), 8e23 nodes (was planned).
@example("copy", "corpus.yaml", NASTY_TABLES[1], "forged", "dir", "cpu", None)
@example("shipped", "limits.yaml", "", "directory", "dir", "cpu", None)
@example("shipped", "limits.yaml", "", "none", "off", "99999999999999999999999x8xh100", None)
@given(
    rules_kind=st.sampled_from(RULES_DIRS),
    table=st.sampled_from(TABLES),
    content=st.sampled_from(NASTY_TABLES + NASTY_TABLE_BYTES + SPECIAL_TABLES),
    receipt=st.sampled_from(RECEIPTS),
    cache=st.sampled_from(CACHE_SETTINGS),
    target=st.sampled_from(TARGETS)
    | st.from_regex(r"[0-9]{1,30}x\(?[a-z0-9()-]{0,12}", fullmatch=True),
    nodes=st.sampled_from(NODES),
)
def test_explain_with_hostile_rules_receipts_and_targets(
    rules_kind, table, content, receipt, cache, target, nodes
):
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "home").mkdir()
        (root / "cwd").mkdir()
        document = root / "doc.dlm"
        document.write_text(dlm_text({"base_model": "smollm2-135m"}))
        rules = build_rules(root, rules_kind, table, content)
        env, cache_dir = cache_env(root, cache)
        plant_receipt(rules or data_dir("rules"), cache_dir, receipt)
        if rules is not None:
            env["DLM_GEN_RULES"] = str(rules)
        args = ["explain", document, "--target", target]
        args += [] if nodes is None else [f"--nodes={nodes}"]
        outcome = run_cli(args, root / "cwd", env=env, watch=root, timeout_s=30)
        assert_safe_outcome(outcome, allowed=[cache_dir, root / "home" / ".cache"])
        if outcome.code == 1:
            located = ("rules/", "--target", "--nodes", "doc.dlm", str(root))
            assert any(place in outcome.text for place in located), outcome.describe()
        leftovers = [p.name for p in cache_dir.glob("*") if not p.name.startswith("rules-")]
        assert not leftovers, leftovers  # no temporary file stays behind

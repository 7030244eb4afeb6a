"""The checked-rules cache: a receipt of plain JSON that can cost speed, never a plan.

A receipt names the SHA-256 of the tables, the schema and dlm-gen's source
that passed the load-time checks; the rule set is always built from the
tables' bytes. Hostile, tampered, truncated and foreign files in every place
the cache reads must run no code and change nothing.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dlm_gen import rulecache, rulechecks
from dlm_gen import rules as rules_module
from dlm_gen.resources import data_dir
from tests.conftest import ROOT, write_dlm


@pytest.fixture
def setup(tmp_path, monkeypatch):
    tables = tmp_path / "rules"
    shutil.copytree(data_dir("rules"), tables)
    cache = tmp_path / "cache"
    monkeypatch.setenv("DLM_GEN_CACHE_DIR", str(cache))
    rules_module.forget_loaded_rules()
    yield tables, cache
    rules_module.forget_loaded_rules()


def fresh_load(tables):
    rules_module.forget_loaded_rules()
    return rules_module.load_rules(tables)


def cache_key(tables: Path) -> str:
    texts = [(f.name, f.read_text(encoding="utf-8")) for f in sorted(tables.glob("*.yaml"))]
    return rulecache.cache_key(texts)


def test_a_receipt_lets_the_second_load_skip_the_checks(setup, monkeypatch):
    tables, cache = setup
    first = fresh_load(tables)
    [receipt] = cache.iterdir()
    assert receipt.name == f"rules-{cache_key(tables)[:32]}.json"
    assert json.loads(receipt.read_text()) == {
        "format": rulecache.RECEIPT_FORMAT,
        "key": cache_key(tables),
    }

    def no_proof(*_):
        raise AssertionError("checked again although these bytes passed before")

    monkeypatch.setattr(rulechecks, "check_overlaps", no_proof)
    monkeypatch.setattr(rulechecks, "schema_problems", no_proof)
    assert fresh_load(tables) == first


def test_any_edit_checks_again(setup):
    tables, cache = setup
    fresh_load(tables)
    table = tables / "galore.yaml"
    table.write_text(table.read_text().replace("{lt: 1000000000}", "{lt: 2000000000}"))
    rebuilt = fresh_load(tables)
    rule = rebuilt.rule("galore-small-base")
    assert any(test.value == 2_000_000_000 for test in rule.condition)
    assert len(list(cache.glob("rules-*.json"))) == 2


def test_cache_can_be_turned_off(setup, monkeypatch):
    tables, cache = setup
    monkeypatch.setenv("DLM_GEN_CACHE_DIR", "off")
    fresh_load(tables)
    assert not cache.exists()


def test_broken_tables_get_no_receipt(setup):
    tables, cache = setup
    (tables / "corpus.yaml").write_text(
        "kind: rules\nid_prefix: corpus\nhit_policy: collect\nrules: []\n"
    )
    with pytest.raises(rules_module.RulesError):
        fresh_load(tables)
    assert not cache.exists() or not list(cache.iterdir())


def test_a_forged_receipt_cannot_let_broken_tables_pass_unnoticed_after_an_edit(setup):
    """A receipt names exact bytes: it never vouches for tables edited afterwards."""
    tables, _ = setup
    fresh_load(tables)
    (tables / "corpus.yaml").write_text(
        "kind: rules\nid_prefix: corpus\nhit_policy: collect\nrules: []\n"
    )
    with pytest.raises(rules_module.RulesError, match=r"corpus\.yaml"):
        fresh_load(tables)


class _RunsCode:
    """A pickle payload: unpickling it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile_files(cache: Path, key: str, marker: Path) -> None:
    """Every name the cache could use (old pickle names too), each with hostile bytes."""
    cache.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps(_RunsCode(marker))
    for stem in (key[:32], key[:16], key):
        (cache / f"rules-{stem}.pickle").write_bytes(payload)
    forged = {
        "format": rulecache.RECEIPT_FORMAT,
        "key": key,
        "base_models": {"smollm2-135m": {"hub_id": "attacker/SmolLM2-135M"}},
    }
    (cache / f"rules-{key[:32]}.json").write_text(json.dumps(forged))


def test_hostile_cache_files_run_no_code_and_change_no_plan(setup, tmp_path):
    tables, cache = setup
    expected = fresh_load(tables)
    shutil.rmtree(cache)
    marker = tmp_path / "code-ran"
    _hostile_files(cache, cache_key(tables), marker)
    loaded = fresh_load(tables)
    assert not marker.exists()
    assert loaded == expected
    assert not loaded.base_models["smollm2-135m"]["hub_id"].startswith("attacker/")


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"\x80\x04not json", b"[]", b'{"format": 1}', b"{" * 100_000, b"x" * 10_000],
    ids=["empty", "truncated", "binary", "list", "foreign", "deep", "huge"],
)
def test_damaged_receipts_only_cost_speed(setup, content):
    tables, cache = setup
    expected = fresh_load(tables)
    [receipt] = cache.iterdir()
    receipt.write_bytes(content)
    assert fresh_load(tables) == expected
    assert json.loads(receipt.read_text())["key"] == cache_key(tables)  # rewritten


def test_a_fifo_or_directory_where_the_receipt_goes_does_not_hang(setup):
    tables, cache = setup
    expected = fresh_load(tables)
    [receipt] = cache.iterdir()
    receipt.unlink()
    os.mkfifo(receipt)
    assert fresh_load(tables) == expected
    receipt.unlink()
    receipt.mkdir()
    assert fresh_load(tables) == expected


def test_rendered_bytes_are_those_of_the_real_tables_with_a_hostile_cache(tmp_path):
    """End to end: render with a poisoned cache directory = render with no cache."""
    document = write_dlm(tmp_path, {"base_model": "smollm2-135m"})
    cache = tmp_path / "poisoned"
    marker = tmp_path / "code-ran"
    _hostile_files(cache, cache_key(data_dir("rules")), marker)

    def render(cache_dir: str, out: Path) -> bytes:
        env = {**os.environ, "DLM_GEN_CACHE_DIR": cache_dir}
        command = [sys.executable, "-m", "dlm_gen", "render", str(document), "--out", str(out)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        return Path(done.stdout.strip()).read_bytes()

    poisoned = render(str(cache), tmp_path / "a")
    clean = render("off", tmp_path / "b")
    assert poisoned == clean
    assert b"attacker" not in poisoned
    assert not marker.exists()


def test_no_pickle_or_marshal_in_dlm_gen():
    for source in (ROOT / "dlm_gen").glob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert "pickle" not in text and "marshal" not in text, source.name

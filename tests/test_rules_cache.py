"""The checked-rules cache: a hit when nothing changed, rebuilt after any edit."""

from __future__ import annotations

import shutil

import pytest

from dlm_gen import rules as rules_module
from dlm_gen.resources import data_dir


@pytest.fixture
def setup(tmp_path, monkeypatch):
    tables = tmp_path / "rules"
    shutil.copytree(data_dir("rules"), tables)
    cache = tmp_path / "cache"
    monkeypatch.setenv("DLM_GEN_CACHE_DIR", str(cache))
    rules_module.load_rules.cache_clear()
    yield tables, cache
    rules_module.load_rules.cache_clear()


def fresh_load(tables):
    rules_module.load_rules.cache_clear()
    return rules_module.load_rules(tables)


def test_second_load_is_a_cache_hit(setup, monkeypatch):
    tables, cache = setup
    first = fresh_load(tables)
    assert len(list(cache.glob("rules-*.pickle"))) == 1

    def no_rebuild(*_):
        raise AssertionError("rebuilt although nothing changed")

    monkeypatch.setattr(rules_module, "_check_and_build", no_rebuild)
    assert fresh_load(tables) == first


def test_any_edit_rebuilds(setup):
    tables, cache = setup
    fresh_load(tables)
    table = tables / "optimizer.yaml"
    table.write_text(table.read_text().replace("{lt: 1000000000}", "{lt: 2000000000}"))
    rebuilt = fresh_load(tables)
    rule = rebuilt.rule("galore-small-base")
    assert any(test.value == 2_000_000_000 for test in rule.condition)
    assert len(list(cache.glob("rules-*.pickle"))) == 2


def test_a_damaged_cache_is_ignored(setup):
    tables, cache = setup
    expected = fresh_load(tables)
    [entry] = cache.glob("rules-*.pickle")
    entry.write_bytes(b"not a pickle")
    assert fresh_load(tables) == expected


def test_cache_can_be_turned_off(setup, monkeypatch):
    tables, cache = setup
    monkeypatch.setenv("DLM_GEN_CACHE_DIR", "off")
    fresh_load(tables)
    assert not cache.exists()


def test_broken_tables_are_never_cached(setup):
    tables, cache = setup
    (tables / "corpus.yaml").write_text("kind: rules\nhit_policy: unique\nrules: []\n")
    with pytest.raises(rules_module.RulesError):
        fresh_load(tables)
    assert not cache.exists() or not list(cache.glob("rules-*.pickle"))

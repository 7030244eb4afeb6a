"""The caps of rules/limits.yaml: located refusals, no half-written script."""

from __future__ import annotations

import pytest

from tests.conftest import dlm_text


def rows_body(count: int) -> str:
    return "".join(f"::instruction::\n### Q\nq{i}\n### A\na{i}\n" for i in range(count))


def test_shipped_caps_are_documented_numbers():
    from dlm_gen.limits import limits

    caps = limits()
    assert caps["max_document_bytes"] == 16 * 2**20
    assert caps["max_rows"] == 20000
    assert caps["max_adapters"] == 32


def test_one_row_over_the_cap_is_refused_at_that_row(tmp_path, cli, caps):
    caps("max_rows", 3)
    path = tmp_path / "doc.dlm"
    path.write_text(dlm_text({"base_model": "smollm2-135m"}, rows_body(4)))
    code, _, err = cli("explain", path, "--target", "cpu")
    assert code == 1
    # 3 frontmatter lines, then 5 lines per pair: the 4th pair's "### Q" is line 20
    assert f"{path}:20: 4 rows; the limit is 3 (rules/limits.yaml max_rows)" in err
    path.write_text(dlm_text({"base_model": "smollm2-135m"}, rows_body(3)))
    assert cli("explain", path, "--target", "cpu")[0] == 0


def test_too_many_adapters_are_refused_at_the_adapters_line(tmp_path, cli, caps):
    caps("max_adapters", 2)
    adapters = {name: {} for name in ("a", "b", "c")}
    path = tmp_path / "doc.dlm"
    path.write_text(dlm_text({"base_model": "smollm2-135m", "training": {"adapters": adapters}}))
    code, _, err = cli("explain", path, "--target", "cpu")
    assert code == 1
    assert f"{path}:4: training.adapters: 3 adapters; the limit is 2" in err


def test_a_script_over_the_cap_is_not_written(tmp_path, cli, caps):
    caps("max_script_bytes", 5000)
    path = tmp_path / "doc.dlm"
    path.write_text(dlm_text({"base_model": "smollm2-135m"}))
    out = tmp_path / "out"
    code, _, err = cli("render", path, "--target", "cpu", "--out", out)
    assert code == 1
    assert "the rendered script would be" in err and "max_script_bytes" in err
    assert not out.exists() or not list(out.iterdir())
    code, _, err = cli("check", path, "--target", "cpu", "--out", out)
    assert code == 1 and "max_script_bytes" in err


@pytest.mark.parametrize("value", ["0", "-1", "true", "lots", "1.5"])
def test_a_broken_limits_table_is_a_located_error(tmp_path, cli, caps, value):
    from dlm_gen import limits as limits_table

    limits_table._limits.cache_clear()
    caps("max_rows", value)
    path = tmp_path / "doc.dlm"
    path.write_text(dlm_text({"base_model": "smollm2-135m"}))
    code, _, err = cli("explain", path, "--target", "cpu")
    limits_table._limits.cache_clear()
    assert code == 1
    assert "rules/limits.yaml:10: limits" in err and "max_rows" in err
    assert "Traceback" not in err


def test_the_limits_reader_checks_the_table_itself(tmp_path, caps):
    """Documents are read before the rule set in some paths: the reader checks too."""
    from dlm_gen import limits as limits_table
    from dlm_gen.errors import RulesError

    caps("max_rows", "lots")
    with pytest.raises(RulesError, match=r"limits\.max_rows: expected a positive integer"):
        limits_table.limits()

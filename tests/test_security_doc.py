"""docs/security.md stays true to the tests: every test it names exists, and every
fuzz target (tests/test_fuzz_*.py) is named by a surface's row."""

from __future__ import annotations

import re

from tests.conftest import ROOT

DOC = ROOT / "docs" / "security.md"


def _rows() -> list[str]:
    return [
        line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| **")
    ]


def test_every_test_the_threat_model_names_exists():
    named = set()
    for row in _rows():
        for file, test in re.findall(r"`(test_\w+\.py)(?:::(\w+))?`", row):
            path = ROOT / "tests" / file
            assert path.is_file(), f"docs/security.md names {file}, which does not exist"
            if test:
                assert f"def {test}(" in path.read_text(encoding="utf-8"), (file, test)
            named.add(file)
    fuzz_targets = {path.name for path in (ROOT / "tests").glob("test_fuzz_*.py")}
    assert fuzz_targets <= named, f"fuzz targets without a row: {fuzz_targets - named}"


def test_every_surface_row_names_a_fuzz_target_and_a_bound():
    for row in _rows():
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 4, row[:80]
        assert "test_fuzz_" in cells[3] or "fuzz target" in cells[3], cells[0]
        assert cells[2], cells[0]

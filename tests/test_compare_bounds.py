"""`dlm-gen compare` under its caps: bounded output, located errors, finite JSON, flags.

A run.json is input: any file under `max_run_json_bytes` must give a table or
a located error in bounded time and memory, never print a whole list, never
write `NaN` into --json, never leave a half-written plot.
"""

from __future__ import annotations

import json
import math

import pytest

from dlm_gen import compare
from dlm_gen.limits import limits
from tests.test_compare import run_record, write_run


def strict_json(text: str) -> object:
    """Parse as JSON does: NaN and Infinity are not numbers there."""

    def refuse(name: str) -> object:
        raise ValueError(f"{name} in JSON output")

    return json.loads(text, parse_constant=refuse)


def test_a_list_where_a_count_belongs_is_refused_not_printed(tmp_path, cli):
    """Was: a 2,000,000-item tokens_trained list printed whole (405 MB, 58 s)."""
    a = write_run(tmp_path / "lora", run_record("lora", 5.0))
    b = write_run(tmp_path / "dora", run_record("dora", 4.5, tokens_trained=[1.5] * 200_000))
    code, out, err = cli("compare", a, b)
    assert code == 1
    assert "adapters[0].tokens_trained: expected a number" in err
    assert "got a list of 200000 items" in err
    assert len(out) + len(err) < 2000


def test_a_bad_item_deep_in_a_long_list_is_located_and_not_echoed(tmp_path, cli):
    losses = [1.0] * 100_000 + [-1.0]
    a = write_run(tmp_path / "lora", run_record("lora", 5.0))
    b = write_run(tmp_path / "dora", run_record("dora", 4.5, losses=losses))
    code, out, err = cli("compare", a, b)
    assert code == 1
    assert "adapters[0].losses[100000]: expected a number from 0 to 1e+06, got -1.0" in err
    assert len(out) + len(err) < 2000


def test_many_empty_objects_are_refused_before_parsing(tmp_path, cli):
    """`[{},{},...]` costs Python ~64 bytes per 3 bytes of file: 64 MiB of it was gigabytes."""
    count = limits()["max_run_json_containers"] + 1
    a = write_run(tmp_path / "lora", run_record("lora", 5.0, samples=[{}] * count))
    code, _, err = cli("compare", a, a)
    assert code == 1
    assert "run.json: not a dlm-gen run.json: more than" in err
    assert "max_run_json_containers" in err


def test_json_output_holds_no_infinity_when_a_ratio_overflows(tmp_path, cli):
    """A denormal baseline loss made (b - a) / |a| infinite: --json printed `Infinity`."""
    a = write_run(tmp_path / "lora", run_record("lora", 5e-324, final_train_loss=1.0))
    b = write_run(tmp_path / "dora", run_record("dora", 4.0))
    code, out, _ = cli("compare", a, b, "--json")
    assert code == 0
    data = strict_json(out)
    row = next(row for row in data["figures"] if row["figure"] == "eval loss")
    assert row["relative"] is None
    assert data["verdict"]["keep"] == "lora"
    assert "too small to measure a gain against" in data["verdict"]["text"]


@pytest.mark.parametrize(
    "threshold", ["nan", "inf", "-inf", "1e999", "-0.1", "11", "0x1", "1_0", "\u0661", " "]
)
def test_threshold_must_be_a_finite_number_in_range(tmp_path, cli, threshold):
    """Was: `--threshold nan` accepted ("nan% threshold"), and --json printed NaN."""
    a = write_run(tmp_path / "lora", run_record("lora", 5.0))
    code, out, err = cli("compare", a, a, f"--threshold={threshold}", "--json")
    assert code == 2
    assert "argument --threshold: expected a number from 0 to 10" in err
    assert out == ""


def test_the_threshold_flag_and_the_table_share_one_range():
    assert compare.threshold_bounds() == (0.0, 10.0)


def test_a_small_threshold_is_not_shown_as_zero(tmp_path, cli):
    a = write_run(tmp_path / "lora", run_record("lora", 5.0))
    b = write_run(tmp_path / "dora", run_record("dora", 4.5))
    out = cli("compare", a, b, "--threshold", "0.001")[1]
    assert "beats the 0.1% threshold" in out


def test_downsample_keeps_short_curves_and_averages_long_ones():
    assert compare.downsample([3.0, 2.0, 1.0], 5) == ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    steps, means = compare.downsample([float(i) for i in range(1000)], 10)
    assert len(steps) == len(means) == 10
    assert steps[0] == pytest.approx(50.5) and means[0] == pytest.approx(49.5)
    assert math.fsum(means) / 10 == pytest.approx(499.5)


def test_plot_draws_at_most_max_plot_points_per_curve(tmp_path, cli, monkeypatch):
    """Was: every loss drawn (9 M losses: 26 s, 0.9 GB)."""
    pytest.importorskip("matplotlib")
    import matplotlib.axes

    drawn = []
    real_plot = matplotlib.axes.Axes.plot

    def counting(self, x, y, **kwargs):
        drawn.append(len(y))
        return real_plot(self, x, y, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", counting)
    losses = [1.0 + (i % 7) / 10 for i in range(30_000)]
    a = write_run(tmp_path / "lora", run_record("lora", 5.0, losses=losses))
    png = tmp_path / "curves.png"
    assert cli("compare", a, a, "--plot", png)[0] == 0
    assert drawn == [limits()["max_plot_points"]] * 2
    assert png.read_bytes().startswith(b"\x89PNG")


def test_a_plot_that_fails_midway_leaves_no_half_written_file(tmp_path, cli, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.figure

    def full_disk(self, target, **kwargs):
        if hasattr(target, "write"):
            target.write(b"\x89PNG partial")
        else:
            with open(target, "wb") as handle:
                handle.write(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full_disk)
    png = tmp_path / "plots" / "curves.png"
    png.parent.mkdir()
    png.write_bytes(b"the previous plot")
    a = write_run(tmp_path / "lora", run_record("lora", 5.0))
    code, _, err = cli("compare", a, a, "--plot", png)
    assert code == 1 and "No space left on device" in err
    assert png.read_bytes() == b"the previous plot"
    assert sorted(p.name for p in png.parent.iterdir()) == ["curves.png"]


def test_an_oversized_run_json_names_its_cap(tmp_path, cli):
    run = tmp_path / "run.json"
    run.write_bytes(b" " * (limits()["max_run_json_bytes"] + 1))
    code, _, err = cli("compare", run, run)
    assert code == 1 and "(rules/limits.yaml max_run_json_bytes)" in err


def test_a_run_path_is_never_read_as_mathtext_and_plot_makes_no_directory(tmp_path, cli):
    """Found by a hostile tester: a run directory named `r$\\foo{$` raised matplotlib's
    mathtext parse error (a traceback); `--plot x/y/p.png` made the directories x and y."""
    pytest.importorskip("matplotlib")
    a = write_run(tmp_path / "r$\\foo{$", run_record("lora", 5.0, losses=[1.0, 0.9]))
    b = write_run(tmp_path / "rb", run_record("dora", 5.0, losses=[1.0, 0.8]))
    png = tmp_path / "curves.png"
    code, _, err = cli("compare", a, b, "--plot", png)
    assert code == 0, err
    assert png.read_bytes().startswith(b"\x89PNG")
    code, _, err = cli("compare", a, b, "--plot", tmp_path / "x" / "y" / "p.png")
    assert code == 1 and "--plot: no directory" in err, err
    assert not (tmp_path / "x").exists()

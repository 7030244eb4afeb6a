"""The generated script's environment: the launcher's counts are input too.

torchrun sets WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_WORLD_SIZE and RANK; a user's
shell can set anything there. A value that is no count stops the run with one
escaped line naming the variable (exit 1) before anything heavy loads; int()
of it was a traceback. The fuzz target sets any of them to anything.

DLM_GEN_BASE_DIR is where a local base's relative path starts: a directory that
holds no base (none there, a loop of links, a path past the system's limit)
stops the run with one escaped line naming the variable, before anything heavy
loads or anything is written; it was a traceback after torch loaded.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import assert_safe_outcome, run_bounded
from tests.test_script_terminal import FLAG_CHECK_TIMEOUT_S, make_area, make_local_area, run_local


@pytest.fixture(scope="module")
def area(tmp_path_factory):
    return make_area(tmp_path_factory.mktemp("script-environment"))


def run_with(area, variables: dict[str, str]):
    env = {"PYTHONPATH": str(area["fake"]), "HOME": str(area["home"]), **variables}
    return run_bounded(
        [sys.executable, str(area["script"]), "--output-dir", str(area["fresh"])],
        area["cwd"],
        env=env,
        timeout_s=FLAG_CHECK_TIMEOUT_S,
        watch=area["root"],
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WORLD_SIZE", "abc"),
        ("WORLD_SIZE", "9" * 5000),
        ("LOCAL_WORLD_SIZE", "-1"),
        ("GROUP_WORLD_SIZE", " 2"),
        ("WORLD_SIZE", "1_0"),
        ("WORLD_SIZE", "\u0663"),  # an Arabic-Indic 3, which int() reads
        ("RANK", "\x1b[31m0"),
        ("WORLD_SIZE", "2000000"),
    ],
)
def test_a_launch_variable_that_is_no_count_stops_the_run_naming_it(area, name, value):
    outcome = run_with(area, {name: value})
    assert_safe_outcome(outcome, codes=(1,), allowed=[])
    assert name in outcome.stderr.decode(), outcome.describe()
    assert b"heavy import" not in outcome.stdout, outcome.describe()


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "0"}, "LOCAL_WORLD_SIZE is 0"),
        ({"GROUP_WORLD_SIZE": "2"}, "GROUP_WORLD_SIZE is 2"),
        ({"WORLD_SIZE": "3", "LOCAL_WORLD_SIZE": "1"}, "WORLD_SIZE is 3"),
    ],
)
def test_a_launch_that_is_not_the_plans_names_the_variable_that_is_off(area, variables, named):
    """WORLD_SIZE=1 LOCAL_WORLD_SIZE=0 was refused as 'WORLD_SIZE is 1'."""
    outcome = run_with(area, variables)
    assert_safe_outcome(outcome, codes=(1,), allowed=[])
    # That variable alone, the whole line.
    assert f"this plan trains in one process, but {named}\n" in outcome.stderr.decode()


def test_a_planned_launch_gets_past_the_launch_check(area):
    outcome = run_with(area, {"WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1", "RANK": "0"})
    assert b"heavy import" in outcome.stdout, outcome.describe()


LAUNCH_VARIABLES = ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_WORLD_SIZE", "RANK")
VALUES = st.sampled_from(["0", "1", "2", "", "-0", "1e3", "0x2", "\x1b]0;t\x07", "9" * 400])
TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(variables=st.dictionaries(st.sampled_from(LAUNCH_VARIABLES), VALUES | TEXT, max_size=3))
def test_any_launch_environment_is_a_launch_or_one_clear_line(area, variables):
    outcome = run_with(area, variables)
    heavy = b"heavy import" in outcome.stdout
    # Past the launch check the fake torch ends the child with exit 0; before it, a
    # count that is no count or a launch that is not the plan's exits 1.
    assert_safe_outcome(outcome, codes=(0,) if heavy else (1,), allowed=[])


@pytest.fixture(scope="module")
def local_area(tmp_path_factory):
    return make_local_area(tmp_path_factory.mktemp("script-environment-base"))


def base_dir_value(local_area, value: str) -> str:
    """`{name}` in a value stands for the path `name` of the area."""
    for name, path in local_area.items():
        value = value.replace("{" + name + "}", str(path))
    return value


@pytest.mark.parametrize(
    "value",
    ["{empty}", "{loopy}", "{deep}", "{nomodel}", "x" * 5000, "\x1b]0;t\x07", "{docs}/model"],
    ids=lambda v: repr(v)[:20],
)
def test_a_base_dir_variable_without_the_base_stops_the_run_naming_it(local_area, value):
    outcome = run_local(
        local_area, "lost", env={"DLM_GEN_BASE_DIR": base_dir_value(local_area, value)}
    )
    assert_safe_outcome(outcome, codes=(1,), allowed=[])
    err = outcome.stderr.decode()
    assert err.startswith("the environment says DLM_GEN_BASE_DIR=") and err.count("\n") == 1, err
    assert b"heavy import" not in outcome.stdout and not (local_area["cwd"] / "run").exists()


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=st.sampled_from(["{docs}", "{empty}", "{loopy}", "{deep}", "../../docs", "."]) | TEXT)
def test_any_base_dir_variable_is_a_run_or_one_clear_line(local_area, value):
    value = base_dir_value(local_area, value)
    outcome = run_local(local_area, "lost", env={"DLM_GEN_BASE_DIR": value})
    heavy = b"heavy import" in outcome.stdout
    # The base found: the fake torch ends the child with exit 0. Not found: exit 1,
    # one line naming the variable (or, where it is empty, the default and the flag).
    assert_safe_outcome(outcome, codes=(0,) if heavy else (1,), allowed=[])
    if not heavy:
        assert "DLM_GEN_BASE_DIR" in outcome.stderr.decode(), outcome.describe()

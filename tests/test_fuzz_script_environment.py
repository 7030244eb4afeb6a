"""The generated script's environment: the launcher's counts are input too.

torchrun sets WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_WORLD_SIZE and RANK; a user's
shell can set anything there. A value that is no count stops the run with one
escaped line naming the variable (exit 1) before anything heavy loads; int()
of it was a traceback. The fuzz target sets any of them to anything.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import assert_safe_outcome, run_bounded
from tests.test_script_terminal import FLAG_CHECK_TIMEOUT_S, make_area


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

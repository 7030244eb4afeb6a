"""Fuzz target: the generated script's flags (docs/security.md).

Hypothesis builds argv lists for a rendered script, each flag at most once, from
good and hostile values of that flag (paths of every kind, numbers of every
shape, prompts with controls, bytes that are not UTF-8, junk arguments). The
script runs in a bounded child with fake heavy packages first on PYTHONPATH
(tests/test_script_terminal.py): `import torch` prints `heavy import: torch`
and exits 0, so no training ever starts. An argv with anything wrong must exit
2 naming a flag at fault; a good one must get as far as `import torch`; neither
may write a file or print a character a terminal acts on.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import assert_safe_outcome
from tests.test_script_terminal import make_area, run_script

# The path flags' rule (the script's PATH_REFUSED_CATEGORIES).
REFUSED_IN_PATHS = {"Cc", "Cf", "Cs", "Zl", "Zp"}
# Text an argv can carry (bytes that are not UTF-8 come as bytes, below).
TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=12)


@dataclass(frozen=True)
class Pick:
    """One flag's part of an argv, and what the script must make of it."""

    argv: tuple[str | bytes, ...]
    flag: str
    bad: bool  # refused whatever the other flags say
    place: str | None = None  # --output-dir: which kind of directory


def value(flag: str, text: str | bytes, bad: bool, place: str | None = None) -> Pick:
    """`--flag=VALUE`: one word, so a value that starts with '-' still reaches the check."""
    if isinstance(text, bytes):
        return Pick((flag.encode() + b"=" + text,), flag, bad, place)
    return Pick((f"{flag}={text}",), flag, bad, place)


def steps(flag: str) -> st.SearchStrategy[Pick]:
    good = st.integers(1, 2**63 - 1).map(str) | st.integers(1, 999).map(lambda n: f"{n:05d}")
    nasty = st.sampled_from(["0", "000", "-3", "nan", "inf", "1e3", "+5", " 5", "0x10", ""])
    bad = (
        nasty
        | st.integers(max_value=0).map(str)
        | st.integers(min_value=2**63).map(str)
        | TEXT.filter(lambda t: not re.fullmatch(r"[0-9]+", t))
    )
    return good.map(lambda t: value(flag, t, False)) | bad.map(lambda t: value(flag, t, True))


def new_name_is_refused(name: str) -> bool:
    """A new directory NAME under the working directory (given as a full path)."""
    return not name or any(unicodedata.category(c) in REFUSED_IN_PATHS for c in name)


# --output-dir: (value, place) where place is what the script finds there.
OUTPUT_PLACES = [
    ("{fresh}", "fresh"),
    ("{empty}", "fresh"),
    ("{nfd}", "fresh"),
    ("{done}", "done"),
    ("{crashed}", "crashed"),
    ("{previous}", "both"),  # done, with its checkpoints kept
    ("{halfsaved}", "fresh"),  # its last checkpoint holds nothing to resume from
    ("{notrun}", "foreign"),
    ("{readme_only}", "foreign"),
    ("{cwd}/..", "foreign"),
    ("{home}", "foreign"),
    ("~", "foreign"),
    ("/", "foreign"),
    (".", "fresh"),  # the working directory, empty
    # A run's names, but not what a run makes there: links, a file for a directory.
    ("{tmplinks}", "foreign"),
    ("{cplink}", "foreign"),
    ("{adapterfile}", "foreign"),
    ("{innerlink}", "foreign"),
    ("{readmelink}", "foreign"),
]
OUTPUT_REFUSED = [
    "{file}",
    "{file}/x",
    "{fifo}",
    "/dev/null",
    "",
    "-rf",
    "--resume",
    "~no-such-user-dlm",
    "{long}",  # what a run writes under it would pass the system's limit on a path
]


def output_dir() -> st.SearchStrategy[Pick]:
    known = st.sampled_from(OUTPUT_PLACES).map(lambda p: value("--output-dir", p[0], False, p[1]))
    refused = st.sampled_from(OUTPUT_REFUSED).map(lambda t: value("--output-dir", t, True))
    hostile = st.sampled_from([b"r\xff", b"\x1b]0;x\x07", b"a\xe2\x80\xaeb"]).map(
        lambda b: value("--output-dir", b, True)
    )
    names = TEXT.filter(lambda t: not ({"/", "{"} & set(t)) and t not in (".", "..")).map(
        lambda t: value("--output-dir", "{cwd}/" + t if t else "", new_name_is_refused(t), "fresh")
    )
    return known | refused | hostile | names


def base_path() -> st.SearchStrategy[Pick]:
    good = st.sampled_from(["{model}", "{linkmodel}"]).map(lambda t: value("--base-path", t, False))
    bad = st.sampled_from(
        ["{file}", "{fifo}", "{empty}", "{fresh}", "", "-x", "a\x1bb", "{listmodel}", "{deep}"]
    )
    return good | bad.map(lambda t: value("--base-path", t, True))


def base_dir() -> st.SearchStrategy[Pick]:
    good = st.sampled_from(["{empty}", "{model}", "."]).map(lambda t: value("--base-dir", t, False))
    bad = st.sampled_from(["{file}", "{fifo}", "{fresh}", "", "--x", "\u202e"])
    return good | bad.map(lambda t: value("--base-dir", t, True))


def prompt_is_refused(text: str) -> bool:
    return not text.strip() or any(
        c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cs") for c in text
    )


def prompt() -> st.SearchStrategy[Pick]:
    nasty = st.sampled_from(["", " ", "\x1b]0;owned\x07", "a\rb", "\x9b31m", "-x", "\u202e?"])
    not_utf8 = st.sampled_from([b"\xff", b"why\xed\xa0\x80"]).map(
        lambda b: value("--prompt", b, True)
    )
    return (TEXT | nasty).map(lambda t: value("--prompt", t, prompt_is_refused(t))) | not_utf8


def report_is_refused(text: str) -> bool:
    """--report-to: 'none', or up to 16 distinct integration names joined by commas."""
    if text == "none":
        return False
    names = text.split(",")
    well_formed = all(re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name) for name in names)
    return not well_formed or len(names) > 16 or len(set(names)) < len(names)


def report_to() -> st.SearchStrategy[Pick]:
    """Names are checked against the installed integrations only once transformers loads
    (past the fake heavy packages here): a well-formed list reaches the heavy imports."""
    names = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), max_size=3)
    nasty = st.sampled_from(
        ["", "none", "tensorboard,", ",wandb", "Wandb", "a,a", "wandb\x1b[31m", "-x", "a b"]
    )
    text = names.map(",".join) | nasty | TEXT
    return text.map(lambda t: value("--report-to", t, report_is_refused(t)))


def switch(flag: str) -> st.SearchStrategy[Pick]:
    return st.just(Pick((flag,), flag, False))


JUNK = st.sampled_from(["--bogus", "\x1b]0;title\x07", "--base", "extra", "--no-such=1", "-q"])
PICKS = st.lists(
    st.one_of(
        steps("--max-steps"),
        steps("--save-steps"),
        output_dir(),
        base_path(),
        base_dir(),
        prompt(),
        report_to(),
        switch("--resume"),
        switch("--keep-checkpoints"),
        JUNK.map(lambda j: Pick((j,), "junk", True)),
    ),
    max_size=5,
    unique_by=lambda pick: pick.flag,
)


def verdict(picks: list[Pick]) -> tuple[bool, set[str]]:
    """Whether the script must refuse these flags, and the words its error may name."""
    bad = {p.flag for p in picks if p.bad}
    if bad:
        named = {f"argument {flag}:" for flag in bad - {"junk"}}
        if "junk" in bad:
            named |= {"unrecognized arguments", "ambiguous option"}
        return True, named
    flags = {p.flag: p for p in picks}
    place = flags["--output-dir"].place if "--output-dir" in flags else "fresh"
    if "--prompt" in flags:
        return place not in ("done", "both"), {"argument --prompt:"}
    if place == "foreign":
        return True, {"argument --output-dir:"}
    if "--resume" in flags and place not in ("crashed", "both"):
        return True, {"argument --resume:"}
    return False, set()


@pytest.fixture(scope="module")
def area(tmp_path_factory) -> dict[str, Path]:
    return make_area(tmp_path_factory.mktemp("script-flags-fuzz"))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(PICKS)
def test_any_argv_is_refused_with_exit_2_or_reaches_the_heavy_imports(area, picks):
    argv = [part for pick in picks for part in pick.argv]
    outcome = run_script(area, argv)
    refused, named = verdict(picks)
    assert_safe_outcome(outcome, codes=(2,) if refused else (0,))
    heavy = "heavy import: torch" in outcome.stdout.decode("utf-8", "replace")
    assert heavy is not refused, outcome.describe()
    if refused:
        err = outcome.stderr.decode("utf-8", "replace")
        assert any(word in err for word in named), (named, outcome.describe())

"""The generated script as a terminal program: its flags and what it prints.

Every flag is checked before anything heavy loads: a bad value exits 2 naming
its flag, and torch is never imported for it. The checks run the rendered
script as a child with fake torch, transformers, peft, trl, datasets,
accelerate and numpy packages first on PYTHONPATH: importing any of them
prints `heavy import: NAME` and exits 0, so a bad flag that got past the
checks shows up as exit 0 (not 2) with that line, without a clock.

What the script prints and writes (its console, its run card) escapes every
character a reader cannot see, with the same function as dlm-gen's own
(dlm_gen/literals.py: visible).
"""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dlm_gen.literals import visible
from tests.conftest import rendered_script, script_definitions, write_dlm
from tests.fuzzing import Outcome, assert_safe_outcome, run_bounded, terminal_hazards

HEAVY = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "numpy")
# A child that only parses flags: far below this even on a loaded 2-core machine.
FLAG_CHECK_TIMEOUT_S = 15.0
NASTY_TEXT = [
    "\x1b]0;owned\x07",
    "\x1b[31mred\x1b[0m",
    "\x1b[2J\x1b[H",
    "abc\u202edcba",
    "zero\u200bwidth",
    "\x9b31m",
    "line\rover",
    "\ud800",
    "\u3164filler",
    "\U000e0041tag",
    "e\u0301",
    "back\\x1bslash",
    "",
]


def fake_heavy_packages(directory: Path) -> Path:
    """Packages that stand in for the heavy ones: importing one ends the child, exit 0."""
    for name in HEAVY:
        package = directory / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(
            f"import sys\nprint('heavy import: {name}', flush=True)\nsys.exit(0)\n"
        )
    return directory


@pytest.fixture(scope="module")
def area(tmp_path_factory) -> dict[str, Path]:
    return make_area(tmp_path_factory.mktemp("script-flags"))


def make_area(root: Path) -> dict[str, Path]:
    """A rendered one-adapter script, the fake heavy packages, and paths of each kind a
    flag may be given (made once: a child may not change them)."""
    script = root / "train_script.py"
    script.write_text(rendered_script(write_dlm(root, {"base_model": "smollm2-135m"})))
    paths = {"script": script, "fake": fake_heavy_packages(root / "fake")}
    places = root / "places"
    for name in ("cwd", "home", "empty", "notrun", "crashed/checkpoint-2", "done/adapter"):
        (places / name).mkdir(parents=True)
        paths[name.split("/")[0]] = places / name.split("/")[0]
    (places / "notrun" / "notes.txt").write_text("mine\n")
    (places / "done" / "run.json").write_text("{}\n")
    (places / "done" / "README.md").write_text("# a run\n")
    (places / "readme_only").mkdir()
    (places / "readme_only" / "README.md").write_text("# my project\n")
    (places / "model").mkdir()
    (places / "model" / "config.json").write_text("{}\n")
    (places / "file").write_text("a file\n")
    os.mkfifo(places / "fifo")
    paths.update(
        readme_only=places / "readme_only",
        model=places / "model",
        file=places / "file",
        fifo=places / "fifo",
        fresh=places / "fresh",
        nfd=places / "cafe\u0301",
        root=root,
    )
    return paths


def run_script(area: dict[str, Path], argv: list[str | bytes]) -> Outcome:
    """The script with these flags, in a bounded child, with the fake heavy packages;
    `{name}` in an argument stands for the path `name` of the area."""
    resolved = []
    for argument in argv:
        for name, path in area.items():
            if isinstance(argument, str):
                argument = argument.replace("{" + name + "}", str(path))
        resolved.append(argument)
    env = {"PYTHONPATH": str(area["fake"]), "HOME": str(area["home"])}
    return run_bounded(
        [sys.executable, str(area["script"]), *resolved],
        area["cwd"],
        env=env,
        timeout_s=FLAG_CHECK_TIMEOUT_S,
        watch=area["root"],
    )


BAD_FLAGS = [
    (["--max-steps", "0"], "--max-steps", "1 or more"),
    (["--max-steps", "-3"], "--max-steps", "1 or more"),
    (["--max-steps=nan"], "--max-steps", "1 or more"),
    (["--max-steps", "1e3"], "--max-steps", "1 or more"),
    (["--max-steps", "\uff15"], "--max-steps", "1 or more"),  # a full-width 5
    (["--max-steps", "1_000"], "--max-steps", "1 or more"),
    (["--max-steps", " 3"], "--max-steps", "1 or more"),
    (["--max-steps", "9" * 5000], "--max-steps", "the most torch counts"),
    (["--max-steps", str(2**63)], "--max-steps", "the most torch counts"),
    (["--save-steps", "0"], "--save-steps", "1 or more"),
    (["--save-steps", "-1"], "--save-steps", "1 or more"),
    (["--output-dir", "{file}"], "--output-dir", "is a file, not a directory"),
    (["--output-dir", "{file}/run"], "--output-dir", "is a file, not a directory"),
    (["--output-dir", "{fifo}"], "--output-dir", "is a FIFO, not a directory"),
    (["--output-dir", "/dev/null"], "--output-dir", "is a device, not a directory"),
    (["--output-dir", "/"], "--output-dir", "is the filesystem root"),
    (["--output-dir", "{home}"], "--output-dir", "is the home directory itself"),
    (["--output-dir", "~"], "--output-dir", "is the home directory itself"),
    (["--output-dir", "{notrun}"], "--output-dir", "holds 'notes.txt', which no run"),
    (["--output-dir", "{readme_only}"], "--output-dir", "a README.md but no run.json"),
    (["--output-dir", "{cwd}/.."], "--output-dir", "which no run of this script writes"),
    (["--output-dir="], "--output-dir", "expected a path, got nothing"),
    (["--output-dir=-rf"], "--output-dir", "looks like an option"),
    (["--output-dir", "--resume"], "--output-dir", "expected one argument"),
    (["--output-dir", "run\x1b]0;x\x07"], "--output-dir", "holds a control"),
    (["--output-dir", "run\u202e"], "--output-dir", "holds a control"),
    ([b"--output-dir", b"run\xff"], "--output-dir", "non-UTF-8"),
    (["--output-dir", "~no-such-user-dlm/run"], "--output-dir", "no home directory"),
    (["--resume"], "--resume", "no checkpoint-N in"),
    (["--resume", "--output-dir", "{done}"], "--resume", "no checkpoint-N in"),
    (["--base-path", "{file}"], "--base-path", "is a file, not a directory"),
    (["--base-path", "{empty}"], "--base-path", "no config.json in"),
    (["--base-path", "{fresh}"], "--base-path", "no directory"),
    (["--base-dir", "{fifo}"], "--base-dir", "is a FIFO, not a directory"),
    (["--prompt="], "--prompt", "nothing to answer"),
    (["--prompt", " \n "], "--prompt", "nothing to answer"),
    (["--prompt", "hi\x1b[31m"], "--prompt", "\\x1b, a control character"),
    ([b"--prompt", b"hi\xff"], "--prompt", "not UTF-8"),
    (["--prompt", "hi", "--output-dir", "{fresh}"], "--prompt", "train first"),
    (["\x1b]0;title\x07"], "unrecognized arguments", "\\x1b]0;title\\x07"),
]


@pytest.mark.parametrize(("argv", "flag", "fragment"), BAD_FLAGS, ids=lambda v: repr(v)[:40])
def test_a_bad_flag_exits_2_naming_it_before_anything_heavy_loads(area, argv, flag, fragment):
    outcome = run_script(area, argv)
    assert_safe_outcome(outcome, codes=(2,))
    err = outcome.stderr.decode()
    assert f"argument {flag}:" in err or flag in err, outcome.describe()
    assert fragment in err, outcome.describe()
    assert "heavy import" not in outcome.text, outcome.describe()


GOOD_FLAGS = [
    [],  # runs/train_<hash> under the working directory
    ["--max-steps", "3", "--save-steps", "0002", "--output-dir", "{fresh}"],
    ["--output-dir", "{empty}", "--keep-checkpoints"],
    ["--output-dir", "{done}"],  # a finished run, done again
    ["--output-dir", "{crashed}", "--resume"],
    ["--output-dir", "{nfd}"],  # a decomposed (NFD) name: combining marks are letters
    ["--prompt", "why?\n\treally", "--output-dir", "{done}"],
    ["--prompt=-1 + 1 = ?", "--output-dir", "{done}"],
    ["--prompt", "\u05e9\u05dc\u05d5\u05dd\u200f?", "--output-dir", "{done}"],  # RTL mark
    ["--base-path", "{model}", "--base-dir", "{empty}", "--max-steps", "1"],
]


@pytest.mark.parametrize("argv", GOOD_FLAGS, ids=repr)
def test_good_flags_get_as_far_as_the_heavy_imports_and_write_nothing(area, argv):
    """The control for the test above: these reach `import torch` (preflight)."""
    outcome = run_script(area, argv)
    assert_safe_outcome(outcome, codes=(0,))
    assert "heavy import: torch" in outcome.stdout.decode(), outcome.describe()


def test_a_multi_adapter_run_directory_is_a_run_and_each_adapter_resumes(tmp_path):
    (tmp_path / "fake").mkdir()
    fake = fake_heavy_packages(tmp_path / "fake")
    training = {"adapters": {"alpha": {}, "beta": {}}}
    body = "".join(
        f"::instruction#{n}::\n### Q\n{n}?\n### A\n{n}.\n\n" for n in training["adapters"]
    )
    script = tmp_path / "train_multi.py"
    document = write_dlm(tmp_path, {"base_model": "smollm2-135m", "training": training}, body)
    script.write_text(rendered_script(document))
    run_dir = tmp_path / "run"
    (run_dir / "alpha" / "checkpoint-4").mkdir(parents=True)
    (run_dir / "beta" / "adapter").mkdir(parents=True)
    (run_dir / "run.json").write_text("{}\n")

    def flags(*argv: str) -> Outcome:
        command = [sys.executable, str(script), "--output-dir", str(run_dir), *argv]
        return run_bounded(command, tmp_path, env={"PYTHONPATH": str(fake)}, watch=tmp_path)

    assert flags().code == 0  # alpha/ and beta/ are the adapters' own directories
    half = flags("--resume")
    assert half.code == 2 and "beta" in half.stderr.decode(), half.describe()
    (run_dir / "beta" / "checkpoint-2").mkdir()
    assert flags("--resume").code == 0


@pytest.mark.slow
def test_a_base_path_with_no_model_in_it_stops_with_one_clear_line(area, tmp_path):
    """--base-path passes its check (a config.json is there) but holds no model: the
    loader's error becomes one escaped line and exit 1, not a traceback."""
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}\n")
    argv = ["--base-path", str(broken), "--max-steps", "1", "--output-dir", str(tmp_path / "r")]
    done = subprocess.run(
        [sys.executable, str(area["script"]), *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert f"cannot load the tokenizer from {broken.resolve()}: " in done.stderr
    assert "Traceback" not in done.stderr and not terminal_hazards(done.stderr)


# ---------------------------------------------------------------------------
# Escaping: the script's own function, its console, and what prints.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def script_text(tmp_path_factory) -> str:
    directory = tmp_path_factory.mktemp("script-text")
    return rendered_script(write_dlm(directory, {"base_model": "smollm2-135m"}))


@pytest.fixture(scope="module")
def escaping(script_text) -> dict[str, object]:
    """The script's own escaping code, defined once for the properties below."""
    return script_definitions(
        script_text,
        "EscapedConsole",
        "visible",
        "is_hidden",
        "escaped",
        "HIDDEN_CATEGORIES",
        "BLANK_GLYPHS",
        "NAMED_ESCAPES",
    )


@settings(max_examples=200, deadline=None)
@given(st.text() | st.sampled_from(NASTY_TEXT))
@example("\x1b]0;title\x07 \u202e \u200b \t\n\r \x85 \U0010ffff \ud83d")
def test_the_scripts_visible_is_dlm_gens(escaping, text):
    """The script cannot import dlm_gen: its copy must escape exactly the same characters
    (and leave nothing a terminal acts on)."""
    script_visible = escaping["visible"]
    assert script_visible(text) == visible(text)
    assert not terminal_hazards(script_visible(text))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text() | st.sampled_from(NASTY_TEXT), max_size=5))
def test_the_console_keeps_lines_and_tabs_and_escapes_the_rest(escaping, writes):
    """What a library prints (a warning, a log line, an error echoing a path) goes
    through EscapedConsole: line breaks and tabs stay, nothing else a terminal acts on."""
    stream = io.StringIO()
    console = escaping["EscapedConsole"](stream)
    for text in writes:
        assert console.write(text) == len(text)
    shown = stream.getvalue()
    assert not terminal_hazards(shown)
    joined = "".join(writes)
    assert shown.count("\n") == joined.count("\n") and shown.count("\t") == joined.count("\t")
    assert console.getvalue() == shown  # everything else is the stream's own


def _enclosing_functions(tree: ast.AST) -> dict[ast.AST, str]:
    """Each call node of the script with the name of the top-level def or class holding it."""
    owner = {}
    for node in tree.body:
        for inner in ast.walk(node):
            if isinstance(inner, ast.Call):
                owner[inner] = getattr(node, "name", "<module>")
    return owner


def test_every_print_and_write_of_the_script_goes_through_the_escaping(script_text):
    """The audit, kept: text leaves the script only through say/fail (console lines),
    EscapedConsole (everything else on the console) and write_atomically (the run card
    and run.json, whose lines write_run_card escapes)."""
    tree = ast.parse(script_text)
    owner = _enclosing_functions(tree)
    prints, exits, writes = [], [], []
    for call, function in owner.items():
        name = getattr(call.func, "id", None) or getattr(call.func, "attr", None)
        if name == "print" and (call.args or call.keywords) and function != "say":
            prints.append(function)
        if ast.unparse(call.func) == "sys.exit" and not (
            len(call.args) == 1 and isinstance(call.args[0], ast.Constant)
        ):
            exits.append(function)  # sys.exit(message) prints the message raw
        if name in ("write_text", "write_bytes") and function != "write_atomically":
            writes.append(function)
        if name in ("write", "writelines") and function != "EscapedConsole":
            writes.append(function)
    assert (prints, exits, writes) == ([], [], [])
    [main] = [node for node in tree.body if getattr(node, "name", None) == "main"]
    assert ast.unparse(main.body[0]) == "escape_console()"  # before argparse prints
    [card] = [node for node in tree.body if getattr(node, "name", None) == "write_run_card"]
    assert "visible(line) for line in lines" in ast.unparse(card)


# ---------------------------------------------------------------------------
# End to end on the tiny model: a hostile document, escaped on the console and in
# the run card, kept as it is in run.json.
# ---------------------------------------------------------------------------

HOSTILE_BODY = """Prose that clears \x1b[2J\x1b[H the screen.

::instruction::
### Q
What is \x1b]0;owned\x07 in \x1b[31mred\u202e?
### A
An answer\x1b[0m with\u200b hidden parts.

### Q
Second question?
### A
Second answer.
"""


@pytest.mark.slow
def test_a_hostile_document_trains_with_its_text_escaped_on_screen_and_in_the_card(
    tmp_path, tiny_model
):
    from dlm_gen.pipeline import plan_document
    from dlm_gen.render import write_atomically
    from tests.test_train_e2e import FAST

    frontmatter_prompt = "Be \x1b]0;pwned\x07 brief\u202e."
    frontmatter = {
        "base_model": str(tiny_model),
        "system_prompt": frontmatter_prompt,
        "training": {**FAST, "num_epochs": 1},
    }
    out = tmp_path / "generated"
    document = write_dlm(tmp_path, frontmatter, HOSTILE_BODY)
    script = write_atomically(out, plan_document(document, "cpu", out_dir=out).render(out))
    output_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, str(script), "--output-dir", str(output_dir), "--max-steps", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not terminal_hazards(done.stdout.replace("\ufffd", "")), done.stdout[-2000:]
    assert not terminal_hazards(done.stderr.replace("\ufffd", "")), done.stderr[-2000:]
    # The question is shown, escaped: not dropped.
    assert "Q: What is \\x1b]0;owned\\x07 in \\x1b[31mred\\u202e?" in done.stdout
    for card in (output_dir / "README.md", output_dir / "adapter" / "README.md"):
        text = card.read_text(encoding="utf-8")
        assert not terminal_hazards(text), (card, text)
        assert "\\x1b]0;owned\\x07" in text and "\\x1b]0;pwned\\x07" in text
    # run.json keeps the document's text as it is (JSON escapes it).
    [run_] = json.loads((output_dir / "run.json").read_text())["adapters"]
    assert "\x1b]0;owned\x07" in run_["samples"][0]["question"]
    assert run_["system_prompt"]["text"] == frontmatter_prompt

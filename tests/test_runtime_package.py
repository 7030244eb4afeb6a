"""The runtime is a package, and every script carries it verbatim (dlm_gen/runtime_text.py).

What the script relies on: the modules import nothing from the planning side and
only the standard library at module level; one namespace holds them all, so each
top-level name is defined once; every example script reaches main() before line 300,
carries the runtime byte for byte below its marker, and runs without dlm-gen."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dlm_gen.pipeline import read_document
from dlm_gen.plan import make_plans
from dlm_gen.render import render_plans
from dlm_gen.resources import data_dir
from dlm_gen.rules import load_rules
from dlm_gen.runtime import MODULES
from dlm_gen.runtime_text import END_LINE, RUNTIME_DIR, runtime_marker, runtime_text
from tests.conftest import EXAMPLES, ROOT, TINY_LLAMA_CONFIG

# The literals the template defines: no runtime name may shadow one.
TEMPLATE_NAMES = {
    "SCRIPT_HASH",
    "DLM_GEN_VERSION",
    "SOURCE_DOCUMENT",
    "TARGET",
    "REQUIREMENTS",
    "BASE_MODEL",
    "SYSTEM_PROMPT",
    "EXPORT",
    "LAUNCH",
    "PLAN",
    "ADAPTERS",
    "DATA",
    "SOURCES",
    "ROWS",
}


def modules() -> dict[str, ast.Module]:
    return {
        path.stem: ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(RUNTIME_DIR.glob("*.py"))
        if path.stem != "__init__"
    }


def top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_every_module_is_carried_once_in_order():
    assert set(MODULES) | {"main"} == set(modules())
    assert len(MODULES) == len(set(MODULES))


def test_the_runtime_imports_only_itself_and_the_standard_library_at_module_level():
    for name, tree in modules().items():
        for node in tree.body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] in sys.stdlib_module_names, (name, alias.name)
            elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
                assert node.level == 0, name
                root = node.module.split(".")[0]
                inside = node.module.startswith("dlm_gen.runtime.")
                assert inside or root in sys.stdlib_module_names, (name, node.module)


def test_no_function_imports_dlm_gen():
    """A function-level import of dlm_gen would fail in a script run without dlm-gen."""
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.col_offset > 0:
                assert not (node.module or "").startswith("dlm_gen"), (name, node.lineno)
            if isinstance(node, ast.Import) and node.col_offset > 0:
                assert not any(a.name.startswith("dlm_gen") for a in node.names), name


def test_each_top_level_name_is_defined_once_and_never_a_literals_name():
    seen: dict[str, str] = {}
    for name, tree in modules().items():
        for defined in top_level_names(tree):
            assert defined not in seen, f"{defined} is defined in {seen.get(defined)} and {name}"
            seen[defined] = name
    assert not (set(seen) & TEMPLATE_NAMES)


def test_every_runtime_import_names_what_its_module_defines():
    trees = modules()
    for name, tree in trees.items():
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "dlm_gen.runtime."
            ):
                source = node.module.removeprefix("dlm_gen.runtime.")
                defined = top_level_names(trees[source])
                for alias in node.names:
                    assert alias.name in defined, (name, source, alias.name)


def test_the_template_is_a_template():
    text = (data_dir("templates") / "train.py.j2").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert not any(line.lstrip().startswith(("def ", "class ")) for line in text.splitlines())


def example_scripts(directory: Path) -> list[tuple[str, str]]:
    """Every example rendered for its default target (the CPU where that one refuses it),
    from a copy of examples/ and docs/ beside a tiny model's config.json where the
    tiny-model examples look for it (runs/tiny-llama, which a clean checkout lacks)."""
    shutil.copytree(EXAMPLES, directory / "examples")
    shutil.copytree(ROOT / "docs", directory / "docs")
    (directory / "runs" / "tiny-llama").mkdir(parents=True)
    (directory / "runs" / "tiny-llama" / "config.json").write_text(json.dumps(TINY_LLAMA_CONFIG))
    rules = load_rules()
    rendered = []
    for path in sorted((directory / "examples").glob("*.dlm")):
        document = read_document(path)
        plans = make_plans(document, rules, None)
        if any(plan.refused for plan in plans):
            plans = make_plans(document, rules, "cpu")
        rendered.append((path.name, render_plans(document, plans, rules).text))
    return rendered


@pytest.fixture(scope="module")
def scripts(tmp_path_factory) -> list[tuple[str, str]]:
    return example_scripts(tmp_path_factory.mktemp("examples"))


def test_every_example_reaches_main_before_line_300(scripts):
    assert len(scripts) >= 8
    for name, text in scripts:
        lines = text.split("\n")
        main = next(i for i, line in enumerate(lines) if line.startswith("def main("))
        assert main + 1 < 300, (name, main + 1)


def test_everything_after_main_is_the_packages_code_verbatim(scripts):
    """Every function and class from main on appears, character for character, in the
    runtime package's source; the marker names the runtime's digest."""
    sources = "\n".join(p.read_text(encoding="utf-8") for p in RUNTIME_DIR.glob("*.py"))
    runtime = runtime_text()
    for name, text in scripts:
        tree = ast.parse(text)
        lines = text.split("\n")
        start = next(n.lineno for n in tree.body if getattr(n, "name", None) == "main")
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                assert node.lineno >= start, (name, node.name)
                code = "\n".join(lines[node.lineno - 1 : node.end_lineno])
                assert code in sources, (name, node.name)
        assert runtime_marker(text)[1] == runtime.sha256
        assert runtime.main in text and runtime.library in text
        assert text.index(runtime.marker) < text.index(runtime.library) < text.index(END_LINE)


def test_a_script_runs_without_dlm_gen(tmp_path, scripts):
    """--help with dlm_gen unimportable: nothing of the script reaches for the package."""
    _, text = scripts[0]
    script = tmp_path / "train_x.py"
    script.write_text(text, encoding="utf-8")
    probe = (
        "import runpy, sys\n"
        "sys.modules['dlm_gen'] = None\n"
        f"sys.argv = [{str(script)!r}, '--help']\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "--report-to" in done.stdout and "--output-dir" in done.stdout


def test_the_runtime_lays_out_as_the_script_needs():
    """Each module: imports first, then code; the merged import block is sorted."""
    runtime = runtime_text()
    block = runtime.imports.split("\n")
    assert block[0] == "from __future__ import annotations"
    plain = [line for line in block if line.startswith("import ")]
    assert plain == sorted(plain)
    assert "from pathlib import Path" in block  # the template's Script(path=Path(__file__))

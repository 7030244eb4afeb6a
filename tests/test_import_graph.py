"""The house: dlm-gen's modules import each other without a cycle (the planning side
in layers: document, then facts and rules, then the plan, then its views), and the
runtime package is a leaf that imports none of them."""

from __future__ import annotations

import ast
import json

from dlm_gen import rules as rules_module
from dlm_gen.resources import data_dir
from tests.conftest import ROOT

PACKAGE = ROOT / "dlm_gen"


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every import between dlm_gen's modules, at module level and inside functions."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dlm_gen"):
                targets.add(node.module)
                targets.update(
                    f"{node.module}.{alias.name}"
                    for alias in node.names
                    if f"{node.module}.{alias.name}" in modules
                )
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in modules)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_no_module_imports_itself_back():
    graph = import_graph()
    state: dict[str, str] = {}
    chain: list[str] = []

    def visit(name: str) -> None:
        state[name] = "open"
        chain.append(name)
        for target in sorted(graph[name]):
            assert state.get(target) != "open", " -> ".join([*chain, target])
            if target not in state:
                visit(target)
        chain.pop()
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_the_runtime_imports_nothing_of_the_planning_side():
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("dlm_gen.runtime."):
            assert all(t.startswith("dlm_gen.runtime") for t in targets), (name, targets)


def test_the_document_does_not_load_the_rules():
    """The rules' vocabulary reaches the document as its models (pipeline.read_document)."""
    graph = import_graph()
    assert not (graph["dlm_gen.document"] & {"dlm_gen.rules", "dlm_gen.facts", "dlm_gen.plan"})
    assert "dlm_gen.explain" not in graph["dlm_gen.render"]  # two views of one plan


def test_every_kind_of_table_has_its_reader():
    schema = json.loads((data_dir("schema") / "rules.schema.json").read_text())
    kinds = set(schema["properties"]["kind"]["enum"])
    assert kinds == set(rules_module._READERS)

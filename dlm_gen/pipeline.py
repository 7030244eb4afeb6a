"""The one path from a document to plans and a script: read, plan, refuse, render.

The CLI (explain, render, doctor), `check`, `diff` and the tests all go
through `plan_document`, so a step added here (a new check, a new input)
reaches every command at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dlm_gen.document import Document, load_document
from dlm_gen.errors import DlmError, Problem, RulesError
from dlm_gen.plan import Plan, make_plans, refusal_error
from dlm_gen.render import Rendered, render_plans
from dlm_gen.rules import RuleSet, load_rules

DEFAULT_OUT_DIR = "generated"  # render's and check's --out default


@dataclass(frozen=True)
class PlannedDocument:
    """A validated document and its plans (one per adapter) on one target."""

    document: Document
    plans: list[Plan]
    rules: RuleSet

    @property
    def refused(self) -> bool:
        return any(plan.refused for plan in self.plans)

    def refusal_error(self) -> DlmError | None:
        return refusal_error(self.document, self.plans)

    def render(self, out_dir: str | Path = "generated") -> Rendered:
        """The script, to be written into `out_dir`; a refused plan raises its refusals."""
        refused = self.refusal_error()
        if refused:
            raise refused
        return render_plans(self.document, self.plans, self.rules, out_dir)


def read_document(
    path: str | os.PathLike[str],
    data: bytes | None = None,
    *,
    rules: RuleSet | None = None,
    output_dir: str | os.PathLike[str] | None = None,
) -> Document:
    """`path` read and validated against the frontmatter models of `rules` (default: the
    shipped tables, or $DLM_GEN_RULES)."""
    rules = rules or load_rules()
    return load_document(path, data, models=rules.models(), output_dir=output_dir)


def plan_document(
    path: str | os.PathLike[str],
    target: str | None = None,
    processes: int | None = None,
    *,
    data: bytes | None = None,
    rules: RuleSet | None = None,
    out_dir: str | os.PathLike[str] = DEFAULT_OUT_DIR,
) -> PlannedDocument:
    """Read and validate `path` (or `data` named by it) and plan it for `target`.

    `out_dir` is where its script goes (render's and check's --out): `training.sources`
    never reads it, so commands that take no --out assume the default, as render does."""
    rules = rules or load_rules()
    document = read_document(path, data, rules=rules, output_dir=out_dir)
    return PlannedDocument(document, make_plans(document, rules, target, processes), rules)


def document_failure(file: str, exc: Exception) -> list[Problem]:
    """Why one document of a batch failed, as problems to report for it alone.

    A render or check of many documents reports each failure at its document and goes
    on with the others: an input error names its lines, a file that cannot be written
    names its path, and anything else (a bug) is still reported, never a traceback.
    Broken rule tables concern every document and are raised again."""
    if isinstance(exc, RulesError):
        raise exc
    if isinstance(exc, DlmError):
        return exc.problems
    if isinstance(exc, OSError):
        where = os.fsdecode(exc.filename) if exc.filename else file
        return [Problem(where, None, None, exc.strerror or str(exc))]
    return [
        Problem(
            file,
            None,
            None,
            f"dlm-gen failed on this document ({type(exc).__name__}: {exc}); this is a bug: "
            "please report it with the document",
        )
    ]

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
from dlm_gen.errors import DlmError
from dlm_gen.plan import Plan, make_plans, refusal_error
from dlm_gen.render import Rendered, render_plans
from dlm_gen.rules import RuleSet, load_rules


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


def plan_document(
    path: str | os.PathLike[str],
    target: str | None = None,
    processes: int | None = None,
    *,
    data: bytes | None = None,
    rules: RuleSet | None = None,
) -> PlannedDocument:
    """Read and validate `path` (or `data` named by it) and plan it for `target`."""
    rules = rules or load_rules()
    document = load_document(path, data, models=rules.models())
    return PlannedDocument(document, make_plans(document, rules, target, processes), rules)

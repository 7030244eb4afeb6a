"""`dlm-gen diff OLD NEW`: what a change does to the plan, for a pull request.

A reviewer sees a renamed `train_<hash>.py` and a changed literal; this says
why: per adapter each plan field that changed (old -> new, and the rule that
decided each side with its file:line), warnings and refusals added or
removed, requirements changed, and rows added, removed or changed (with their
document lines). Each side is a rendered script, a `.dlm` document (planned
for --target), or `REV:path` read from git (`HEAD:generated/train_x.py`).

Exit 0 when nothing but the hash changed, 1 when the plan or the rows did,
2 when a side cannot be read (like diff(1)).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from dlm_gen.errors import DlmError
from dlm_gen.files import InputFileError, read_bounded
from dlm_gen.rules import RuleSet

_REVISION = re.compile(r"^(?P<rev>[^:\s]+):(?P<path>.+)$")
_WARN = re.compile(r"warn=(\S+?)(?:,|$)")


@dataclass
class AdapterSide:
    """One adapter's plan on one side: values, deciding rules, warnings, refusals."""

    fields: dict[str, object]
    rules: dict[str, str]  # field -> rule id
    warnings: list[str]  # reason tokens
    refusals: dict[str, str]  # rule id -> message


@dataclass
class Side:
    label: str
    kind: str  # "script" or "document"
    hash: str | None
    adapters: dict[str, AdapterSide]  # adapter name ("" for a one-adapter document)
    requirements: list[str]
    rows: list[dict] = field(default_factory=list)


def load_side(given: str, rules: RuleSet, target: str | None, processes: int | None) -> Side:
    """A script, a document or REV:path, read into the same shape."""
    path, data = _locate(given)
    if path.suffix == ".dlm":
        return _document_side(given, path, data, rules, target, processes)
    return _script_side(given, data)


def _locate(given: str) -> tuple[Path, bytes]:
    path = Path(given)
    match = _REVISION.match(given)
    if match and not path.exists():
        try:
            done = subprocess.run(
                ["git", "show", f"{match['rev']}:{match['path']}"], capture_output=True
            )
        except OSError as exc:  # no git on this machine
            raise DlmError.one(given, None, None, f"cannot run git: {exc.strerror}") from None
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip() or "git show failed"
            raise DlmError.one(given, None, None, f"cannot read it from git: {message}")
        return Path(match["path"]), done.stdout
    try:
        return path, read_bounded(path, 2**26)
    except InputFileError as exc:
        raise DlmError.one(given, None, None, str(exc)) from None


def _document_side(
    label: str, path: Path, data: bytes, rules: RuleSet, target: str | None, processes: int | None
) -> Side:
    from dlm_gen.pipeline import plan_document
    from dlm_gen.plan import requirements_of
    from dlm_gen.render import script_rows

    planned = plan_document(path, target, processes, data=data, rules=rules)
    document, plans = planned.document, planned.plans
    adapters = {
        plan.adapter_name or "": AdapterSide(
            fields=dict(plan.fields),
            rules={d.field: d.rule for d in plan.decisions},
            warnings=[w.token or w.id for w in plan.warnings],
            refusals={r.id: " ".join(r.message.split()) for r in plan.refusals},
        )
        for plan in plans
    }
    script_hash = None if planned.refused else planned.render().script_hash
    return Side(
        label,
        "document",
        script_hash,
        adapters,
        list(requirements_of(plans)),
        script_rows(document),
    )


def _script_side(label: str, data: bytes) -> Side:
    try:
        text = data.decode("utf-8")
        tree = ast.parse(text)
        constants = {
            node.targets[0].id: ast.literal_eval(node.value)
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in ("SCRIPT_HASH", "ADAPTERS", "REQUIREMENTS", "ROWS")
        }
        entries = constants["ADAPTERS"]
    except (UnicodeDecodeError, SyntaxError, ValueError, KeyError, RecursionError):
        raise DlmError.one(
            label, None, None, "not a script rendered by dlm-gen (no readable ADAPTERS literal)"
        ) from None
    comments = rule_comments(text)
    adapters = {}
    for index, entry in enumerate(entries):
        rules = entry.get("decided_by") or (comments[index] if index < len(comments) else {})
        adapters[entry.get("name") or ""] = AdapterSide(
            fields=dict(entry["plan"]),
            rules=dict(rules),
            warnings=_WARN.findall(entry.get("reason", "")),
            refusals={},
        )
    return Side(
        label,
        "script",
        constants.get("SCRIPT_HASH"),
        adapters,
        list(constants.get("REQUIREMENTS", [])),
        list(constants.get("ROWS", [])),
    )


def rule_comments(script: str) -> list[dict[str, str]]:
    """Per adapter of a rendered script, each plan field's trailing `# rule-id` comment."""
    adapters: list[dict[str, str]] = []
    key = None
    item_indent = " " * 12  # ADAPTERS = [ { "plan": { <items> } } ]
    for line in script.split("\n"):
        if line == '        "plan": {':
            adapters.append({})
            continue
        if not adapters or not line.startswith(item_indent) or line[12:13] == " ":
            continue
        if line[12:13] == '"':
            key = line.strip().split('"')[1]
        if ",  # " in line and key is not None:
            adapters[-1][key] = line.rsplit(",  # ", 1)[1].strip()
    return adapters


@dataclass
class Difference:
    """What changed between two sides, in plan terms."""

    old: Side
    new: Side
    sources: dict[str, str]  # rule id -> file:line in today's tables
    adapters: list[dict] = field(default_factory=list)
    requirements_added: list[str] = field(default_factory=list)
    requirements_removed: list[str] = field(default_factory=list)
    rows: dict[str, list] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Whether the plan or the rows differ (the hash alone does not count)."""
        return (
            any(adapter[key] for adapter in self.adapters for key in ADAPTER_CHANGES)
            or bool(self.requirements_added or self.requirements_removed)
            or any(self.rows.values())
        )


# What an adapter's entry records as changed.
ADAPTER_CHANGES = (
    "status",
    "fields",
    "warnings_added",
    "warnings_removed",
    "refusals_added",
    "refusals_removed",
)


def compare_sides(old: Side, new: Side, rules: RuleSet) -> Difference:
    sources = {rule.id: rule.source for table in rules.tables for rule in table.rules}
    difference = Difference(old, new, sources)
    for name in sorted(set(old.adapters) | set(new.adapters)):
        before, after = old.adapters.get(name), new.adapters.get(name)
        entry: dict = {"name": name or None, "status": None}
        if before is None or after is None:
            entry["status"] = "added" if before is None else "removed"
        before = before or AdapterSide({}, {}, [], {})
        after = after or AdapterSide({}, {}, [], {})
        entry["fields"] = [
            {
                "field": key,
                "old": before.fields.get(key),
                "new": after.fields.get(key),
                "old_rule": before.rules.get(key),
                "new_rule": after.rules.get(key),
                "old_source": sources.get(before.rules.get(key, "")),
                "new_source": sources.get(after.rules.get(key, "")),
            }
            for key in _ordered_keys(before.fields, after.fields)
            if key not in before.fields
            or key not in after.fields
            or _canonical(before.fields[key]) != _canonical(after.fields[key])
        ]
        entry["warnings_added"] = [w for w in after.warnings if w not in before.warnings]
        entry["warnings_removed"] = [w for w in before.warnings if w not in after.warnings]
        entry["refusals_added"] = [
            {"id": k, "message": v} for k, v in after.refusals.items() if k not in before.refusals
        ]
        entry["refusals_removed"] = [
            {"id": k, "message": v} for k, v in before.refusals.items() if k not in after.refusals
        ]
        difference.adapters.append(entry)
    difference.requirements_added = [r for r in new.requirements if r not in old.requirements]
    difference.requirements_removed = [r for r in old.requirements if r not in new.requirements]
    difference.rows = _row_changes(old.rows, new.rows)
    return difference


def _ordered_keys(first: dict, second: dict) -> list[str]:
    return list(dict.fromkeys([*first, *second]))


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def _row_key(row: dict) -> str:
    """A row's identity apart from its line: the same text moved is not a change."""
    return _canonical({k: v for k, v in row.items() if k != "line"})


def _row_changes(old: list[dict], new: list[dict]) -> dict[str, list]:
    """Rows added and removed (by content), and changed (same place, other content)."""
    old_keys = [_row_key(r) for r in old]
    new_keys = [_row_key(r) for r in new]
    removed = [r for r, k in zip(old, old_keys, strict=True) if k not in new_keys]
    added = [r for r, k in zip(new, new_keys, strict=True) if k not in old_keys]
    changed = []
    for row in list(added):
        twin = next(
            (
                r
                for r in removed
                if r["kind"] == row["kind"]
                and r.get("adapter") == row.get("adapter")
                and (r.get("line") == row.get("line") or _same_question(r, row))
            ),
            None,
        )
        if twin is not None:
            changed.append({"old_line": twin.get("line"), "new_line": row.get("line")})
            added.remove(row)
            removed.remove(twin)
    return {
        "added": [r.get("line") for r in added],
        "removed": [r.get("line") for r in removed],
        "changed": changed,
    }


def _same_question(a: dict, b: dict) -> bool:
    return a["kind"] == "instruction" and a.get("question") == b.get("question")


def to_json(difference: Difference) -> dict:
    return {
        "old": {
            "label": difference.old.label,
            "kind": difference.old.kind,
            "hash": difference.old.hash,
        },
        "new": {
            "label": difference.new.label,
            "kind": difference.new.kind,
            "hash": difference.new.hash,
        },
        "changed": difference.changed,
        "adapters": difference.adapters,
        "requirements_added": difference.requirements_added,
        "requirements_removed": difference.requirements_removed,
        "rows": difference.rows,
    }


def _show(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _rule(rule: str | None, source: str | None) -> str:
    if rule is None:
        return "-"
    return f"{rule} ({source})" if source else f"{rule} (not in today's tables)"


def format_text(difference: Difference) -> str:
    old, new = difference.old, difference.new
    lines = [
        f"--- {old.label} ({old.hash or 'no script'})",
        f"+++ {new.label} ({new.hash or 'no script'})",
    ]
    if not difference.changed:
        lines.append(
            "the plan and the rows are the same"
            + ("; only the hash differs" if old.hash != new.hash else "")
        )
        return "\n".join(lines)
    for adapter in difference.adapters:
        title = f"adapter {adapter['name']}" if adapter["name"] else "plan"
        if adapter["status"]:
            lines.append(f"{title}: {adapter['status']}")
        changes = _adapter_lines(adapter)
        if changes:
            lines.append(f"{title}:")
            lines.extend(f"  {line}" for line in changes)
    for requirement in difference.requirements_added:
        lines.append(f"requirement added: {requirement}")
    for requirement in difference.requirements_removed:
        lines.append(f"requirement removed: {requirement}")
    lines.extend(_row_lines(difference.rows))
    return "\n".join(lines)


def _adapter_lines(adapter: dict) -> list[str]:
    lines = []
    for change in adapter["fields"]:
        lines.append(f"{change['field']}: {_show(change['old'])} -> {_show(change['new'])}")
        lines.append(
            f"    decided by {_rule(change['old_rule'], change['old_source'])} -> "
            f"{_rule(change['new_rule'], change['new_source'])}"
        )
    lines += [f"warning added: {w}" for w in adapter["warnings_added"]]
    lines += [f"warning removed: {w}" for w in adapter["warnings_removed"]]
    lines += [f"refusal added: {r['id']}: {r['message']}" for r in adapter["refusals_added"]]
    lines += [f"refusal removed: {r['id']}" for r in adapter["refusals_removed"]]
    return lines


def _row_lines(rows: dict[str, list]) -> list[str]:
    lines = []
    if rows.get("added"):
        lines.append(f"rows added: {len(rows['added'])} (document lines {_lines(rows['added'])})")
    if rows.get("removed"):
        lines.append(
            f"rows removed: {len(rows['removed'])} (old document lines {_lines(rows['removed'])})"
        )
    if rows.get("changed"):
        places = ", ".join(f"{c['old_line']}->{c['new_line']}" for c in rows["changed"])
        lines.append(f"rows changed: {len(rows['changed'])} (document lines {places})")
    return lines


def _lines(numbers: list) -> str:
    return ", ".join(str(n) for n in numbers)


def format_markdown(difference: Difference) -> str:
    """A block to paste into a pull request comment."""
    old, new = difference.old, difference.new
    out = [
        "### dlm-gen diff",
        "",
        f"`{_md(old.label)}` ({old.hash or 'no script'}) → "
        f"`{_md(new.label)}` ({new.hash or 'no script'})",
        "",
    ]
    if not difference.changed:
        out.append(
            "No change to the plan or the rows"
            + ("; only the hash differs." if old.hash != new.hash else ".")
        )
        return "\n".join(out)
    for adapter in difference.adapters:
        title = f"Adapter `{adapter['name']}`" if adapter["name"] else "Plan"
        if adapter["status"]:
            out += [f"**{title}: {adapter['status']}**", ""]
        if adapter["fields"]:
            out += [
                f"**{title}**",
                "",
                "| field | old | new | decided by (old → new) |",
                "|---|---|---|---|",
            ]
            for change in adapter["fields"]:
                out.append(
                    f"| `{change['field']}` | `{_md(_show(change['old']))}` | "
                    f"`{_md(_show(change['new']))}` | "
                    f"{_md(_rule(change['old_rule'], change['old_source']))} → "
                    f"{_md(_rule(change['new_rule'], change['new_source']))} |"
                )
            out.append("")
        others = _adapter_lines({**adapter, "fields": []})
        out += [f"- {_md(line)}" for line in others]
        if others:
            out.append("")
    out += [f"- requirement added: `{_md(r)}`" for r in difference.requirements_added]
    out += [f"- requirement removed: `{_md(r)}`" for r in difference.requirements_removed]
    out += [f"- {_md(line)}" for line in _row_lines(difference.rows)]
    return "\n".join(out).rstrip() + "\n"


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell or code span."""
    return str(text).replace("|", "\\|").replace("`", "'").replace("\n", " ")

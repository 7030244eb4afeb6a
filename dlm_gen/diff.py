"""`dlm-gen diff OLD NEW`: what a change does to the plan, for a pull request.

A reviewer sees a renamed `train_<hash>.py` and a changed literal; this says
why: per adapter each plan field that changed (old -> new, and the rule that
decided each side with its file:line), warnings and refusals added or
removed, requirements changed, and rows added, removed or changed (with their
document lines). Each side is a rendered script, a `.dlm` document (planned
for --target), or `REV:path` read from git (`HEAD:generated/train_x.py`).

A document at a revision is planned with the files it read at that revision
(its `training.sources` and a local base, dlm_gen/revtree.py); git is asked
only through dlm_gen/gitrev.py, which takes nothing typed as an option. A side
is read within the caps of rules/limits.yaml: a document within
max_document_bytes, a script within max_script_bytes, and a script's literals
one row at a time (never one syntax tree of the whole file), so memory stays
a small multiple of the cap; rows are compared by digest in linear time.

Exit 0 when nothing but the hash changed, 1 when the plan or the rows did,
2 when a side cannot be read (like diff(1)).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dlm_gen import __version__
from dlm_gen.errors import DlmError
from dlm_gen.files import InputFileError, read_bounded
from dlm_gen.gitrev import GitError, Repository, parse_revision, repository_path
from dlm_gen.limits import limits
from dlm_gen.readback import LiteralReader
from dlm_gen.rules import RuleSet
from dlm_gen.runtime_text import runtime_marker, runtime_text
from dlm_gen.shown import quoted

# The top-level literals a rendered script names, each at the start of a line.
_LITERALS = ("SCRIPT_HASH", "PLAN", "ADAPTERS", "REQUIREMENTS", "ROWS")
_ASSIGNMENT = re.compile(r"^(SCRIPT_HASH|PLAN|ADAPTERS|REQUIREMENTS|ROWS) = ", re.MULTILINE)
_CLOSING = {"[": "]", "{": "}", "(": ")"}
_ROW_END = "\n    },\n"  # a row of ROWS ends at its closing brace, indented one level


@dataclass
class AdapterSide:
    """One adapter's plan on one side: values, deciding rules, warnings, refusals."""

    fields: dict[str, object]
    rules: dict[str, str]  # field -> rule id
    warnings: list[str]  # reason tokens
    refusals: dict[str, str]  # rule id -> message


@dataclass(frozen=True, slots=True)
class RowDigest:
    """A row as the comparison needs it: where it is, and digests of what it says (a
    side keeps these, not the rows' text, so two sides at the caps fit in memory)."""

    kind: str
    adapter: str | None
    line: int | None
    key: bytes  # the row's content apart from its line: the same text moved is no change
    question: bytes | None  # an instruction's question, to pair an edited answer


@dataclass
class Side:
    label: str
    kind: str  # "script" or "document"
    hash: str | None
    adapters: dict[str, AdapterSide]  # adapter name ("" for a one-adapter document)
    requirements: list[str]
    rows: list[RowDigest] = field(default_factory=list)
    runtime: tuple[str, str] | None = None  # (dlm-gen version, runtime SHA-256)


def load_side(given: str, rules: RuleSet, target: str | None, processes: int | None) -> Side:
    """A script, a document or REV:path, read into the same shape (DlmError: exit 2)."""
    if ":" in given and not _exists(given):
        return _revision_side(given, rules, target, processes)
    path = Path(given)
    data = _read_file(given, _cap_for(given))
    if path.suffix == ".dlm":
        return _document_side(given, path, data, rules, target, processes)
    return _script_side(given, data)


def _exists(given: str) -> bool:
    try:
        return os.path.lexists(given)
    except ValueError:  # a NUL byte
        return False


def _cap_for(path: str) -> tuple[str, int]:
    """The cap a side is read within: a document's, or a rendered script's."""
    name = "max_document_bytes" if path.endswith(".dlm") else "max_script_bytes"
    return name, limits()[name]


def _read_file(given: str, cap: tuple[str, int]) -> bytes:
    try:
        return read_bounded(given, cap[1])
    except InputFileError as exc:
        raise DlmError.one(given, None, None, _over_cap(str(exc), cap)) from None
    except ValueError:  # a NUL byte in the name
        raise DlmError.one(given, None, None, "no such file") from None


def _over_cap(message: str, cap: tuple[str, int]) -> str:
    if message.startswith(("file is", "file grew")):
        return f"{message} (rules/limits.yaml {cap[0]})"
    return message


def _revision_side(given: str, rules: RuleSet, target: str | None, processes: int | None) -> Side:
    """REV:PATH, checked before git runs, read through dlm_gen/gitrev.py."""
    try:
        revision = parse_revision(given)
    except GitError as exc:
        raise DlmError.one(given, None, None, f"not a file, and not REV:PATH: {exc}") from None
    caps = limits()
    try:
        with Repository(Path.cwd(), caps["git_wall_seconds"]) as repo:
            path = repository_path(revision.path, repo.prefix)
            commit = repo.commit(revision.rev)
            cap = _cap_for(path)
            data = _blob_at(repo, commit, revision.rev, path, cap)
            if not path.endswith(".dlm"):
                return _script_side(given, data)
            return _document_at(
                given, repo, commit, revision.rev, path, data, rules, target, processes
            )
    except GitError as exc:
        raise DlmError.one(given, None, None, f"cannot read it from git: {exc}") from None


def _blob_at(repo: Repository, commit: str, rev: str, path: str, cap: tuple[str, int]) -> bytes:
    """The file at `path` in `commit`: a regular file within `cap`, else GitError."""
    entry = repo.entry(commit, path, limits()["max_source_files_walked"])
    if entry is None:
        raise GitError(f"no file '{path}' at {rev}")
    if entry.is_link:
        raise GitError(f"'{path}' is a symbolic link at {rev}: name the file it points to")
    if entry.type != "blob" or entry.size is None:
        raise GitError(f"'{path}' is a {entry.type} at {rev}, expected a file")
    if entry.size > cap[1]:
        raise GitError(
            f"'{path}' is {entry.size} bytes at {rev}; the limit is {cap[1]} bytes "
            f"(rules/limits.yaml {cap[0]})"
        )
    return repo.blob(entry.oid, cap[1])


def _document_at(
    label: str,
    repo: Repository,
    commit: str,
    rev: str,
    path: str,
    data: bytes,
    rules: RuleSet,
    target: str | None,
    processes: int | None,
) -> Side:
    """The document at a revision, planned beside the files it read at that revision."""
    from dlm_gen.revtree import laid_out

    with laid_out(repo, commit, rev, path, data) as root:
        out = root.joinpath(repo.prefix) / "generated"  # where render from here would write
        try:
            return _document_side(label, root / path, None, rules, target, processes, out)
        except DlmError as exc:
            raise _relabeled(exc, root, rev) from None


def _relabeled(error: DlmError, root: Path, rev: str) -> DlmError:
    """Problems named as REV:path, never by the temporary directory they were read in."""
    prefix = str(root) + os.sep

    def named(text: str) -> str:
        return text.replace(prefix, f"{rev}:")

    return DlmError(
        [
            dataclasses.replace(problem, file=named(problem.file), message=named(problem.message))
            for problem in error.problems
        ]
    )


def _document_side(
    label: str,
    path: Path,
    data: bytes | None,
    rules: RuleSet,
    target: str | None,
    processes: int | None,
    out: Path | None = None,
) -> Side:
    from dlm_gen.pipeline import DEFAULT_OUT_DIR, plan_document
    from dlm_gen.plan import requirements_of

    out_dir = out or Path(DEFAULT_OUT_DIR)
    planned = plan_document(path, target, processes, data=data, rules=rules, out_dir=out_dir)
    plans = planned.plans
    adapters = {
        plan.adapter_name or "": AdapterSide(
            fields=dict(plan.fields),
            rules={d.field: d.rule for d in plan.decisions},
            warnings=[w.token or w.id for w in plan.warnings],
            refusals={r.id: " ".join(r.message.split()) for r in plan.refusals},
        )
        for plan in plans
    }
    script_hash = None if planned.refused else planned.render(out_dir).script_hash
    return Side(
        label,
        "document",
        script_hash,
        adapters,
        list(requirements_of(plans)),
        [_digest(row) for row in plans[0].script_rows],
        (__version__, runtime_text().sha256),
    )


def _digest(row: dict) -> RowDigest:
    """A row's place and the digests of its content (and of its question)."""
    content = {k: v for k, v in row.items() if k != "line"}
    question = row.get("question") if row.get("kind") == "instruction" else None
    return RowDigest(
        str(row.get("kind")),
        row.get("adapter"),
        row.get("line"),
        _sha(_canonical(content)),
        None if question is None else _sha(_canonical(question)),
    )


def _sha(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class _NotAScript(Exception):
    """The text is not laid out as a script dlm-gen renders."""


def _script_side(label: str, data: bytes) -> Side:
    try:
        text = data.decode("utf-8")
        spans = _literal_spans(text)
        reader = LiteralReader(limits()["max_script_literal_tokens"])
        entries = _literal(text, spans["ADAPTERS"], reader)
        script_hash = (
            _literal(text, spans["SCRIPT_HASH"], reader) if "SCRIPT_HASH" in spans else None
        )
        requirements = (
            _literal(text, spans["REQUIREMENTS"], reader) if "REQUIREMENTS" in spans else []
        )
        rows = (
            [_digest(row) for row in _rows(text, spans["ROWS"], reader)] if "ROWS" in spans else []
        )
        # PLAN: what every adapter shares (scripts from before it hold whole plans).
        shared = _literal(text, spans["PLAN"], reader) if "PLAN" in spans else {}
        shared_rules = rule_comments(text[slice(*spans["PLAN"])], 4) if "PLAN" in spans else [{}]
        comments = rule_comments(text[slice(*spans["ADAPTERS"])], 12)
        adapters = {}
        for index, entry in enumerate(entries):
            own = entry.get("decided_by") or (comments[index] if index < len(comments) else {})
            adapters[entry.get("name") or ""] = AdapterSide(
                fields={**shared, **entry["plan"]},
                rules={**shared_rules[0], **own},
                warnings=warning_tokens(str(entry.get("reason", ""))),
                refusals={},
            )
    except (
        UnicodeDecodeError,
        SyntaxError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        RecursionError,
        MemoryError,
        _NotAScript,
    ):
        raise DlmError.one(
            label, None, None, "not a script rendered by dlm-gen (no readable ADAPTERS literal)"
        ) from None
    return Side(
        label, "script", script_hash, adapters, list(requirements), rows, runtime_marker(text)
    )


def _literal_spans(text: str) -> dict[str, tuple[int, int]]:
    """Where each literal of _LITERALS lies: from after `NAME = ` to past its closing
    bracket, found by the layout dlm-gen writes (one item per line, the closing
    bracket alone at the start of a line), without parsing the rest of the file."""
    spans: dict[str, tuple[int, int]] = {}
    for match in _ASSIGNMENT.finditer(text):
        name, start = match[1], match.end()
        if name in spans:
            continue
        line_end = text.find("\n", start)
        line_end = len(text) if line_end < 0 else line_end
        opening = text[start:line_end]
        if opening in _CLOSING:
            close = text.find("\n" + _CLOSING[opening] + "\n", line_end)
            if close < 0:
                raise _NotAScript(name)
            spans[name] = (start, close + 2)
        else:
            spans[name] = (start, line_end)
        if len(spans) == len(_LITERALS):
            break
    return spans


def _literal(text: str, span: tuple[int, int], reader: LiteralReader) -> object:
    return reader.read(text[span[0] : span[1]])


def _rows(text: str, span: tuple[int, int], reader: LiteralReader) -> Iterator[dict]:
    """The rows of ROWS, each parsed on its own: memory for one row, not for the file."""
    start, end = span
    if text[start:end] == "[]":
        return
    if text[start : start + 2] != "[\n":
        raise _NotAScript("ROWS")
    position, body_end = start + 2, end - 1  # after "[\n"; at the closing "]"
    while position < body_end:
        close = text.find(_ROW_END, position, body_end + 1)
        if close < 0:
            raise _NotAScript("ROWS")
        row = reader.read(text[position : close + len(_ROW_END) - 2])
        if not isinstance(row, dict) or not isinstance(row.get("kind"), str):
            raise _NotAScript("ROWS")
        yield row
        position = close + len(_ROW_END)
    if position != body_end:
        raise _NotAScript("ROWS")


def warning_tokens(reason: str) -> list[str]:
    """The `warn=` tokens of a reason line, in one pass over it (a script's reason is
    input: a regex that searched for each token's end from every `warn=` was quadratic
    in a hand-made line without commas)."""
    tokens = (part.strip() for part in reason.split(","))
    return [
        token.removeprefix("warn=")
        for token in tokens
        if token.startswith("warn=")
        and len(token) > len("warn=")
        and not any(c.isspace() for c in token)
    ]


def rule_comments(literal: str, indent: int) -> list[dict[str, str]]:
    """Each plan field's trailing `# rule-id` comment in a rendered plan literal: PLAN's
    items are indented 4 (one dict), ADAPTERS' 12 (`"plan": {` opens each adapter's)."""
    plans: list[dict[str, str]] = [{}] if indent == 4 else []
    key = None
    item_indent = " " * indent
    for line in literal.split("\n"):
        if indent == 12 and line in ('        "plan": {', '        "plan": {},'):
            plans.append({})
            continue
        if not plans or not line.startswith(item_indent) or line[indent : indent + 1] == " ":
            continue
        if line[indent : indent + 1] == '"':
            key = line.strip().split('"')[1]
        if ",  # " in line and key is not None:
            plans[-1][key] = line.rsplit(",  # ", 1)[1].strip()
    return plans


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
    def runtime_changed(self) -> bool:
        """Whether the sides carry different runtimes (code, not plan: exit 0 alone)."""
        return self.old.runtime != self.new.runtime

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


def _row_changes(old: list[RowDigest], new: list[RowDigest]) -> dict[str, list]:
    """Rows added and removed (by content), and changed (same place, other content).

    An added row pairs with the first removed row of its kind and adapter at the
    same line, or (an instruction) with the same question; indexes by place and by
    question keep this linear in the rows, not quadratic."""
    old_keys, new_keys = {r.key for r in old}, {r.key for r in new}
    removed = [r for r in old if r.key not in new_keys]
    added = [r for r in new if r.key not in old_keys]
    by_line: dict[tuple, deque[int]] = {}
    by_question: dict[tuple, deque[int]] = {}
    for index, row in enumerate(removed):
        by_line.setdefault((row.kind, row.adapter, row.line), deque()).append(index)
        if row.kind == "instruction":
            by_question.setdefault((row.adapter, row.question), deque()).append(index)
    paired: set[int] = set()
    changed, unpaired = [], []
    for row in added:
        candidates = [by_line.get((row.kind, row.adapter, row.line))]
        if row.kind == "instruction":
            candidates.append(by_question.get((row.adapter, row.question)))
        found = [_first_unpaired(c, paired) for c in candidates if c]
        twin = min((index for index in found if index is not None), default=None)
        if twin is None:
            unpaired.append(row)
            continue
        paired.add(twin)
        changed.append({"old_line": removed[twin].line, "new_line": row.line})
    return {
        "added": [r.line for r in unpaired],
        "removed": [r.line for index, r in enumerate(removed) if index not in paired],
        "changed": changed,
    }


def _first_unpaired(queue: deque[int], paired: set[int]) -> int | None:
    """The first index of `queue` not paired yet (paired ones are dropped as seen)."""
    while queue and queue[0] in paired:
        queue.popleft()
    return queue[0] if queue else None


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
        "runtime": {
            "changed": difference.runtime_changed,
            "old": _runtime_json(difference.old.runtime),
            "new": _runtime_json(difference.new.runtime),
        },
        "adapters": difference.adapters,
        "requirements_added": difference.requirements_added,
        "requirements_removed": difference.requirements_removed,
        "rows": difference.rows,
    }


def _runtime_json(runtime: tuple[str, str] | None) -> dict[str, str] | None:
    return None if runtime is None else {"dlm_gen": runtime[0], "sha256": runtime[1]}


def runtime_line(difference: Difference) -> str | None:
    """One line for a runtime change (the code below the script's marker), never the
    code itself: `runtime: dlm-gen 0.1.0 (sha256 3f2a91c0d4e5) -> ...`."""
    if not difference.runtime_changed:
        return None

    def named(runtime: tuple[str, str] | None) -> str:
        if runtime is None:
            return "none (no runtime marker)"
        return f"dlm-gen {runtime[0]} (sha256 {runtime[1][:12]})"

    return f"runtime: {named(difference.old.runtime)} -> {named(difference.new.runtime)}"


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
    runtime = runtime_line(difference)
    if runtime:
        lines.append(runtime)
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
        lines.append(f"{change['field']}: {quoted(change['old'])} -> {quoted(change['new'])}")
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
    runtime = runtime_line(difference)
    if runtime:
        out += [f"- {_md(runtime)}", ""]
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
                    f"| `{change['field']}` | `{_md(quoted(change['old']))}` | "
                    f"`{_md(quoted(change['new']))}` | "
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

"""Read a `.dlm` file: frontmatter, body sections and training rows, with lines.

The body is split by fence lines (`::instruction::`, `::preference::`,
`::prose::`, each optionally tagged `#adapter_name`) that stand alone on a
line outside a ``` code block. Text outside any fence is prose. Every row keeps
the line it starts on, so that errors and the generated script can point at it.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import compress, count, repeat

from pydantic import ValidationError

from dlm_gen import yamlsrc
from dlm_gen.errors import DlmError, Problem
from dlm_gen.files import InputFileError, read_bounded
from dlm_gen.limits import limits
from dlm_gen.schema import Frontmatter, FrontmatterModels, TrainingConfig
from dlm_gen.schema_errors import problems_from_validation
from dlm_gen.sources import SourceReport, expand_sources

SECTION_KINDS = ("prose", "instruction", "preference")
_FENCE_LIKE = re.compile(r"^::.*::$")
_FENCE = re.compile(r"^::(?P<kind>[a-z]+)(?:#(?P<name>[a-z][a-z0-9_]{0,31}))?::$")
_CODE_FENCE = re.compile(r"^(?P<marker>`{3,}|~{3,})(?P<rest>.*)$")
_HEADINGS = {
    "instruction": ("### Q", "### A"),
    "preference": ("### Prompt", "### Chosen", "### Rejected"),
}


class CodeBlocks:
    """Markdown code blocks, line by line: fence lines inside them are text.

    A block opens at a line starting with three or more backticks or tildes
    and closes at a line of the same character, at least as long, with nothing
    after it (CommonMark's rule).
    """

    def __init__(self) -> None:
        self.marker: str | None = None
        self.opened_at: int | None = None

    @property
    def open(self) -> bool:
        return self.marker is not None

    def feed(self, stripped: str, number: int) -> None:
        fence = _CODE_FENCE.match(stripped)
        if fence is None:
            return
        marker = fence["marker"]
        if self.marker is None:
            self.marker, self.opened_at = marker, number
        elif (
            marker[0] == self.marker[0]
            and len(marker) >= len(self.marker)
            and not fence["rest"].strip()
        ):
            self.marker, self.opened_at = None, None

    def unclosed_problem(self, file: str) -> Problem | None:
        if self.marker is None:
            return None
        return Problem(
            file,
            self.opened_at,
            None,
            f"code block opened here with {self.marker!r} is never closed: expected a "
            f"closing {self.marker!r} line; every later line (including ### headings and "
            "::fence:: lines) would be read as code",
        )


@dataclass(frozen=True)
class TextRow:
    """Continued-pretraining text from a prose section."""

    line: int
    adapter: str | None
    text: str
    source: str | None = None  # the file under training.sources it was read from


@dataclass(frozen=True)
class InstructionRow:
    """A `### Q` / `### A` pair."""

    line: int
    adapter: str | None
    question: str
    answer: str


@dataclass(frozen=True)
class PreferenceRow:
    """A `### Prompt` / `### Chosen` / `### Rejected` triple."""

    line: int
    adapter: str | None
    prompt: str
    chosen: str
    rejected: str


Row = TextRow | InstructionRow | PreferenceRow


@dataclass(frozen=True)
class Section:
    kind: str
    adapter: str | None
    line: int
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Document:
    """A parsed, validated `.dlm` document."""

    path: str
    frontmatter: Frontmatter
    sections: tuple[Section, ...]
    field_lines: dict[tuple[str | int, ...], int]
    frontmatter_line: int
    sources: tuple[SourceReport, ...] = ()  # what training.sources read, per directive

    @property
    def training(self) -> TrainingConfig:
        return self.frontmatter.training

    @property
    def adapter_names(self) -> list[str | None]:
        """The named adapters, or `[None]` for a single-adapter document."""
        adapters = self.training.adapters
        return sorted(adapters) if adapters else [None]

    @property
    def rows(self) -> list[Row]:
        return [row for section in self.sections for row in section.rows]

    def written_line(self, dotted_field: str) -> int | None:
        """The line of a frontmatter field (or of the block holding it), if written."""
        path: tuple[str | int, ...] = tuple(dotted_field.split("."))
        while path:
            if path in self.field_lines:
                return self.field_lines[path]
            path = path[:-1]
        return None

    def line_of(self, dotted_field: str) -> int:
        """The line of a frontmatter field such as `training.optimizer` (or its parent)."""
        return self.written_line(dotted_field) or self.frontmatter_line


def load_document(
    path: str | os.PathLike[str],
    data: bytes | None = None,
    *,
    models: FrontmatterModels,
    output_dir: str | os.PathLike[str] | None = None,
) -> Document:
    """Read, parse and validate a `.dlm` file; raises `DlmError` with every problem.

    `data` is the file's content when it does not come from the file itself (a
    git revision, for `dlm-gen diff`); `path` still names it and anchors its
    relative paths. `models` are the frontmatter models of the rule set the
    document is planned with (the vocabulary is the rules'; `pipeline.read_document`
    passes the loaded set's). `output_dir`: where its script goes, never read by
    `training.sources`.
    """
    file = str(path)
    caps = limits()  # rules/limits.yaml: documents are corpora written by hand, not dumps
    text = _read_text(file, caps["max_document_bytes"], data)
    front_text, front_start, body_lines, body_start = _split_frontmatter(file, text)
    front = _migrated(yamlsrc.load(front_text, file, line_offset=front_start - 1))
    problems: list[Problem] = []
    frontmatter = _validate_frontmatter(models.frontmatter, file, front, front_start, problems)
    sections = _parse_body(file, body_lines, body_start, problems)
    sources: list[SourceReport] = []
    if frontmatter is not None and frontmatter.training.sources:
        sources, source_problems = expand_sources(
            file,
            frontmatter.training.sources,
            frontmatter.training.sources_policy == "strict",
            front.line_of,
            caps["max_document_bytes"] - len(text.encode("utf-8")),
            caps["max_source_files_walked"],
            output_dir=output_dir,
        )
        problems.extend(source_problems)
        sections.extend(_source_sections(sources))
    if frontmatter is not None:
        _check_adapter_tags(file, frontmatter, sections, problems)
        _check_caps(file, frontmatter, front, sections, caps, problems)
    if problems or frontmatter is None:
        raise DlmError(problems)
    return Document(file, frontmatter, tuple(sections), front.lines, front_start, tuple(sources))


def _source_sections(reports: list[SourceReport]) -> list[Section]:
    """One prose section per directive, one row per file, at the directive's `path:` line."""
    return [
        Section(
            "prose",
            None,
            report.line,
            tuple(TextRow(report.line, None, f.row_text, f.relpath) for f in report.files),
        )
        for report in reports
        if report.files
    ]


def _migrated(front: yamlsrc.SourcedYaml) -> yamlsrc.SourcedYaml:
    """The dlm format's v1 -> v2 migration, in memory: a `dlm_version: 1` document's
    `training.dpo` becomes `training.preference` (the only one of its migrations that
    changes data). Errors in the moved fields still point at their lines under `dpo:`."""
    value = front.value
    if not isinstance(value, dict) or value.get("dlm_version") != 1:
        return front
    training = value.get("training")
    if not isinstance(training, dict) or "dpo" not in training:
        return front
    dpo = training["dpo"]
    lines = dict(front.lines)
    old, new = ("training", "dpo"), ("training", "preference")
    if old in lines:
        lines[new] = lines[old]
    preference: object = dpo
    if isinstance(dpo, dict):
        moved: dict[str, object] = {"method": "dpo"}
        hyperparams: dict[str, object] = {}
        for key, item in dpo.items():
            if key in ("beta", "learning_rate", "num_epochs"):
                hyperparams[key] = item
                target: tuple[str | int, ...] = (*new, "hyperparams", key)
            else:
                renamed = (key, item) == ("reference", "pre_dpo_adapter")
                moved[key] = "pre_adapter" if renamed else item
                target = (*new, key)
            if (*old, key) in lines:
                lines[target] = lines[(*old, key)]
        if hyperparams:
            moved["hyperparams"] = hyperparams
        preference = moved
    migrated = {k: v for k, v in training.items() if k != "dpo"}
    if "preference" in training:  # both spellings: let validation name the old one
        migrated["dpo"] = dpo
    else:
        migrated["preference"] = preference
    return dataclasses.replace(front, value={**value, "training": migrated}, lines=lines)


def _read_text(file: str, limit: int, data: bytes | None = None) -> str:
    """The document's text: a regular file (symlinks followed) within the limit, UTF-8."""
    try:
        if data is None:
            data = read_bounded(file, limit)
        elif len(data) > limit:
            raise InputFileError(f"file is {len(data)} bytes; the limit is {limit} bytes")
    except InputFileError as exc:
        message = str(exc)
        if message.startswith(("file is", "file grew")):
            message += (
                f" ({limit / 2**20:g} MiB, rules/limits.yaml max_document_bytes): split the "
                "corpus into several documents"
            )
        elif message.startswith("is a directory"):
            message = "is a directory, expected a .dlm file"
        raise DlmError.one(file, None, None, message) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DlmError.one(
            file,
            line,
            None,
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


def _split_frontmatter(file: str, text: str) -> tuple[str, int, list[str], int]:
    """Return (frontmatter text, its first line, body lines, the body's first line)."""
    # Split on "\n" only: str.splitlines() would also break inside text at
    # \x0b, \x0c, \x1c-\x1e, \x85, \u2028 and \u2029, and change the rows.
    lines = text.split("\n")
    if "\r" in text:  # CRLF: one pass over the lines only when there is a CR to drop
        lines = [line.removesuffix("\r") for line in lines]
    if text.endswith("\n"):
        lines.pop()
    if "\r" in text and "\n" not in text:
        raise DlmError.one(
            file,
            1,
            None,
            "the lines end in a carriage return alone (old Mac line endings); save the "
            "document with LF (or CRLF) line endings",
        )
    if not lines or lines[0].rstrip() != "---":
        raise DlmError.one(
            file,
            1,
            None,
            "no frontmatter: a .dlm document starts with a '---' line, then YAML "
            "(base_model, training, ...), then a closing '---' line",
        )
    for index in range(1, len(lines)):
        if lines[index].rstrip() in ("---", "..."):
            return "\n".join(lines[1:index]), 2, lines[index + 1 :], index + 2
    raise DlmError.one(
        file, 1, None, "unterminated frontmatter: the opening '---' has no closing '---' line"
    )


def _validate_frontmatter(
    model: type[Frontmatter],
    file: str,
    front: yamlsrc.SourcedYaml,
    first_line: int,
    problems: list[Problem],
) -> Frontmatter | None:
    if not isinstance(front.value, dict):
        got = "nothing" if front.value is None else type(front.value).__name__
        message = f"frontmatter must be a YAML mapping with at least base_model, got {got}"
        problems.append(Problem(file, first_line, None, message))
        return None
    try:
        return model.model_validate(front.value)
    except ValidationError as exc:
        problems.extend(problems_from_validation(file, front, exc))
        return None


def _parse_body(file: str, lines: list[str], first_line: int, problems: list[Problem]):
    """Split the body into sections at fence lines outside code blocks."""
    sections: list[Section] = []
    kind, adapter, start, chunk_start = "prose", None, first_line, 0
    code = CodeBlocks()

    def close_section(chunk: list[str]) -> None:
        rows = _parse_section(file, kind, adapter, start, chunk, problems)
        if rows or kind != "prose":
            sections.append(Section(kind, adapter, start, tuple(rows)))

    for offset in _significant_lines(lines):
        stripped = lines[offset].strip()
        number = first_line + offset
        if not stripped.startswith(":"):  # '`' or '~': maybe a code fence, never a fence line
            if stripped.startswith(("```", "~~~")):
                code.feed(stripped, number)
            continue
        if code.open or not _FENCE_LIKE.match(stripped) or len(stripped) < 4:
            continue  # text of the current section
        fence = _FENCE.match(stripped)
        if fence is None or fence["kind"] not in SECTION_KINDS:
            problems.append(Problem(file, number, None, _bad_fence_message(stripped)))
            continue
        close_section(lines[chunk_start:offset])
        kind, adapter, start, chunk_start = fence["kind"], fence["name"], number, offset + 1
        if kind == "prose" and adapter is not None:
            problems.append(
                Problem(file, number, None, "prose sections cannot be tagged to an adapter")
            )
    close_section(lines[chunk_start:])
    unclosed = code.unclosed_problem(file)
    if unclosed is not None:
        problems.append(unclosed)
    return sections


# The lines that can open or close a section or a code block: stripped, they start
# with ':' (a fence line) or with '`' or '~' (a code fence). Every other line is text
# of the section it is in, passed over in blocks at C speed (the regular expression's
# `\s` is what str.strip() strips: both ask Py_UNICODE_ISSPACE), not a Python step a
# line: 16 MiB of blank lines took 5.8 s one line at a time.
_SIGNIFICANT_STARTS = (":", "`", "~")
_SIGNIFICANT = re.compile(r"^[^\S\n]*[:`~]", re.MULTILINE)
_BLOCK_LINES = 1024  # lines looked over at once (any size gives the same answer)


def _significant_lines(lines: list[str]) -> Iterator[int]:
    """The indexes, in order, of the lines that may be fence or code-fence lines."""
    for first in range(0, len(lines), _BLOCK_LINES):
        block = lines[first : first + _BLOCK_LINES]
        if _SIGNIFICANT.search("\n".join(block)):
            starts = map(str.startswith, map(str.lstrip, block), repeat(_SIGNIFICANT_STARTS))
            yield from compress(count(first), starts)


UNSUPPORTED_SECTIONS = ("image", "audio")  # the dlm format's media sections


def _bad_fence_message(fence: str) -> str:
    word = fence.strip(":").split("#")[0]
    if (word.split() or [""])[0] in UNSUPPORTED_SECTIONS:
        kind = word.split()[0]
        return (
            f"::{kind}:: sections (the dlm format's {kind} inputs) are not supported: "
            "dlm-gen trains text-only causal language models; remove the section, or "
            "train this document with the dlm tool"
        )
    close = difflib.get_close_matches(word, SECTION_KINDS, n=1, cutoff=0.6)
    hint = f"; did you mean '::{close[0]}::'?" if close else ""
    return (
        f"invalid fence line '{fence[:80]}': expected ::instruction::, ::preference:: or "
        f"::prose::, optionally tagged like ::instruction#name:: with a name matching "
        f"[a-z][a-z0-9_]{{0,31}}{hint}"
    )


def _parse_section(
    file: str,
    kind: str,
    adapter: str | None,
    start: int,
    lines: list[str],
    problems: list[Problem],
) -> list[Row]:
    if kind == "prose":
        text = "\n".join(lines).strip()
        if not text:
            return []
        first = start + next(i for i, line in enumerate(lines) if line.strip())
        return [TextRow(first, adapter, text)]
    headings = _HEADINGS[kind]
    lines = _without_markers(file, kind, start, lines, problems)
    rows: list[Row] = []
    parts: list[str] = []  # finished texts of the record being read
    current: list[str] | None = None  # lines under the latest heading
    record_line = start
    code = CodeBlocks()

    def finish_record() -> None:
        if current is not None:
            parts.append("\n".join(current).strip())
        if not parts:
            return
        if len(parts) < len(headings):
            problems.append(
                Problem(
                    file,
                    record_line,
                    None,
                    f"'{headings[0]}' block has no '{headings[len(parts)]}' after it",
                )
            )
        elif not all(parts):
            empty = headings[parts.index("")]
            problems.append(Problem(file, record_line, None, f"'{empty}' has no text"))
        elif kind == "instruction":
            rows.append(InstructionRow(record_line, adapter, parts[0], parts[1]))
        else:
            rows.append(PreferenceRow(record_line, adapter, parts[0], parts[1], parts[2]))

    for number, raw in enumerate(lines, start=start + 1):
        code.feed(raw.strip(), number)
        heading = None if code.open else raw.rstrip()
        misplaced = _misplaced_heading(kind, heading)
        if misplaced is not None:
            problems.append(Problem(file, number, None, misplaced))
            return rows
        if heading not in headings:
            if current is not None:
                current.append(raw)
            elif raw.strip():
                problems.append(
                    Problem(file, number, None, f"text before the first '{headings[0]}'")
                )
                return rows
            continue
        if heading == headings[0]:
            finish_record()
            parts, current, record_line = [], [], number
            continue
        expected = len(parts) + (current is not None)
        if current is None or headings.index(heading) != expected:
            in_record = current is not None and expected < len(headings)
            wanted = headings[expected] if in_record else headings[0]
            problems.append(Problem(file, number, None, f"'{heading}' here, expected '{wanted}'"))
            return rows
        parts.append("\n".join(current).strip())
        current = []
    finish_record()
    if not rows and not parts:
        problems.append(Problem(file, start, None, f"::{kind}:: section has no '{headings[0]}'"))
    return rows


def _misplaced_heading(kind: str, heading: str | None) -> str | None:
    """Why a heading of another section kind cannot stand here, or None.

    A `### Q` / `### A` pair inside a ::preference:: section (or a `### Prompt`
    inside an ::instruction:: one) was meant as its own record; read as text it
    would silently train as part of the answer or rejected text around it.
    """
    for other, theirs in _HEADINGS.items():
        if other != kind and heading in theirs and heading not in _HEADINGS[kind]:
            return (
                f"'{heading}' is a heading of ::{other}:: sections, not of this ::{kind}:: "
                "one, where it would become part of the text above it: put the fence line "
                f"::{other}:: before it, or indent it or put it in a code block if it is text"
            )
    return None


# The provenance comments the dlm tool writes right after a section's fence line
# (`dlm harvest`, `dlm preference mine`, `dlm synth instructions`), and the
# sections each may follow. They are metadata, not training text.
_MARKER = re.compile(r"^<!-- (?P<name>dlm-auto-[a-z]+):.* -->$")
MARKER_SECTIONS = {
    "dlm-auto-harvest": ("instruction", "preference"),
    "dlm-auto-mined": ("preference",),
    "dlm-auto-synth": ("instruction",),
}


def _without_markers(
    file: str, kind: str, start: int, lines: list[str], problems: list[Problem]
) -> list[str]:
    """The section's lines with its leading dlm-auto-* markers blanked (lines stay put)."""
    kept = list(lines)
    for index, raw in enumerate(lines):
        if not raw.strip():
            continue
        marker = _MARKER.match(raw.strip())
        if marker is None or marker["name"] not in MARKER_SECTIONS:
            break
        allowed = MARKER_SECTIONS[marker["name"]]
        if kind not in allowed:
            where = " or ".join(f"::{k}::" for k in allowed)
            problems.append(
                Problem(
                    file,
                    start + 1 + index,
                    None,
                    f"the {marker['name']} marker belongs after a {where} fence line, "
                    f"not in a ::{kind}:: section",
                )
            )
        kept[index] = ""
    return kept


def _check_adapter_tags(
    file: str, frontmatter: Frontmatter, sections: list[Section], problems: list[Problem]
) -> None:
    declared = frontmatter.training.adapters or {}
    for section in sections:
        if section.adapter is None or section.adapter in declared:
            continue
        if not declared:
            message = (
                f"section tagged '#{section.adapter}' but training.adapters is not set; "
                "declare the adapter there or remove the tag"
            )
        else:
            message = (
                f"section tagged '#{section.adapter}', which training.adapters does not "
                f"declare (declared: {', '.join(sorted(declared))})"
            )
        problems.append(Problem(file, section.line, None, message))


def _check_caps(
    file: str,
    frontmatter: Frontmatter,
    front: yamlsrc.SourcedYaml,
    sections: list[Section],
    caps: dict[str, int],
    problems: list[Problem],
) -> None:
    """Rows and adapters within rules/limits.yaml, so the script stays reviewable."""
    adapters = frontmatter.training.adapters or {}
    if len(adapters) > caps["max_adapters"]:
        problems.append(
            Problem(
                file,
                front.line_of(("training", "adapters")),
                "training.adapters",
                f"{len(adapters)} adapters; the limit is {caps['max_adapters']} "
                "(rules/limits.yaml max_adapters): split them over several documents",
            )
        )
    rows = [row for section in sections for row in section.rows]
    if len(rows) > caps["max_rows"]:
        first_over = rows[caps["max_rows"]]
        problems.append(
            Problem(
                file,
                first_over.line,
                None,
                f"{len(rows)} rows; the limit is {caps['max_rows']} (rules/limits.yaml "
                "max_rows) and this is the first row over it: split the corpus into "
                "several documents",
            )
        )

"""`training.sources`: files whose text trains as prose rows, read with the document.

The dlm format lets a document point at files (a repository, a notes folder)
instead of pasting them. Each directive is walked when the document is read:
files in lexicographic order of their path relative to the directive's root,
`exclude` first, then `include`, then `max_files`; binary files (a NUL byte in
the first KiB), files that are not UTF-8, empty files and files over
`max_bytes_per_file` are skipped and counted. Each file kept becomes one
prose row headed `# source: <relpath>`, so two files with the same text stay
two rows.

The rows are embedded in the script like the body's rows: the script stays
standalone, its hash covers every file's text, and `dlm-gen check` calls a
script stale once a source file changes. Paths stay as written (relative, or
with '~'), so no directory of the rendering machine leaks into the script.
Under `sources_policy: strict` every path, and every file reached through a
symlink, must stay under the document's directory. The dlm tool's
per-directory configs (`.dlm/ignore`, `.dlm/training.yaml`) are not read; one
the directive would train is refused rather than trained as text.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dlm_gen.errors import Problem
from dlm_gen.files import InputFileError, read_bounded
from dlm_gen.schema_blocks import SourceDirective

BINARY_PROBE_BYTES = 1024  # grep's heuristic: a NUL byte in the first KiB
# Why a file is skipped, and how the header and `explain` say it.
SKIP_REASONS = {
    "binary": "binary",
    "not_utf8": "not UTF-8",
    "empty": "empty",
    "over_max_bytes": "over max_bytes_per_file",
    "over_max_files": "beyond max_files",
    "unreadable": "unreadable",
}


@dataclass(frozen=True)
class SourceFile:
    """One file kept: its path under the directive's root, its digest and its text."""

    relpath: str
    sha256: str
    size: int
    text: str

    @property
    def row_text(self) -> str:
        return f"# source: {self.relpath}\n\n{self.text}"


@dataclass(frozen=True)
class SourceReport:
    """What one directive contributed: the files kept and the ones skipped, by reason."""

    path: str  # as the document wrote it
    line: int
    files: tuple[SourceFile, ...]
    skipped: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "files": [{"path": f.relpath, "sha256": f.sha256, "bytes": f.size} for f in self.files],
            "bytes": sum(f.size for f in self.files),
            "skipped": {reason: n for reason, n in self.skipped.items() if n},
        }

    def describe(self) -> str:
        total = sum(f.size for f in self.files)
        skipped = ", ".join(f"{n} {SKIP_REASONS[r]}" for r, n in self.skipped.items() if n)
        files = "file" if len(self.files) == 1 else "files"
        return f"{self.path}: {len(self.files)} {files}, {total} bytes" + (
            f" (skipped: {skipped})" if skipped else ""
        )


class _Refused(Exception):
    """A directive that cannot be read as written; the message goes to the line of its
    `field` (`path` unless a pattern is at fault)."""

    def __init__(self, message: str, field: str = "path") -> None:
        super().__init__(message)
        self.field = field


def expand_sources(
    document_path: str,
    directives: list[SourceDirective],
    strict: bool,
    line_of: Callable[[tuple[str | int, ...]], int],
    budget: int,
    max_walked: int,
) -> tuple[list[SourceReport], list[Problem]]:
    """Walk each directive; `budget` bytes of source text at most, `max_walked` files seen."""
    document_dir = Path(document_path).parent
    reports: list[SourceReport] = []
    problems: list[Problem] = []
    for index, directive in enumerate(directives):
        line = line_of(("training", "sources", index, "path"))
        try:
            report = _expand(directive, line, document_dir, strict, budget, max_walked)
        except _Refused as exc:
            where = ("training", "sources", index, exc.field)
            field = ".".join(str(part) for part in where)
            problems.append(Problem(document_path, line_of(where), field, str(exc)))
            continue
        budget -= sum(f.size for f in report.files)
        reports.append(report)
    return reports, problems


def _expand(
    directive: SourceDirective,
    line: int,
    document_dir: Path,
    strict: bool,
    budget: int,
    max_walked: int,
) -> SourceReport:
    written = directive.path
    root = document_dir / os.path.expanduser(written)
    if strict and not _is_under(root, document_dir):
        raise _Refused(
            f"'{written}' resolves outside the document's directory, and sources_policy is "
            "strict: move the files under the document, or set sources_policy: permissive"
        )
    try:
        exists, is_dir = root.exists(), root.is_dir()
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long, a loop of links
        raise _Refused(
            f"cannot read '{written}': {getattr(exc, 'strerror', None) or exc}"
        ) from None
    if not exists:
        anchor = (
            ""
            if os.path.isabs(os.path.expanduser(written))
            else " (relative to the document's directory)"
        )
        raise _Refused(f"no such file or directory '{written}'{anchor}")
    candidates = _walk(root, max_walked, written) if is_dir else [(root.name, root)]
    excluded, included = _globs(directive.exclude, "exclude"), _globs(directive.include, "include")
    chosen = [
        (relpath, path)
        for relpath, path in candidates
        if not any(p.fullmatch(relpath) for p in excluded)
        and any(p.fullmatch(relpath) for p in included)
    ]
    for relpath, _ in chosen:
        if re.search(r"(?:^|/)\.dlm/(?:ignore|training\.yaml)$", relpath):
            raise _Refused(
                f"'{written}/{relpath}' is one of the dlm tool's per-directory configs "
                "(.dlm/ignore, .dlm/training.yaml), which dlm-gen does not read: write its "
                "patterns into this directive's include/exclude, and exclude '**/.dlm/**'"
            )
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    if directive.max_files is not None and len(chosen) > directive.max_files:
        skipped["over_max_files"] = len(chosen) - directive.max_files
        chosen = chosen[: directive.max_files]
    files: list[SourceFile] = []
    for relpath, path in chosen:
        if strict and not _is_under(path, document_dir):
            raise _Refused(
                f"'{written}/{relpath}' is a link to a file outside the document's "
                "directory, and sources_policy is strict: exclude it or remove the link"
            )
        kept = _read(path, directive.max_bytes_per_file, budget, skipped, written)
        if kept is not None:
            data, text = kept
            budget -= len(data)
            files.append(SourceFile(relpath, hashlib.sha256(data).hexdigest(), len(data), text))
    return SourceReport(written, line, tuple(files), skipped)


def _read(
    path: Path, max_bytes: int | None, budget: int, skipped: dict[str, int], written: str
) -> tuple[bytes, str] | None:
    """The file's bytes and text, or None when it is skipped (counted in `skipped`)."""
    try:
        size = path.stat().st_size
    except OSError:
        skipped["unreadable"] += 1
        return None
    if max_bytes is not None and size > max_bytes:
        skipped["over_max_bytes"] += 1
        return None
    if size > budget:
        raise _Refused(
            f"the files under '{written}' add more text than the document may hold (the "
            "document and its sources together: rules/limits.yaml max_document_bytes); "
            "narrow include, add exclude patterns or set max_bytes_per_file"
        )
    try:
        data = read_bounded(path, budget)
    except InputFileError:  # not a regular file, no permission, or it grew
        skipped["unreadable"] += 1
        return None
    if b"\0" in data[:BINARY_PROBE_BYTES]:
        skipped["binary"] += 1
        return None
    try:
        text = data.decode("utf-8").removeprefix("\ufeff").replace("\r\n", "\n")
    except UnicodeDecodeError:
        skipped["not_utf8"] += 1
        return None
    if not text.strip():
        skipped["empty"] += 1
        return None
    return data, text


def _walk(root: Path, max_walked: int, written: str) -> list[tuple[str, Path]]:
    """Every file under `root` (links to directories are not followed), sorted by relpath."""
    found: list[tuple[str, Path]] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in filenames:
            path = Path(directory) / name
            found.append((path.relative_to(root).as_posix(), path))
            if len(found) > max_walked:
                raise _Refused(
                    f"more than {max_walked} files under '{written}' "
                    "(rules/limits.yaml max_source_files_walked): point the directive at "
                    "a smaller directory"
                )
    return sorted(found, key=lambda item: item[0])


def _is_under(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _globs(patterns: list[str], field: str) -> list[re.Pattern[str]]:
    """The directive's patterns compiled; one that is no glob is refused at its line."""
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(_glob(pattern))
        except re.error as exc:  # e.g. a character class [z-a]
            raise _Refused(
                f"pattern {pattern[:80]!r} is not a valid glob: {exc.msg}", field
            ) from None
    return compiled


def _glob(pattern: str) -> re.Pattern[str]:
    """A POSIX glob as a regex over a relative path: '**/' spans directories, '*' and '?'
    stay within one, '[...]' is a character class."""
    out, index = [], 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        elif pattern[index] == "[" and "]" in pattern[index + 2 :]:
            end = pattern.index("]", index + 2)
            body = pattern[index + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            index = end + 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(out), re.DOTALL)

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

Inputs are bounded: globs are matched by an automaton in time linear in
(pattern x name), never by a backtracking regular expression, and their
length and number are capped (rules/limits.yaml max_glob_chars,
max_globs_per_source); the files seen under all directives together are
capped (max_source_files_walked), and so is the work of matching them
(max_glob_work: 64 long patterns against 12,000 files under 3,700-character
paths took 45 s; the automaton now remembers its moves and the states along
the previous path, and what is left is counted). File names are kept as the
OS gives them (undecodable bytes as surrogate escapes, exact in the script's
literals). The render's output directory is never read as a source, nor a
file linked into it: a script that embedded the previous script would never
match `dlm-gen check`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dlm_gen.errors import Problem
from dlm_gen.files import InputFileError, read_bounded
from dlm_gen.globs import GlobError, GlobSet, compile_glob, parse_glob
from dlm_gen.limits import limits
from dlm_gen.schema_blocks import SourceDirective
from dlm_gen.shown import one_line

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

    relpath: str  # as the OS gives it: undecodable bytes are surrogate escapes
    sha256: str
    size: int
    text: str

    @property
    def row_text(self) -> str:
        """The row: the file's text under a header naming it. The header is training text,
        so a name's undecodable bytes are written as escapes (a tokenizer refuses lone
        surrogates); the exact name stays in the row's `source` and in SOURCES."""
        name = self.relpath.encode("utf-8", "backslashreplace").decode("utf-8")
        return f"# source: {name}\n\n{self.text}"


@dataclass(frozen=True)
class SourceReport:
    """What one directive contributed: the files kept and the ones skipped, by reason."""

    path: str  # as the document wrote it
    line: int
    files: tuple[SourceFile, ...]
    skipped: dict[str, int] = field(default_factory=dict)
    # The render's output directory relative to the directive's root, when the directive
    # covers it: never read ('..'-prefixed when the whole directive lies inside it).
    output_dir: str | None = None
    # Links to files in the output directory that the directive's patterns chose: not read.
    output_links: int = 0

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "path": self.path,
            "line": self.line,
            "files": [{"path": f.relpath, "sha256": f.sha256, "bytes": f.size} for f in self.files],
            "bytes": sum(f.size for f in self.files),
            "skipped": {reason: n for reason, n in self.skipped.items() if n},
        }
        if self.output_dir is not None:  # only then: other documents keep their hash
            data["output_dir_not_read"] = self.output_dir
        if self.output_links:
            data["output_links_not_read"] = self.output_links
        return data

    def describe(self) -> str:
        """One line for the script's header and `explain --verbose`."""
        total = sum(f.size for f in self.files)
        skipped = ", ".join(f"{n} {SKIP_REASONS[r]}" for r, n in self.skipped.items() if n)
        files = "file" if len(self.files) == 1 else "files"
        return (
            f"{one_line(self.path)}: {len(self.files)} {files}, {total} bytes"
            + (f" (skipped: {skipped})" if skipped else "")
            + self._output_note()
        )

    def _output_note(self) -> str:
        """What the directive left out because it is the render's output directory."""
        links = ""
        if self.output_links:
            plural = "link" if self.output_links == 1 else "links"
            links = f"; {self.output_links} {plural} into the output directory not read"
        if self.output_dir is None:
            return links
        if _within_output(self.output_dir):
            return "; it lies in the output directory, which is never read"
        return f"; output directory {one_line(self.output_dir)} not read" + links


class _Refused(Exception):
    """A directive that cannot be read as written; the message goes to the line of `where`
    under the directive (its `path` unless a pattern is at fault)."""

    def __init__(self, message: str, where: tuple[str | int, ...] = ("path",)) -> None:
        super().__init__(message)
        self.where = where


@dataclass
class _Budget:
    """What the directives may still use, all together: bytes of text, files seen and
    glob matching work (dlm_gen/globs.py's units)."""

    text_bytes: int
    files_walked: int
    max_walked: int
    glob_work: int = 0


def expand_sources(
    document_path: str,
    directives: list[SourceDirective],
    strict: bool,
    line_of: Callable[[tuple[str | int, ...]], int],
    budget: int,
    max_walked: int,
    *,
    output_dir: str | os.PathLike[str] | None = None,
) -> tuple[list[SourceReport], list[Problem]]:
    """Walk each directive; `budget` bytes of source text at most, and `max_walked` files
    seen under all the directives together. Nothing under `output_dir` is read."""
    document_dir = Path(document_path).parent
    output = Path(output_dir) if output_dir is not None else None
    remaining = _Budget(budget, max_walked, max_walked, limits()["max_glob_work"])
    reports: list[SourceReport] = []
    problems: list[Problem] = []
    for index, directive in enumerate(directives):
        line = line_of(("training", "sources", index, "path"))
        try:
            report = _expand(directive, line, document_dir, strict, remaining, output)
        except _Refused as exc:
            where = ("training", "sources", index, *exc.where)
            field_name = ".".join(str(part) for part in where)
            problems.append(Problem(document_path, line_of(where), field_name, str(exc)))
            continue
        reports.append(report)
    return reports, problems


def _expand(
    directive: SourceDirective,
    line: int,
    document_dir: Path,
    strict: bool,
    budget: _Budget,
    output: Path | None,
) -> SourceReport:
    written = directive.path
    _check_glob_count(directive)
    excluded, included = _globs(directive.exclude, "exclude"), _globs(directive.include, "include")
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
    output_rel = _output_relative(root, output)
    if output_rel is not None and _within_output(output_rel):
        return SourceReport(written, line, (), dict.fromkeys(SKIP_REASONS, 0), output_rel)
    if not is_dir:
        output_rel = None  # nothing lies under a file
    if is_dir:
        candidates = _walk(root, budget, written, output_rel)
    else:
        _count_walked(budget, 1, written)
        candidates = [(root.name, root)]
    chosen = _chosen(candidates, excluded, included, budget, written)
    if output is not None and is_dir:
        into_output = _links_into(output, chosen)
        chosen = [item for item in chosen if item[1] not in into_output]
    else:
        into_output = set()
    for relpath, _ in chosen:
        if _is_dlm_config(relpath):
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
        kept = _read(path, directive.max_bytes_per_file, budget.text_bytes, skipped, written)
        if kept is not None:
            data, text = kept
            budget.text_bytes -= len(data)
            files.append(SourceFile(relpath, hashlib.sha256(data).hexdigest(), len(data), text))
    return SourceReport(written, line, tuple(files), skipped, output_rel, len(into_output))


def _links_into(output: Path, chosen: list[tuple[str, Path]]) -> set[Path]:
    """The chosen files that are links to a path in the output directory. The walk never
    enters the output directory or follows a link to a directory, so only a file's own
    name can lead there. Decided from the paths alone, as `_output_relative` is (a link
    to a script not written yet is one too), so that render and check read alike."""
    try:
        out = output.resolve()
    except (OSError, RuntimeError, ValueError):
        return set()
    found = set()
    for _, path in chosen:
        try:
            if path.is_symlink() and path.resolve().is_relative_to(out):
                found.add(path)
        except (OSError, RuntimeError, ValueError):  # a loop of links: unreadable, later
            continue
    return found


def _chosen(
    candidates: list[tuple[str, Path]],
    excluded: GlobSet,
    included: GlobSet,
    budget: _Budget,
    written: str,
) -> list[tuple[str, Path]]:
    """The candidates `included` matches and `excluded` does not, their matching work
    spent from the budget: a directive that goes past it is refused."""
    chosen = []
    for relpath, path in candidates:
        if not excluded.matches(relpath) and included.matches(relpath):
            chosen.append((relpath, path))
        if excluded.work + included.work > budget.glob_work:
            raise _Refused(
                f"matching the include and exclude patterns against the files under "
                f"'{written}' goes past the work all directives may spend on it "
                "(rules/limits.yaml max_glob_work): use fewer or shorter patterns, or "
                "point the directive at a smaller directory"
            )
    budget.glob_work -= excluded.work + included.work
    return chosen


def _is_dlm_config(relpath: str) -> bool:
    """Whether `relpath` is a `.dlm/ignore` or `.dlm/training.yaml` (at any depth)."""
    return any(
        relpath == name or relpath.endswith("/" + name)
        for name in (".dlm/ignore", ".dlm/training.yaml")
    )


def _output_relative(root: Path, output: Path | None) -> str | None:
    """Where the output directory is from the directive's root, when one holds the other:
    a relative path below the root, '.' when they are one, '../..' style when the root
    lies inside it; None when neither holds the other (or either cannot be resolved).

    Decided from the paths alone, never from what the output directory holds, so a
    render and the next `check` read the same files whether or not it exists yet."""
    if output is None:
        return None
    try:
        out, here = output.resolve(), root.resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if out == here or out.is_relative_to(here) or here.is_relative_to(out):
        return Path(os.path.relpath(out, here)).as_posix()
    return None


def _within_output(output_rel: str) -> bool:
    """Whether the directive's root lies in the output directory (`output_rel` is the
    latter's path from the former: '.', '..', '../..', ...)."""
    return output_rel in (".", "..") or output_rel.startswith("../")


def _read(
    path: Path, max_bytes: int | None, budget: int, skipped: dict[str, int], written: str
) -> tuple[bytes, str] | None:
    """The file's bytes and text, or None when it is skipped (counted in `skipped`)."""
    try:
        size = path.stat().st_size
    except (OSError, ValueError):
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
    except (InputFileError, ValueError):  # not a regular file, no permission, it grew
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


def _walk(
    root: Path, budget: _Budget, written: str, output_rel: str | None
) -> list[tuple[str, Path]]:
    """Every file under `root` (links to directories are not followed, the output
    directory is not entered), sorted by relpath; each counts against the budget."""
    found: list[tuple[str, Path]] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        if output_rel is not None:
            here = Path(directory)
            dirnames[:] = [
                name
                for name in dirnames
                if (here / name).relative_to(root).as_posix() != output_rel
            ]
        _count_walked(budget, len(filenames), written)
        for name in filenames:
            path = Path(directory) / name
            found.append((path.relative_to(root).as_posix(), path))
    return sorted(found, key=lambda item: item[0])


def _count_walked(budget: _Budget, count: int, written: str) -> None:
    """Spend `count` files of the walk budget, refusing the directive that overspends."""
    budget.files_walked -= count
    if budget.files_walked < 0:
        raise _Refused(
            f"more than {budget.max_walked} files under the training.sources paths (by "
            f"'{written}'; rules/limits.yaml max_source_files_walked): point the directives "
            "at smaller directories"
        )


def _is_under(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _check_glob_count(directive: SourceDirective) -> None:
    """Refuse more include and exclude patterns than the cap, at the longer list."""
    cap = limits()["max_globs_per_source"]
    count = len(directive.include) + len(directive.exclude)
    if count > cap:
        longer = "include" if len(directive.include) >= len(directive.exclude) else "exclude"
        raise _Refused(
            f"{count} include and exclude patterns; the limit is {cap} (rules/limits.yaml "
            "max_globs_per_source): split the directive, or match with fewer, broader "
            "patterns",
            (longer,),
        )


def _globs(patterns: list[str], field_name: str) -> GlobSet:
    """The directive's `include` or `exclude` compiled; a pattern that is no glob, or
    longer than the cap, is refused at its own line."""
    max_chars = limits()["max_glob_chars"]
    for index, pattern in enumerate(patterns):
        if len(pattern) > max_chars:
            raise _Refused(
                f"pattern {pattern[:40]!r}... is {len(pattern)} characters; the limit is "
                f"{max_chars} (rules/limits.yaml max_glob_chars): match the long parts "
                "with wildcards",
                (field_name, index),
            )
        try:
            parse_glob(pattern)
        except GlobError as exc:  # e.g. a character class [z-a]
            raise _Refused(
                f"pattern {pattern[:80]!r} is not a valid glob: {exc}", (field_name, index)
            ) from None
    return GlobSet(patterns)


def _glob(pattern: str) -> GlobSet:
    """One pattern compiled (the tests read it like a regular expression: `fullmatch`)."""
    return compile_glob(pattern)

"""A document at a git revision, laid out in a temporary directory as the repository
held it, so that it is planned with the files it read at that revision.

`dlm-gen diff HEAD:doc.dlm doc.dlm` compares the old document with today's; the old
one's `training.sources` and local `base_model` must be read as they were at HEAD,
or a change to a source file alone would read as "the same". The document is
written at its path under a temporary directory, and beside it every file of
those directives at the revision (listed with `git ls-tree`, sizes first, read with
`git cat-file`), so the one document reader plans it unchanged.

Bounds: the entries listed are capped by rules/limits.yaml max_source_files_walked
and the bytes read by max_document_bytes (the document included); a file too large
for the document's text budget, or over its directive's max_bytes_per_file, is
never read by `training.sources`, so it is laid out as an empty (sparse) file of
its size. A path outside the repository (absolute, '~', or '..' above its top) has
no content at a revision and is refused, as is a link stored in git whose target
resolves outside the temporary tree, and a submodule. Nothing is written outside
the temporary directory, which is always removed.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dlm_gen import yamlsrc
from dlm_gen.basemodels import is_written_as_path, normalized_path
from dlm_gen.errors import DlmError
from dlm_gen.gitrev import _PATH_MAX, Entry, GitError, Repository
from dlm_gen.limits import limits

_LINK = "120000"
_SUBMODULE = "160000"


@dataclass(frozen=True)
class References:
    """What a document reads beside itself: a local base and the sources' paths."""

    base: str | None = None  # base_model, when written as a path
    sources: tuple[tuple[str, int | None], ...] = ()  # (path, max_bytes_per_file)


def references(data: bytes) -> References:
    """The paths a document's frontmatter names, read leniently: a document that does
    not parse names nothing here, and the reader then reports it at its lines."""
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return References()
    front = _frontmatter(text)
    if front is None:
        return References()
    try:
        value = yamlsrc.load(front, "frontmatter").value
    except DlmError:
        return References()
    if not isinstance(value, dict):
        return References()
    base = value.get("base_model")
    training = value.get("training")
    directives = training.get("sources") if isinstance(training, dict) else None
    sources = tuple(
        (item["path"], _whole_number(item.get("max_bytes_per_file")))
        for item in (directives if isinstance(directives, list) else [])
        if isinstance(item, dict) and isinstance(item.get("path"), str)
    )
    return References(base if isinstance(base, str) and is_written_as_path(base) else None, sources)


def _frontmatter(text: str) -> str | None:
    """The text between the opening '---' line and the closing one (as the reader splits)."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if not lines or lines[0].rstrip() != "---":
        return None
    for index in range(1, len(lines)):
        if lines[index].rstrip() in ("---", "..."):
            return "\n".join(lines[1:index])
    return None


def _whole_number(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class _Layout:
    """The temporary tree being filled, and what it may still take."""

    repo: Repository
    commit: str
    rev: str
    root: Path
    text_budget: int  # bytes the document's sources may hold (max_document_bytes - document)
    bytes_left: int
    entries_left: int
    asked: set[str] = field(default_factory=set)  # repository paths looked up
    placeholders: dict[str, Entry] = field(default_factory=dict)  # laid out unread
    links: dict[str, str] = field(default_factory=dict)  # link path -> its target
    parents: dict[str, dict[str, Entry]] = field(default_factory=dict)  # listings by path

    def place(self, path: str) -> Path:
        """`path`'s place under the root: every component a plain name, every parent a
        directory of this tree (never a link). A crafted tree could name '..' or reach
        through a link it also holds; neither may place a file outside the root."""
        parts = path.split("/")
        if any(part in ("", ".", "..") or "\0" in part for part in parts):
            raise GitError(f"the tree at {self.rev} holds an impossible path {path!r}")
        directory = self.root
        for part in parts[:-1]:  # one component at a time, never through a link
            directory = directory / part
            try:
                os.mkdir(directory, 0o700)
            except FileExistsError:
                if os.path.islink(directory) or not os.path.isdir(directory):
                    raise GitError(f"'{path}' at {self.rev} lies under a symbolic link") from None
        return directory / parts[-1]

    def write(self, path: str, data: bytes, size: int | None = None) -> None:
        """A file at `path`: `data`, or with `size`, an unread (sparse) file that long."""
        target = self.place(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(target, flags, 0o600)
        try:
            if size is not None:
                os.ftruncate(descriptor, size)
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
        finally:
            os.close(descriptor)

    def add(self, path: str, max_bytes: int | None) -> None:
        """Lay out what the revision holds at `path` (a file, or a directory's files)."""
        if path in self.asked:
            self._read_placeholders(path, max_bytes)
            return
        self.asked.add(path)
        self._count(1)
        entries = self._entries(path)
        for entry in entries:
            self._lay_out(entry, max_bytes)

    def _entries(self, path: str) -> list[Entry]:
        found = self._lookup(path)
        if found is None:
            return []  # the reader says "no such file or directory" at the directive
        if found.type != "tree":
            return [found]
        entries = self.repo.list_tree(found.oid, path, recursive=True, cap=self.entries_left)
        self._count(len(entries))
        return entries

    def _lookup(self, path: str) -> Entry | None:
        """The entry at `path`, from its parent's listing (listed once, counted)."""
        if path == "":
            top = self.repo.object(f"{self.commit}:")
            return None if top is None else Entry("040000", "tree", top[0], None, "")
        parent = path.rpartition("/")[0]
        if parent not in self.parents:
            found = self.repo.object(f"{self.commit}:{parent}")
            listing: list[Entry] = []
            if found is not None and found[1] == "tree":
                listing = self.repo.list_tree(found[0], parent, False, self.entries_left)
                self._count(len(listing))
            self.parents[parent] = {entry.path: entry for entry in listing}
        return self.parents[parent].get(path)

    def _count(self, entries: int) -> None:
        self.entries_left -= entries
        if self.entries_left < 0:
            raise GitError(
                f"the files the document reads at {self.rev} are more than rules/limits.yaml "
                "max_source_files_walked"
            )

    def _lay_out(self, entry: Entry, max_bytes: int | None) -> None:
        if entry.mode == _SUBMODULE:
            raise GitError(
                f"'{entry.path}' is a git submodule at {self.rev}: diff cannot read its "
                "files at a revision"
            )
        if entry.is_link:
            if entry.size is None or entry.size > _PATH_MAX:
                raise GitError(
                    f"'{entry.path}' is a symbolic link at {self.rev} whose target is longer "
                    "than any path"
                )
            target = self.repo.blob(entry.oid, _PATH_MAX)
            if b"\0" in target or not target:
                raise GitError(f"'{entry.path}' is a symbolic link at {self.rev} to no path")
            self.links[entry.path] = os.fsdecode(target)
            return
        if entry.type != "blob" or entry.size is None:
            return
        if os.path.lexists(self.root / entry.path):
            if entry.path in self.placeholders:
                self._read_placeholder(entry.path, max_bytes)
            return
        if entry.size > min(self.text_budget, max_bytes if max_bytes is not None else entry.size):
            self.placeholders[entry.path] = entry  # never read: its size alone decides
            self.write(entry.path, b"", size=entry.size)
            return
        self._read(entry)

    def _read(self, entry: Entry) -> None:
        assert entry.size is not None
        self.bytes_left -= entry.size
        if self.bytes_left < 0:
            raise GitError(
                f"the files the document reads at {self.rev} hold more than rules/limits.yaml "
                "max_document_bytes before include and exclude are applied: diff cannot "
                "read them at a revision; diff the rendered scripts instead"
            )
        self.write(entry.path, self.repo.blob(entry.oid, entry.size))

    def _read_placeholder(self, path: str, max_bytes: int | None) -> None:
        """A file laid out unread for one directive that another may read: read it."""
        entry = self.placeholders[path]
        assert entry.size is not None
        limit = min(self.text_budget, max_bytes if max_bytes is not None else entry.size)
        if entry.size <= limit:
            del self.placeholders[path]
            self._read(entry)

    def _read_placeholders(self, path: str, max_bytes: int | None) -> None:
        for placed in [p for p in self.placeholders if p == path or p.startswith(path + "/")]:
            self._read_placeholder(placed, max_bytes)

    def follow_links(self) -> None:
        """Make each link stored in git, and lay out what it points to; a link that
        resolves outside the temporary tree is refused, never followed."""
        made: set[str] = set()
        while True:
            for path, target in self.links.items():
                if path not in made:
                    made.add(path)
                    os.symlink(target, self.place(path))
            self.repo.deadline.left()  # the rounds are bounded in time like git's calls
            wanted = [w for w in (self._pointed_at(p) for p in sorted(made)) if w is not None]
            if not wanted:
                return
            for path in wanted:
                self.add(path, None)

    def _pointed_at(self, link: str) -> str | None:
        """The repository path `link` resolves to, when it is not laid out yet."""
        resolved = os.path.realpath(self.root / link)
        if resolved != str(self.root) and not resolved.startswith(str(self.root) + os.sep):
            raise GitError(
                f"'{link}' is a symbolic link at {self.rev} to a place outside the "
                f"repository ({self.links[link]!r}): diff does not follow it"
            )
        relative = Path(resolved).relative_to(self.root).as_posix()
        relative = "" if relative == "." else relative
        if os.path.lexists(resolved) or relative in self.asked:
            return None
        return relative


def in_repository(written: str, document: str, what: str, rev: str) -> str:
    """The repository path of `written`, relative to the document at `document`."""
    outside = GitError(
        f"{what} '{written}' lies outside the repository, which holds no file of it at "
        f"{rev}: diff cannot plan this document at a revision; diff the rendered scripts"
    )
    if written.startswith("~") or posixpath.isabs(written):
        raise outside
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(document), written))
    if joined == ".." or joined.startswith("../"):
        raise outside
    return "" if joined == "." else joined


@contextlib.contextmanager
def laid_out(repo: Repository, commit: str, rev: str, document: str, data: bytes) -> Iterator[Path]:
    """A temporary directory holding `document` (its repository path) with `data`, and
    the files it reads as the revision holds them; removed when the block ends."""
    caps = limits()
    refs = references(data)
    with tempfile.TemporaryDirectory(prefix="dlm-gen-diff-") as directory:
        root = Path(directory).resolve()
        budget = caps["max_document_bytes"] - len(data)
        layout = _Layout(repo, commit, rev, root, budget, budget, caps["max_source_files_walked"])
        try:
            layout.write(document, data)
            layout.asked.add(document)
            for written, max_bytes in refs.sources:
                layout.add(in_repository(written, document, "training.sources", rev), max_bytes)
            base = None
            if refs.base is not None:
                base = in_repository(normalized_path(refs.base), document, "base_model", rev)
                layout.add(base, None)
            layout.follow_links()
        except OSError as exc:  # a full disk, a name too long for this file system
            raise GitError(
                f"cannot lay the revision out in a temporary directory: {exc.strerror or exc}"
            ) from None
        if base is not None and not (root / base).is_dir():
            raise GitError(
                f"base_model '{refs.base}' is not a directory stored in git at {rev}: a "
                "local base is read at the same revision as its document; diff the "
                "rendered scripts instead"
            )
        yield root

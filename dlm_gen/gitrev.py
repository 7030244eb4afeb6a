"""Everything `dlm-gen diff` asks of git: `REV:PATH` read without trusting REV, PATH or
the repository.

Bounds that hold whatever the user types and whatever the repository holds:

- Grammar first. REV is a ref name or object id with `~N`/`^N` steps; it never starts
  with '-', and git's other syntaxes (`@{...}` reflogs, `:/text` message searches,
  `:PATH` index entries, ranges) are refused before git runs. PATH is a relative
  path with no control character; `./` and `../` are relative to the current
  directory as in git, and a PATH that leaves the repository is refused.
- No user text in git's argv: object names go on `git cat-file`'s stdin, one line
  each, and trees are listed by their object ids, so nothing typed can become an
  option or a pathspec.
- Time: every git call of one side shares one deadline (rules/limits.yaml
  git_wall_seconds); a git still running then is killed.
- Bytes: an object's size is read from its header before its contents, and one over
  the caller's cap is refused unread; listings stop at a cap of entries.
- Nothing executes: GIT_* variables that choose what git runs or where it writes
  (GIT_EXTERNAL_DIFF, GIT_PAGER, GIT_EXEC_PATH, GIT_CONFIG_*, GIT_TRACE*, GIT_SSH*)
  are dropped; `core.fsmonitor` is off; no transport is allowed (GIT_ALLOW_PROTOCOL
  empty, GIT_NO_LAZY_FETCH), so a partial clone whose config names an `ext::`
  remote cannot run it to fetch a missing object; only plumbing that applies no
  textconv, filter, pager or hook is used (rev-parse, cat-file, ls-tree).
"""

from __future__ import annotations

import os
import posixpath
import re
import selectors
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# The repository-locating variables a user may set on purpose; they choose which
# repository is read, never what runs. Every other GIT_* variable is dropped.
KEPT_GIT_ENV = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_COMMON_DIR",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_NAMESPACE",
        "GIT_CEILING_DIRECTORIES",
        "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    }
)
# Set for every git call: no transport of any kind (so no remote helper, ssh or lazy
# fetch), no prompt, no lock files taken for optional index refreshes.
HARDENED_ENV = {
    "GIT_ALLOW_PROTOCOL": "",
    "GIT_NO_LAZY_FETCH": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_OPTIONAL_LOCKS": "0",
}
HARDENED_ARGS = ("--no-pager", "-c", "core.fsmonitor=false", "-c", "protocol.allow=never")

# A ref name (git check-ref-format's characters, without the ones that start other
# syntaxes: ':', '{', '[', '?', '*', '\\', space) or an object id, then ~N / ^N steps.
_REV = re.compile(r"[A-Za-z0-9_@][A-Za-z0-9_@./+-]*(?:[~^][0-9]{0,9})*")
_OBJECT_ID = re.compile(rb"[0-9a-f]{40}(?:[0-9a-f]{24})?")
# Protocol facts, not policy: a batch header is `<id> <type> <size>` (or the name
# asked for, then ' missing'); no file system resolves a path or link longer than
# PATH_MAX; a listing record is a mode, type, id, size and such a path.
_PATH_MAX = 4096
_HEADER_BYTES = 200 + 4 * _PATH_MAX
_RECORD_BYTES = 200 + 4 * _PATH_MAX
_STDERR_BYTES = 4096


class GitError(Exception):
    """Why a revision cannot be read; the message is plain and names no temporary path."""


@dataclass(frozen=True)
class Revision:
    """`REV:PATH` as given: a checked revision and a checked path (not yet resolved)."""

    rev: str
    path: str


@dataclass(frozen=True)
class Entry:
    """One tree entry: mode (e.g. '100644', '120000' for a link), type, id, size, path."""

    mode: str
    type: str
    oid: str
    size: int | None
    path: str  # relative to the repository's top directory

    @property
    def is_link(self) -> bool:
        return self.mode == "120000"


def parse_revision(given: str) -> Revision:
    """`REV:PATH` checked against the grammar above; GitError says what is wrong."""
    rev, colon, path = given.partition(":")
    if not colon:
        raise GitError("not a file, and not REV:PATH")
    if not rev:
        raise GitError(
            "':PATH' (the index) and ':/text' (a search of commit messages) are not "
            "accepted: name a revision, as in HEAD:PATH"
        )
    if rev.startswith("-"):
        raise GitError("a revision cannot start with '-'")
    if "@{" in rev:
        raise GitError("reflog revisions ('@{...}') are not accepted: name a ref or commit")
    if not _REV.fullmatch(rev) or ".." in rev or "//" in rev or rev.endswith((".", "/", ".lock")):
        raise GitError(
            "not a revision: expected a branch, tag or commit id, optionally followed by "
            "~N or ^N (letters, digits and . _ / + - @ only)"
        )
    _check_path(path)
    return Revision(rev, path)


def _check_path(path: str) -> None:
    if not path:
        raise GitError("PATH is empty: name a file after the ':'")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path):
        raise GitError("PATH holds a control character")
    if path.startswith("/"):
        raise GitError("PATH is relative to the repository's top directory, not absolute")
    if path.endswith("/"):
        raise GitError("PATH names a directory: name a file")


def repository_path(path: str, prefix: str) -> str:
    """PATH relative to the top directory, as git reads it: `./x` and `../x` are relative
    to the current directory (`prefix`), anything else to the top. GitError if it leaves."""
    joined = posixpath.join(prefix, path) if path.startswith(("./", "../")) else path
    normal = posixpath.normpath(joined)
    if normal == ".." or normal.startswith("../") or normal.startswith("/"):
        raise GitError("PATH leaves the repository")
    if normal == ".":
        raise GitError("PATH names the top directory: name a file")
    return normal


def git_environment() -> dict[str, str]:
    """The user's environment without the GIT_* variables that change what git runs."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GIT_") or name in KEPT_GIT_ENV
    }
    return {**kept, **HARDENED_ENV}


class _Deadline:
    """The time left to one side's git calls, all together."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise GitError(
                f"git took longer than {self.seconds:g} s (rules/limits.yaml git_wall_seconds)"
            )
        return left


class _Child:
    """One git process whose stdout is read in bounded pieces before a deadline."""

    def __init__(self, args: list[str], cwd: Path, deadline: _Deadline, stdin: bool) -> None:
        self.deadline = deadline
        # A file, not a pipe: git never blocks on it. Closed by close().
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                ["git", *HARDENED_ARGS, *args],
                cwd=cwd,
                env=git_environment(),
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self.errors,
                start_new_session=True,  # its own process group: killed with it below
            )
        except OSError as exc:  # no git on this machine
            self.errors.close()
            raise GitError(f"cannot run git: {exc.strerror or exc}") from None
        assert self.process.stdout is not None
        self.stdout = self.process.stdout
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.stdout, selectors.EVENT_READ)
        self.buffer = bytearray()  # deleting from its front is cheap
        self.ended = False

    def send(self, name: str) -> None:
        """One object name on stdin; a name with a control character could split into
        two requests, so it is refused (no name of ours or of the grammar holds one)."""
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
            raise GitError("a path holds a control character")
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(os.fsencode(name) + b"\n")
            self.process.stdin.flush()
        except OSError:
            raise GitError(self.failure("git stopped reading its input")) from None

    def _fill(self) -> bool:
        """Read what git has written so far; False at the end of its output."""
        if self.ended:
            return False
        if not self.selector.select(self.deadline.left()):
            self.deadline.left()  # raises once the time is up
            return True
        chunk = os.read(self.stdout.fileno(), 1 << 16)
        if not chunk:
            self.ended = True
            return False
        self.buffer += chunk
        return True

    def record(self, separator: bytes, limit: int) -> bytes | None:
        """The next record up to `separator` (not included), None at the end of output."""
        start = 0
        while True:
            end = self.buffer.find(separator, start)
            if end >= 0:
                record = bytes(self.buffer[:end])
                del self.buffer[: end + len(separator)]
                return record
            if len(self.buffer) > limit:
                raise GitError("git wrote a record longer than any path")
            start = max(0, len(self.buffer) - len(separator) + 1)
            if not self._fill():
                if self.buffer:
                    raise GitError(self.failure("git's output ended inside a record"))
                return None

    def exactly(self, size: int) -> bytes:
        """The next `size` bytes of output (the caller has checked `size` against its cap)."""
        while len(self.buffer) < size:
            if not self._fill():
                raise GitError(self.failure("git's output ended early"))
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def failure(self, fallback: str) -> str:
        """git's own complaint, on one line, if it made one, else `fallback`."""
        self._stop()
        said = ""
        if not self.errors.closed:
            self.errors.seek(0)
            said = self.errors.read(_STDERR_BYTES).decode("utf-8", "replace")
        self.close()
        lines = [line.removeprefix("fatal: ").strip() for line in said.splitlines()]
        return "; ".join(line for line in lines if line)[:300] or fallback

    def finish(self) -> None:
        """Wait for a git that has written everything; GitError if it failed."""
        while self._fill():
            pass
        try:
            code = self.process.wait(self.deadline.left())
        except subprocess.TimeoutExpired:
            self.close()
            raise GitError(
                f"git took longer than {self.deadline.seconds:g} s "
                "(rules/limits.yaml git_wall_seconds)"
            ) from None
        if code != 0:
            raise GitError(self.failure(f"git exited with status {code}"))

    def _stop(self) -> None:
        """Kill git and anything it started (a git wrapper's children would outlive it)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:  # already gone
                self.process.kill()
        self.process.wait()

    def close(self) -> None:
        """Stop git (if it still runs) and release its pipes and its stderr file."""
        self._stop()
        self.selector.close()
        for stream in (self.process.stdin, self.stdout, self.errors):
            if stream is not None:
                stream.close()


class Repository:
    """The git repository around `cwd`, read through hardened plumbing under a deadline.

    Use as a context manager: the cat-file processes it keeps open are stopped on exit.
    """

    def __init__(self, cwd: Path, seconds: float) -> None:
        self.cwd = cwd
        self.deadline = _Deadline(seconds)
        self._info: _Child | None = None
        self._contents: _Child | None = None
        self.prefix = self._prefix()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *_exc: object) -> None:
        for child in (self._info, self._contents):
            if child is not None:
                child.close()

    def _prefix(self) -> str:
        """Where the current directory is in the repository ('' at the top, else 'a/b/')."""
        child = _Child(["rev-parse", "--show-prefix"], self.cwd, self.deadline, stdin=False)
        try:
            line = child.record(b"\n", _RECORD_BYTES)
            child.finish()
        finally:
            child.close()
        return os.fsdecode(line or b"")

    def _batch(self, kind: str) -> _Child:
        existing = self._info if kind == "--batch-check" else self._contents
        if existing is not None:
            return existing
        child = _Child(["cat-file", kind], self.cwd, self.deadline, stdin=True)
        if kind == "--batch-check":
            self._info = child
        else:
            self._contents = child
        return child

    def _header(self, child: _Child, name: str) -> tuple[str, str, int] | None:
        """Ask for `name`; its (id, type, size), or None when git has no such object."""
        child.send(name)
        header = child.record(b"\n", _HEADER_BYTES)
        if header is None:
            raise GitError(child.failure("git cat-file stopped"))
        parts = header.split(b" ")
        if len(parts) == 3 and _OBJECT_ID.fullmatch(parts[0]) and parts[2].isdigit():
            return parts[0].decode(), parts[1].decode("ascii", "replace"), int(parts[2])
        return None  # "<name> missing", "ambiguous", "dangling", ...

    def commit(self, rev: str) -> str:
        """The commit id that `rev` (already checked against the grammar) names."""
        found = self._header(self._batch("--batch-check"), f"{rev}^{{commit}}")
        if found is None or found[1] != "commit":
            raise GitError(f"no commit '{rev}' in this repository")
        return found[0]

    def object(self, name: str) -> tuple[str, str, int] | None:
        """(id, type, size) of `commit:path`, or None."""
        return self._header(self._batch("--batch-check"), name)

    def blob(self, oid: str, cap: int) -> bytes:
        """The contents of blob `oid`; GitError, unread, when it is over `cap` bytes."""
        child = self._batch("--batch")
        found = self._header(child, oid)
        if found is None or found[1] != "blob":
            raise GitError(f"object {oid} is not a blob")
        if found[2] > cap:
            child.close()
            self._contents = None
            raise GitError(f"holds {found[2]} bytes; the limit here is {cap} bytes")
        data = child.exactly(found[2] + 1)  # the contents, then a line feed
        return data[:-1]

    def entry(self, commit: str, path: str, cap: int) -> Entry | None:
        """The tree entry at `path` in `commit` (its mode tells a link), or None."""
        parent = path.rpartition("/")[0]
        found = self.object(f"{commit}:{parent}")
        if found is None or found[1] != "tree":
            return None
        for entry in self.list_tree(found[0], parent, recursive=False, cap=cap):
            if entry.path == path:
                return entry
        return None

    def list_tree(self, tree: str, under: str, recursive: bool, cap: int) -> list[Entry]:
        """The entries of tree `tree` (whose path is `under`), at most `cap` of them."""
        # --full-tree: from a subdirectory, ls-tree would list only what lies under it
        args = ["ls-tree", "--full-tree", "-z", "-l", *(["-r"] if recursive else []), tree]
        child = _Child(args, self.cwd, self.deadline, stdin=False)
        entries: list[Entry] = []
        try:
            while (record := child.record(b"\0", _RECORD_BYTES)) is not None:
                entries.append(_entry(record, under))
                if len(entries) > cap:
                    raise GitError(
                        f"more than {cap} files under '{under or '.'}' "
                        "(rules/limits.yaml max_source_files_walked)"
                    )
            child.finish()
        finally:
            child.close()
        return entries


def _entry(record: bytes, under: str) -> Entry:
    """One `ls-tree -l -z` record: '<mode> <type> <id> <size>\\t<path>'."""
    meta, tab, name = record.partition(b"\t")
    parts = meta.split()
    if not tab or len(parts) != 4 or not _OBJECT_ID.fullmatch(parts[2]):
        raise GitError("git ls-tree wrote a record this version of dlm-gen cannot read")
    size = int(parts[3]) if parts[3].isdigit() else None
    relative = os.fsdecode(name)
    return Entry(
        parts[0].decode("ascii", "replace"),
        parts[1].decode("ascii", "replace"),
        parts[2].decode(),
        size,
        f"{under}/{relative}" if under else relative,
    )

"""What is at a path, in words, and files written whole.

Every path a run reads or writes came from a flag, the environment or the
document: it is looked at with lstat/stat before it is opened (a FIFO is never
opened so that it blocks, a link is never written through), and what is wrong
with it is said in words that follow its name.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

# The most of a config.json or adapter_config.json the checks read (dlm-gen's own
# max_config_bytes): a model's is a few KiB.
MAX_CONFIG_BYTES = 1_048_576

# A file's kind by its mode, in the words the checks use.
FILE_KINDS = [
    (stat.S_ISDIR, "directory"),
    (stat.S_ISREG, "file"),
    (stat.S_ISLNK, "symbolic link"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISCHR, "device"),
    (stat.S_ISBLK, "device"),
    (stat.S_ISSOCK, "socket"),
]


def kind_of(mode: int) -> str:
    """A file mode in words: 'directory', 'file', 'symbolic link' (from lstat), 'FIFO'..."""
    return next((kind for test, kind in FILE_KINDS if test(mode)), "special file")


def existing_kind(path: Path) -> str | None:
    """What is at `path`, following links: None for nothing, else 'directory', 'file',
    'FIFO', 'device', 'socket', 'broken link' or why it cannot be seen."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "broken link" if os.path.lexists(path) else None
    except OSError as error:
        return f"path that cannot be read ({error.strerror})"
    return kind_of(mode)


def reason(error: Exception) -> str:
    """Why a filesystem call failed, in words (pathlib's resolve() raises RuntimeError for
    a loop of links)."""
    if isinstance(error, RuntimeError):
        return "a loop of symbolic links"
    return getattr(error, "strerror", None) or str(error)


def model_problem(directory: Path, config: str = "config.json") -> str | None:
    """Why the libraries cannot load from `directory`, in words that follow its name: it
    is no directory, or its `config` is no JSON object. None where nothing is wrong."""
    kind = existing_kind(directory)
    if kind is None:
        return "does not exist"
    if kind != "directory":
        return f"is a {kind}, not a directory"
    return json_object_problem(directory / config)


def json_object_problem(path: Path, most: int = MAX_CONFIG_BYTES) -> str | None:
    """Why `path` is no JSON object a library can read, in words that follow its
    directory's name: missing, not a regular file (a FIFO is never opened so that it
    blocks), unreadable, larger than `most` bytes, or not a JSON object (a list made a
    TypeError once the model had loaded). None where nothing is wrong."""
    kind = existing_kind(path)
    if kind is None:
        return f"holds no {path.name}"
    if kind.startswith("path that "):  # a path past the system's limit, a denied directory
        return f"holds {path.name}, which {kind.removeprefix('path that ')}"
    if kind != "file":
        return f"holds {path.name}, which is a {kind}, not a file"
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(descriptor, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                return f"holds {path.name}, which is not a file"
            data = file.read(most + 1)
    except OSError as error:
        return f"holds {path.name}, which cannot be read ({reason(error)})"
    if len(data) > most:
        return f"holds {path.name}, which is larger than {most} bytes"
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested past the stack
        value = None
    if not isinstance(value, dict):
        return f"holds {path.name}, which is not a JSON object"
    return None


def write_atomically(path: Path, text: str) -> None:
    """Write `path` whole or not at all (a temporary file, fsynced and renamed over it): a
    crash or a full disk leaves the older file or none, never half a run record. The
    temporary file is a new one of a random name, created where nothing is (O_EXCL,
    O_NOFOLLOW): nothing already there is ever written through, a link least of all."""
    temporary = path.with_name(f".{path.name}.{os.urandom(8).hex()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(temporary, flags, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(text.encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)

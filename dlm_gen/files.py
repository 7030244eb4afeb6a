"""Read input files without trusting them: regular files only, never past a limit.

`os.stat` says a symlink to `/dev/zero` is not a regular file, and a FIFO would
block a plain `open()` for ever; both are refused before anything is read.
The size is checked on the open descriptor too, and at most `limit + 1` bytes
are read, so a file that grows while it is read is still refused.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dlm_gen.errors import RulesError

# Files above this size are not tables written by people. These bound the reading of
# the rule tables themselves, so they cannot be rows of a table: a rules directory
# (DLM_GEN_RULES) of more tables, or more bytes, than any team writes is refused
# before it is read (the shipped set is 27 tables and ~300 KB).
MAX_TABLE_BYTES = 4 * 1024 * 1024
MAX_TABLES = 256
MAX_TABLES_BYTES = 32 * 1024 * 1024


class InputFileError(Exception):
    """A file that cannot be read as input; the message says why, without the path."""


def read_bounded(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (symlinks followed)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputFileError("no such file") from None
    except PermissionError:
        raise InputFileError("permission denied") from None
    except OSError as exc:
        raise InputFileError(f"cannot read: {exc.strerror or exc}") from None
    _check_kind(info.st_mode, info.st_size, limit)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except PermissionError:
        raise InputFileError("permission denied") from None
    except OSError as exc:
        raise InputFileError(f"cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(descriptor)
        _check_kind(info.st_mode, info.st_size, limit)
        data = read_at_most(descriptor, limit + 1)
    except OSError as exc:
        raise InputFileError(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise InputFileError(f"file grew past the limit of {limit} bytes while it was read")
    return data


def read_at_most(descriptor: int, count: int) -> bytes:
    """Up to `count` bytes of an open file, in pieces of 1 MiB (fewer only at its end)."""
    chunks, remaining = [], count
    while remaining > 0:
        chunk = os.read(descriptor, min(remaining, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _check_kind(mode: int, size: int, limit: int) -> None:
    if stat.S_ISDIR(mode):
        raise InputFileError("is a directory, expected a file")
    if not stat.S_ISREG(mode):
        raise InputFileError("not a regular file (a device, FIFO or socket): expected a file")
    if size > limit:
        raise InputFileError(f"file is {size} bytes; the limit is {limit} bytes")


def is_regular_file(path: Path) -> bool:
    """Like Path.is_file(), without raising on odd paths."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def read_tables(directory: Path, files: list[Path]) -> list[tuple[str, str]]:
    """Every table's name and text: at most MAX_TABLES files and MAX_TABLES_BYTES bytes
    together, or a RulesError naming the directory."""
    if len(files) > MAX_TABLES:
        raise RulesError(
            f"{directory}: {len(files)} rule tables; a rules directory holds at most {MAX_TABLES}"
        )
    sizes = 0
    for file in files:
        try:
            sizes += os.stat(file).st_size
        except OSError:
            continue  # read_table names it
    if sizes > MAX_TABLES_BYTES:
        raise RulesError(
            f"{directory}: the rule tables add up to {sizes} bytes; a rules directory "
            f"holds at most {MAX_TABLES_BYTES}"
        )
    texts, left = [], MAX_TABLES_BYTES
    for file in files:  # bounded again as read: a table may grow meanwhile
        text = read_table(file, left)
        left -= len(text.encode("utf-8", "surrogatepass"))
        texts.append((file.name, text))
    return texts


def read_table(file: Path, limit: int = MAX_TABLE_BYTES) -> str:
    """A table's text, or a RulesError naming the file (never a traceback)."""
    label = f"rules/{file.name}"
    try:
        data = read_bounded(file, min(limit, MAX_TABLE_BYTES))
    except InputFileError as exc:
        raise RulesError(f"{label}: {exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RulesError(
            f"{label}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save the table as UTF-8"
        ) from None

"""The checked-rules receipt: lets a later load skip the checks of the same bytes.

The receipt is plain JSON naming the SHA-256 of every table, the rules schema
and dlm-gen's source that passed the load-time checks. It holds no policy:
the rule set is always built from the tables' bytes, so a tampered, truncated
or foreign cache file costs speed, never a plan. Nothing is deserialized into
objects.

A receipt is trusted only where no one else could have written it: a regular
file (not a link) owned by this user in a directory owned by this user, neither
writable by others. Anything else there (a directory, a fifo, a file in a shared
cache directory) is ignored, and the checks run.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

from dlm_gen.files import InputFileError, read_bounded
from dlm_gen.resources import data_dir

CACHE_ENV = "DLM_GEN_CACHE_DIR"
RECEIPT_FORMAT = "dlm-gen checked-rules receipt 1"


def cache_key(texts: list[tuple[str, str]]) -> str:
    """SHA-256 of every table (name and text), the rules schema and dlm-gen's source."""
    digest = hashlib.sha256()
    for name, text in texts:
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    digest.update((data_dir("schema") / "rules.schema.json").read_bytes())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def cache_file(key: str) -> Path | None:
    """Where the receipt of `key` lives, or None when caching is off (or there is no home)."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None and configured.strip() in ("", "off"):
        return None
    if configured:
        base = Path(configured)
    else:
        home = _cache_home()
        if home is None:
            return None
        base = home / "dlm-gen"
    return base / f"rules-{key[:32]}.json"


def _cache_home() -> Path | None:
    """$XDG_CACHE_HOME, or ~/.cache. A relative XDG_CACHE_HOME is ignored, as the XDG
    base directory spec says: it would put the cache in whatever the working directory is;
    so is a HOME that is empty, relative or the filesystem root."""
    configured = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(configured):
        return Path(configured)
    try:
        home = Path.home()
    except RuntimeError:  # no home directory to be found: only costs speed
        return None
    # HOME= (empty) or a relative HOME would put the cache at / or under the working
    # directory: no cache then, which only costs speed.
    return home / ".cache" if home.is_absolute() and str(home) != home.anchor else None


def has_receipt(key: str) -> bool:
    """Whether these exact bytes passed the checks before (a damaged or foreign file: no)."""
    path = cache_file(key)
    if path is None or not _trusted(path):
        return False
    try:
        receipt = json.loads(read_bounded(path, 4096))
    except (InputFileError, ValueError, RecursionError):
        return False
    return receipt == {"format": RECEIPT_FORMAT, "key": key}


def _trusted(path: Path) -> bool:
    """Whether only this user could have written `path`: a regular file, not a link,
    owned by this user in a directory owned by this user, neither writable by others."""
    try:
        file, directory = os.lstat(path), os.stat(path.parent)
    except (OSError, ValueError):
        return False
    if not (stat.S_ISREG(file.st_mode) and stat.S_ISDIR(directory.st_mode)):
        return False
    if not hasattr(os, "geteuid"):  # no POSIX owners to compare (Windows)
        return True
    return file.st_uid == directory.st_uid == os.geteuid() and not (
        (file.st_mode | directory.st_mode) & (stat.S_IWGRP | stat.S_IWOTH)
    )


def write_receipt(key: str) -> None:
    """Record that the bytes of `key` passed the checks (atomically; failures cost speed,
    and leave no temporary file behind)."""
    path = cache_file(key)
    if path is None:
        return
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.is_dir():  # nothing can replace it: only costs speed
            return
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".rules-", suffix=".tmp")
    except (OSError, ValueError):
        return  # a read-only home only costs speed
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump({"format": RECEIPT_FORMAT, "key": key}, handle)
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)

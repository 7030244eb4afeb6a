"""The checked-rules receipt: lets a later load skip the checks of the same bytes.

The receipt is plain JSON naming the SHA-256 of every table, the rules schema
and dlm-gen's source that passed the load-time checks. It holds no policy:
the rule set is always built from the tables' bytes, so a tampered, truncated
or foreign cache file costs speed, never a plan. Nothing is deserialized into
objects.
"""

from __future__ import annotations

import hashlib
import json
import os
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
        try:
            home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        except RuntimeError:  # no home directory to be found: only costs speed
            return None
        base = home / "dlm-gen"
    return base / f"rules-{key[:32]}.json"


def has_receipt(key: str) -> bool:
    """Whether these exact bytes passed the checks before (a damaged file: no)."""
    path = cache_file(key)
    if path is None:
        return False
    try:
        receipt = json.loads(read_bounded(path, 4096))
    except (InputFileError, ValueError, RecursionError):
        return False
    return receipt == {"format": RECEIPT_FORMAT, "key": key}


def write_receipt(key: str) -> None:
    """Record that the bytes of `key` passed the checks (atomically; failures cost speed)."""
    path = cache_file(key)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as handle:
            json.dump({"format": RECEIPT_FORMAT, "key": key}, handle)
        os.replace(handle.name, path)
    except OSError:
        pass  # a read-only home only costs speed

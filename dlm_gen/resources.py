"""Where the rule tables, templates and schemas are, installed or in a checkout.

A wheel carries them under `dlm_gen/_data/`; a source checkout (or an editable
install) has them at the top of the repository, next to `dlm_gen/`.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The directory `rules`, `templates` or `schema`."""
    installed = _PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name

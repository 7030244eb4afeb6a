"""Where the rule tables, templates and schemas are, installed or in a checkout.

A wheel carries them under `dlm_gen/_data/`; a source checkout (or an editable
install) has them at the top of the repository, next to `dlm_gen/`. The
environment variable DLM_GEN_RULES points at another rules directory: a team
can keep its own policy tables without forking the code.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
RULES_ENV = "DLM_GEN_RULES"


def data_dir(name: str) -> Path:
    """The directory `rules`, `templates` or `schema`."""
    if name == "rules" and os.environ.get(RULES_ENV):
        return Path(os.environ[RULES_ENV])
    installed = _PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name

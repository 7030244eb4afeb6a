"""Keep the CLI's start-up to what it uses: no pydantic plugin discovery.

pydantic looks for plugins the first time a model is built: its loader module
imports `importlib.metadata` (about 25 ms, an eighth of an `explain`) and then
scans every installed distribution's entry points. dlm-gen uses no plugins and
says so with PYDANTIC_DISABLE_PLUGINS, which makes the loader answer "none"
but still pays for the import. When plugins are disabled, a stand-in module
answers `get_plugins()` with nothing; any other name is taken from the real
loader, imported on first use, so a newer pydantic that asks for more still
gets it.
"""

from __future__ import annotations

import importlib
import os
import sys
import types

LOADER = "pydantic.plugin._loader"


def skip_pydantic_plugin_discovery() -> None:
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if os.environ["PYDANTIC_DISABLE_PLUGINS"] not in ("__all__", "1", "true"):
        return  # the user asked for plugins: let pydantic load them
    if LOADER in sys.modules:
        return
    stand_in = types.ModuleType(LOADER, "dlm-gen's stand-in: pydantic plugins are disabled")

    def get_plugins() -> tuple[()]:
        return ()

    def real_attribute(name: str) -> object:
        if name.startswith("__"):  # the import system probes __path__ and the like
            raise AttributeError(name)
        sys.modules.pop(LOADER, None)
        return getattr(importlib.import_module(LOADER), name)

    stand_in.get_plugins = get_plugins  # type: ignore[attr-defined]
    stand_in.__getattr__ = real_attribute  # type: ignore[attr-defined]
    sys.modules[LOADER] = stand_in

"""What a generated script embeds, as the one object the runtime reads.

The script's literals (the plan, the rows, the base, the target, ...) are built
into a `Script` by its `main()`; every runtime function takes what it needs
from it or from one adapter's plan, never from a global, so the same functions
run inside a script and under the tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

# The environment variable a local base's relative path may start from (--base-dir).
BASE_DIR_ENV = "DLM_GEN_BASE_DIR"


@dataclass(frozen=True)
class Script:
    """A rendered script's literals, and where the script is."""

    path: Path  # the script's own file (its digest is compared across ranks)
    hash: str
    dlm_gen_version: str
    source_document: str  # relative to the script, exact
    target: dict
    requirements: list[str]
    base_model: dict
    system_prompt: str | None
    export: dict
    launch: str  # how the plan starts the script: "python", or a torchrun command
    data: dict  # what the run trains on, by digest (DATA)
    adapters: list[dict]  # {"name", "reason", "plan"}: each plan whole (adapter_plans)
    rows: list[dict]
    sources: list[dict]  # the files training.sources read, with their digests
    # When the script started (perf_counter), for run.json's phase timings.
    started: float = field(default_factory=time.perf_counter)

    @property
    def plan(self) -> dict:
        """The first adapter's plan, for the fields every adapter shares (dist-*: one
        launch, one device, one process group)."""
        return self.adapters[0]["plan"]

    @property
    def name(self) -> str:
        return self.path.name


def adapter_plans(shared: dict, adapters: list[dict]) -> list[dict]:
    """Each adapter with its whole plan: the script's PLAN (what every adapter shares)
    with the adapter's own decisions over it."""
    return [{**adapter, "plan": {**shared, **adapter["plan"]}} for adapter in adapters]


def adapter_dir(output_dir: Path, adapter: dict) -> Path:
    """Where one adapter's run goes: --output-dir itself, or its subdirectory NAME."""
    return output_dir / adapter["name"] if adapter["name"] else output_dir


def saved_dir(output_dir: Path, adapter: dict) -> Path:
    """Where a run saves what it trained: the adapter, or (adapter-full) the model."""
    return adapter_dir(output_dir, adapter) / ("adapter" if adapter["plan"]["peft"] else "model")

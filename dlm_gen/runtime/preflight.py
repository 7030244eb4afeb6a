"""Preflight: the rows, the installed versions, the launch and the host against the plan,
before anything heavy loads. A numbered report that keeps going after a failure, then
exit 1 if anything failed."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from importlib import metadata

from dlm_gen.runtime.console import fail, say, visible
from dlm_gen.runtime.rows import embedded_rows_digest
from dlm_gen.runtime.script import Script

# The most a launcher's count (WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_WORLD_SIZE, RANK)
# may say: a value past it is no launch (torchrun's counts are far below it).
MAX_LAUNCH_COUNT = 1_000_000


def preflight(script: Script) -> None:
    """Every check that needs no heavy import, then the host's (which imports torch)."""
    problems = check_rows(script) + check_launch(script) + check_requirements(script)
    if not problems:
        problems = check_host(script)
    if problems:
        say(f"preflight failed for {script.name}:", file=sys.stderr)
        for number, problem in enumerate(problems, start=1):
            say(f"  {number}. {problem}", file=sys.stderr)
        sys.exit(1)


def check_rows(script: Script) -> list[str]:
    """The embedded rows are the ones the plan was made for (DATA names their digest): a
    row edited by hand would train what no review saw."""
    expected = script.data.get("rows_sha256")
    if expected is None or embedded_rows_digest(script.rows) == expected:
        return []
    return [
        "the rows embedded in this script (ROWS) are not the ones it was rendered with "
        f"(DATA's rows_sha256 {expected[:12]}...): render it again from {script.source_document}"
    ]


def check_requirements(script: Script) -> list[str]:
    """Installed versions against the plan's requirements (PEP 508)."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return ["the 'packaging' module is missing: pip install packaging"]
    problems = []
    for text in script.requirements:
        requirement = Requirement(text)
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{requirement.name} is not installed: pip install '{text}'")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{requirement.name} {installed} is installed; the plan needs '{text}'")
    return problems


def installed_versions(names: list[str]) -> dict[str, str | None]:
    """The installed version of each distribution (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def requirement_names(requirements: list[str]) -> list[str]:
    """The distribution names of PEP 508 requirements, as written."""
    return [re.match(r"[A-Za-z0-9._-]+", text).group(0) for text in requirements]


def check_host(script: Script) -> list[str]:
    """The host against the target the script was rendered for."""
    import torch

    target = script.target
    if target["backend"] != "cuda":
        return []
    if not torch.cuda.is_available():
        message = (
            f"this script was rendered for {target['name']} ({target['gpu']}), "
            "but this host has no CUDA GPU; render for this host with --target cpu"
        )
        return [message]
    problems = []
    properties = torch.cuda.get_device_properties(0)
    wants_bf16 = any(adapter["plan"]["bf16"] for adapter in script.adapters)
    if wants_bf16 and not torch.cuda.is_bf16_supported():
        problems.append(f"{properties.name} has no bf16 support; render for its target instead")
    memory_gb = properties.total_memory / 1e9
    tolerance = script.plan["host_memory_tolerance"]
    if target["memory_gb"] and memory_gb < (1 - tolerance) * target["memory_gb"]:
        problems.append(
            f"{properties.name} has {memory_gb:.0f} GB; the plan was made for "
            f"{target['memory_gb']} GB ({target['name']})"
        )
    if torch.cuda.device_count() < target["gpu_count"]:
        problems.append(f"{torch.cuda.device_count()} GPU(s) found, {target['gpu_count']} planned")
    return problems


def launch_count(script: Script, name: str, default: int) -> int:
    """One of the launcher's counts from the environment: ASCII digits, at most
    MAX_LAUNCH_COUNT; anything else stops the run naming the variable (int() would be
    a traceback, or read ' 2', '1_0' and other scripts' digits)."""
    text = os.environ.get(name)
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,7}", text) or int(text) > MAX_LAUNCH_COUNT:
        fail(
            f"the environment says {name}={visible(text[:40])}, which is no count of "
            f"processes (expected 0 to {MAX_LAUNCH_COUNT}): launch with {script.launch} "
            f"{script.name}, or unset {name}"
        )
    return int(text)


def world_size(script: Script) -> int:
    return launch_count(script, "WORLD_SIZE", 1)


def rank(script: Script) -> int:
    return launch_count(script, "RANK", 0)


def check_launch(script: Script) -> list[str]:
    """The launch must give the planned nodes and processes: a plan's batch sizes and
    memory estimate hold for its world size only."""
    plan = script.plan  # dist-*: one launch for every adapter
    size = world_size(script)
    per_node = launch_count(script, "LOCAL_WORLD_SIZE", size)
    nodes = launch_count(script, "GROUP_WORLD_SIZE", 1)  # torchrun: one agent per node
    if rank(script) >= size:
        return [f"RANK is {rank(script)}, but WORLD_SIZE is {size}"]
    counts = [
        ("WORLD_SIZE", size, plan["processes"]),
        ("LOCAL_WORLD_SIZE", per_node, plan["processes_per_node"]),
        ("GROUP_WORLD_SIZE", nodes, plan["nodes"]),
    ]
    if all(value == planned for _, value, planned in counts):
        return []
    # The variables that are set and off (an unset count follows WORLD_SIZE, or is 1).
    off = [
        f"{name} is {value}"
        for name, value, planned in counts
        if value != planned and name in os.environ
    ]
    if plan["launcher"] == "python":
        return [f"this plan trains in one process, but {' and '.join(off)}"]
    said = "".join(f"; {words}" for words in off)
    return [
        f"this plan trains on {plan['nodes']} node(s) x {plan['processes_per_node']} "
        f"process(es) per node ({plan['processes']} in all), but this launch has {nodes} x "
        f"{per_node} ({size} in all{said}): launch it with {script.launch} {script.name}"
    ]


def agree_on_script(script: Script) -> None:
    """Every rank must run this very file: gather each rank's SHA-256 of its own bytes
    (a node with another checkout, or a hand-edited copy, would train something else)."""
    if world_size(script) == 1:
        return
    import torch
    import torch.distributed as dist

    # dist-backend-*: the CPU part (gloo) carries this check; the Trainer reuses the group.
    dist.init_process_group(backend=script.plan["process_group_backend"])
    digest = hashlib.sha256(script.path.read_bytes()).digest()
    mine = torch.frombuffer(bytearray(digest), dtype=torch.uint8)
    gathered = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, mine)
    digests = [bytes(tensor.tolist()).hex()[:12] for tensor in gathered]
    if len(set(digests)) > 1:
        ranks = ", ".join(f"rank {number}: {value}" for number, value in enumerate(digests))
        fail(
            f"preflight failed for {script.name}: the ranks run different "
            f"scripts (SHA-256 of each file: {ranks}); copy the same rendered script "
            "to every node"
        )

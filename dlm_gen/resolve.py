"""What a document and a --target name: the target profile and the base model.

The target is a profile of rules/targets.yaml (or `host`, detected). The
base is a registry key, an `hf:org/name` Hub id (checked against the Hub's
grammar), or a local directory written as a path, relative to the document
and kept as written. Each failure is a located error on `base_model`.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from dlm_gen import basemodels
from dlm_gen.document import Document
from dlm_gen.errors import DlmError
from dlm_gen.limits import limits
from dlm_gen.rules import RuleSet
from dlm_gen.shown import clipped

HOST_TARGET = "host"
# `2x8xh100`: two nodes of the `8xh100` profile (`--nodes 2 --target 8xh100` says the same).
# A profile's own name wins: `8xa100-80gb` is the one-node, 8-GPU profile, so eight nodes
# of `a100-80gb` are written `8x(a100-80gb)`.
_NODES_PREFIX = re.compile(
    r"(?P<nodes>[1-9][0-9]*)x(?:\((?P<wrapped>.+)\)|(?P<profile>.+))", re.DOTALL
)
# How much of a target name a message quotes (a name is argv: up to 128 KiB).
_SHOWN_CHARS = 64


def with_nodes(name: str | None, nodes: int | None, rules: RuleSet) -> str | None:
    """The target name that `--nodes N` and `--target NAME` say together."""
    if nodes is None:
        return name
    name = name or rules.default_target
    written = _split_nodes(name, rules)
    if written is not None and written[0] != nodes:
        raise DlmError.one(
            "--nodes",
            None,
            None,
            f"--nodes {nodes} contradicts --target {clipped(name, _SHOWN_CHARS)}, which names "
            f"{written[0]} nodes",
        )
    profile = written[1] if written is not None else name
    resolve_target(rules, profile)  # an unknown profile is an error in the words written
    return _nodes_name(nodes, profile, rules)


def _nodes_name(nodes: int, profile: str, rules: RuleSet) -> str:
    """One spelling per plan: the profile for one node, else `NxPROFILE`, wrapped as
    `Nx(PROFILE)` where that would be another profile's name."""
    if nodes == 1:
        return profile
    joined = f"{nodes}x{profile}"
    return f"{nodes}x({profile})" if joined in rules.targets else joined


def _split_nodes(name: str, rules: RuleSet) -> tuple[int, str] | None:
    """(nodes, profile name) for a `<N>x<profile>` name whose profile is known."""
    if name in rules.targets:
        return None
    match = _NODES_PREFIX.fullmatch(name)
    profile = match and (match["wrapped"] or match["profile"])
    if profile and (profile in rules.targets or profile == HOST_TARGET):
        return _node_count(match["nodes"], name), profile
    return None


def _node_count(digits: str, name: str) -> int:
    """The node count a target name writes, within rules/limits.yaml max_nodes: the
    same cap as --nodes. The digits are bounded before int() reads them (Python refuses
    more than 4300, and a count of 23 digits would reach the SLURM batch file)."""
    cap = limits()["max_nodes"]
    if len(digits) > len(str(cap)) or int(digits) > cap:
        raise DlmError.one(
            "--target",
            None,
            None,
            f"'{clipped(name, _SHOWN_CHARS)}' spans more than {cap} nodes, the most a plan may "
            "(rules/limits.yaml max_nodes)",
        )
    return int(digits)


def resolve_target(rules: RuleSet, name: str | None) -> tuple[str, dict[str, object]]:
    """The target's name and profile, or an error with the known names.

    `host` is this machine as `dlm-gen doctor` sees it (imports torch; a plan
    for it is not reproducible on another machine).
    """
    name = name or rules.default_target
    if name in rules.targets:
        return name, {**rules.targets[name], "nodes": 1}
    if name == HOST_TARGET:
        from dlm_gen.doctor import detect_host

        return HOST_TARGET, {**detect_host(rules.targets), "nodes": 1}
    nodes = _split_nodes(name, rules)
    if nodes is not None:
        count, profile_name = nodes
        _, profile = resolve_target(rules, profile_name)
        return _nodes_name(count, profile_name, rules), {**profile, "nodes": count}
    close = (
        difflib.get_close_matches(name, list(rules.targets), n=1)
        if len(name) <= _SHOWN_CHARS
        else []
    )
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise DlmError.one(
        "--target",
        None,
        None,
        f"unknown target '{clipped(name, _SHOWN_CHARS)}'{hint} "
        f"(known: {', '.join(sorted(rules.targets))}, "
        "host; N nodes of one: Nx<name> or Nx(<name>), e.g. 2x8xh100)",
    )


def resolve_base(document: Document, rules: RuleSet) -> basemodels.BaseModel:
    """Registry key, `hf:org/name`, or a local directory written as a path.

    A registry key always means the registry's model; a local directory must
    be written as a path (`./tiny`, `../models/tiny`, `~/models/tiny`, or an
    absolute path), so a directory that happens to share a key's name never
    changes which model trains. A relative path is relative to the document
    and stays relative (normalized) in the plan and the script.
    """
    key = document.frontmatter.base_model
    families = rules.architectures
    line = document.line_of("base_model")

    def fail(message: str) -> DlmError:
        return DlmError.one(document.path, line, "base_model", message)

    if key in rules.base_models:
        return basemodels.from_registry(key, rules.base_models[key], families)
    hub_id = key.removeprefix(basemodels.HUB_PREFIX)
    for name, entry in rules.unsupported_bases.items():
        if key == name or (key.startswith(basemodels.HUB_PREFIX) and entry["hub_id"] == hub_id):
            raise fail(
                f"'{key}' names {entry['hub_id']} ({entry['modality']}), which dlm-gen does "
                f"not support: {entry['why']} (rules/base_models.yaml, unsupported)"
            )
    if key.startswith(basemodels.HUB_PREFIX):
        for entry in rules.base_models.values():
            if entry["hub_id"] == hub_id:
                return basemodels.from_registry(key, entry, families)
        problem = basemodels.hub_id_problem(hub_id)
        if problem:
            raise fail(f"expected hf:org/name with a Hub repository id, got '{key}': {problem}")
        return basemodels.from_hub_id(key, hub_id, families, limits()["max_config_bytes"])
    if not basemodels.is_written_as_path(key):
        close = [key.removesuffix("-instruct")] if key.endswith("-instruct") else []
        if not close or close[0] not in rules.base_models:  # the bare key is the instruct model
            close = difflib.get_close_matches(key, list(rules.base_models), n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        local = Path(document.path).parent / key
        if local.is_dir():
            hint += f"(a local directory is written as a path: ./{key}) "
        raise fail(
            f"unknown base model '{key}': {hint}expected a registry key "
            f"({', '.join(sorted(rules.base_models))}), hf:org/name, or the path of a "
            "directory with a config.json (./name, ../name, ~/name or /abs/name)"
        )
    written = basemodels.normalized_path(key)
    try:
        directory = Path(document.path).parent / Path(written).expanduser()
    except RuntimeError:  # "~someone" with no such user
        raise fail(f"cannot expand '{key}': no such user") from None
    if not directory.is_dir():
        raise fail(f"no directory '{written}' (relative to the document)")
    if not (directory / "config.json").exists():
        raise fail(f"directory '{written}' has no config.json")
    try:
        return basemodels.from_directory(written, directory, families, limits()["max_config_bytes"])
    except basemodels.BaseModelError as exc:
        label = f"{written}/{exc.file.relative_to(directory)}"
        field = f"{exc.field}: " if exc.field else ""
        raise fail(f"{label}: {field}{exc.message}") from None

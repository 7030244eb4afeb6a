"""`dlm-gen doctor`: what this host is, which target profile it matches, what is installed.

The only command that imports torch (to ask CUDA what is there). With a
document it also plans for this host and checks the installed versions
against the plan's requirements. `--target host` in render/explain uses the
same detection; such a script is not reproducible across machines.
"""

from __future__ import annotations

import re

from dlm_gen.errors import DlmError
from dlm_gen.runtime.preflight import installed_versions

MEMORY_TOLERANCE = 0.10  # a profile's memory may differ this much from what CUDA reports


def _broken_torch(exc: Exception) -> DlmError:
    message = " ".join(str(exc).split())[:200]
    return DlmError.one(
        "torch",
        None,
        None,
        f"installed but broken: {type(exc).__name__}: {message}; reinstall it (the README "
        "pins the version) or check the CUDA driver",
    )


def detect_host(targets: dict[str, dict] | None = None) -> dict[str, object]:
    """The host as a target profile (the keys of rules/targets.yaml).

    Whether the GPU runs FlashAttention 2 is a fact of its generation that the
    targets table holds: a profile of the same compute capability says so;
    with none, the host is taken not to (the conservative answer).
    """
    try:
        import torch
    except ImportError:
        return _cpu_profile()
    except Exception as exc:  # a broken install raises anything at import (RuntimeError, ...)
        raise _broken_torch(exc) from None
    try:
        if not torch.cuda.is_available():
            return _cpu_profile()
        properties = torch.cuda.get_device_properties(0)
    except Exception as exc:  # a driver/runtime mismatch surfaces here
        raise _broken_torch(exc) from None
    capability = float(f"{properties.major}.{properties.minor}")
    return {
        "backend": "cuda",
        "gpu": properties.name,
        "compute_capability": capability,
        "memory_gb": round(properties.total_memory / 1e9),
        "bf16": bool(torch.cuda.is_bf16_supported()),
        "flash_attn": flash_attention_known(capability, targets or {}),
        "gpu_count": torch.cuda.device_count(),
    }


def flash_attention_known(capability: float, targets: dict[str, dict]) -> bool:
    """Whether rules/targets.yaml lists FlashAttention 2 for GPUs of this capability."""
    return any(
        profile.get("flash_attn") is True and profile.get("compute_capability") == capability
        for profile in targets.values()
    )


def _cpu_profile() -> dict[str, object]:
    return {
        "backend": "cpu",
        "gpu": None,
        "compute_capability": None,
        "memory_gb": None,
        "bf16": True,
        "flash_attn": False,
        "gpu_count": 0,
    }


def matching_profile(host: dict[str, object], targets: dict[str, dict]) -> str | None:
    """The shipped profile that describes this host, if one does."""
    for name, profile in targets.items():
        if profile["backend"] != host["backend"] or profile["gpu_count"] != host["gpu_count"]:
            continue
        if host["backend"] == "cpu":
            return name
        same_capability = profile["compute_capability"] == host["compute_capability"]
        memory = float(profile["memory_gb"] or 0)
        close_memory = abs(memory - float(host["memory_gb"])) <= MEMORY_TOLERANCE * memory
        if same_capability and close_memory:
            return name
    return None


def new_profile_yaml(host: dict[str, object]) -> str:
    """A targets.yaml entry for an unknown host, to paste into rules/targets.yaml."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(host["gpu"]).lower()).strip("-") or "host"
    if int(host["gpu_count"]) > 1:
        slug = f"{host['gpu_count']}x{slug}"
    values = ", ".join(f"{key}: {_yaml_scalar(value)}" for key, value in host.items())
    return f"  {slug}:\n    {{{values}}}"


def _yaml_scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def required_packages(rules) -> list[str]:
    """Every package some row of the rule tables can require (the tables are the list)."""
    return sorted(
        {req.name for table in rules.tables for rule in table.rules for req in rule.require}
    )


def requirement_status(requirements: tuple[str, ...]) -> list[dict[str, object]]:
    """Each PEP 508 requirement with the installed version and whether it is met."""
    from packaging.requirements import Requirement

    status = []
    for text in requirements:
        requirement = Requirement(text)
        installed = installed_versions([requirement.name])[requirement.name]
        met = installed is not None and requirement.specifier.contains(installed, prereleases=True)
        status.append({"requirement": text, "installed": installed, "met": met})
    return status


def format_report(report: dict) -> str:
    """The report as a person reads it: profile, GPUs, versions, the plan and its needs."""
    host = report["host"]
    lines = [f"target profile: {report['profile'] or 'none matches this host'}"]
    if host["backend"] == "cpu":
        lines.append("GPUs: none (CUDA not available)")
    else:
        lines.append(
            f"GPUs: {host['gpu_count']} x {host['gpu']}, compute capability "
            f"{host['compute_capability']}, {host['memory_gb']} GB, "
            f"bf16 {'yes' if host['bf16'] else 'no'}"
        )
    if "new_profile_yaml" in report:
        lines.append("add this profile to rules/targets.yaml:\n" + report["new_profile_yaml"])
    lines.append("installed:")
    for name, version in report["versions"].items():
        lines.append(f"  {name:<13} {version or 'not installed'}")
    if "document" in report:
        document = report["document"]
        lines.append(f"plan for this host ({document['file']}):")
        for entry in document["reasons"]:
            name, reason = entry["adapter"], entry["reason"]
            prefix = f"[{name}] " if name else ""
            lines.append(f"  {prefix}reason: {reason}")
        for refusal in document["refusals"]:
            lines.append(f"  refused: {refusal}")
        lines.append("requirements:")
        for item in document["requirements"]:
            mark = "ok" if item["met"] else "MISSING" if item["installed"] is None else "TOO OLD"
            installed = item["installed"] or "-"
            lines.append(f"  {mark:<7} {item['requirement']:<24} installed: {installed}")
    if "probes" in report:
        lines.append("probes (the evidence of the rule tables, measured here):")
        for item in report["probes"]:
            verdict = "REVISIT" if item["outcome"] == "does not hold" else item["outcome"]
            lines.append(f"  {item['probe']}: {verdict}: {item['measured']}")
            if item["outcome"] == "does not hold":
                lines.append(f"    claim: {item['claim']}")
                lines += [f"    revisit {rule}" for rule in item["rules"]]
    return "\n".join(lines)

"""Say what a plan is and why: the reason line, the decisions, the JSON object."""

from __future__ import annotations

from dlm_gen import conditions
from dlm_gen.plan import Plan, describe_system_prompt, requirements_of
from dlm_gen.rules import RuleSet
from dlm_gen.shown import one_line, plain


def reason_lines(plans: list[Plan]) -> list[str]:
    """`reason: ...` per plan; a multi-adapter document prefixes each with its name."""
    if len(plans) == 1 and plans[0].adapter_name is None:
        return [f"reason: {plans[0].reason()}"]
    return [f"[{plan.adapter_name}] reason: {plan.reason()}" for plan in plans]


def verbose_lines(plan: Plan, rules: RuleSet) -> list[str]:
    """Each decision with the rule that made it, then warnings and requirements: one line
    each, so every value from the input (a base path, a config's class name, a source
    path) has its line breaks escaped where it is put in."""
    width = max((len(d.field) for d in plan.decisions), default=0)
    base = plan.base
    lines = [
        f"base: {one_line(base.key)} ({base.source}, "
        f"{one_line(base.architecture or 'unknown architecture')}, "
        f"{plain(base.params)} parameters"
        + (f", from the {one_line(base.config_from)}" if base.config_from else "")
        + f"); target: {plan.target}",
        "decisions:",
    ]
    explained: set[str] = set()
    for decision in plan.decisions:
        lines.append(
            f"  {decision.field:<{width}} = {one_line(plain(decision.value))}  "
            f"<- {decision.rule} ({decision.source})"
        )
        if decision.rule not in explained:
            explained.add(decision.rule)
            rule = rules.rule(decision.rule)
            lines.append(f"  {'':<{width}}   when {conditions.describe(rule.condition)}")
            if rule.why:
                lines.append(f"  {'':<{width}}   why: {rule.why}")
    lines += memory_lines(plan)
    if plan.rows is not None:
        lines.append(f"rows: {plan.rows.describe()}")
    lines += [f"source {report.describe()}" for report in plan.sources]
    lines.append(f"system prompt: {describe_system_prompt(plan.system_prompt)}")
    for warning in plan.warnings:
        where = f" at line {warning.line}, {warning.field}" if warning.line else ""
        lines.append(
            f"warning {warning.token} ({warning.source}){where}: {warning.message.strip()}"
        )
    for refusal in plan.refusals:
        lines.append(f"refused {refusal.id} ({refusal.source}): {refusal.message.strip()}")
    lines.append("requirements: " + (", ".join(plan.requirements) or "none"))
    return lines


def explain_json(plans: list[Plan], document: str, target: str) -> dict[str, object]:
    """The contract object; a multi-adapter document nests one per adapter."""
    if len(plans) == 1 and plans[0].adapter_name is None:
        return {"document": document, **plans[0].to_json()}
    return {
        "document": document,
        "target": target,
        "reason": "; ".join(f"{p.adapter_name}: {p.reason()}" for p in plans),
        "adapters": [plan.to_json() for plan in plans],
        "warnings": [w for p in plans for w in p.to_json()["warnings"]],
        "refusals": [r for p in plans for r in p.to_json()["refusals"]],
        "requirements": list(requirements_of(plans)),
    }


def _why_no_estimate(plan: Plan) -> str:
    """What the estimate lacks: the shapes (and which fields were looked for), or the size."""
    from dlm_gen.basemodels import REQUIRED_SHAPE_KEYS

    if plan.base.shape is None:
        return (
            "the base's shape is unknown: its config has no "
            + ", ".join(REQUIRED_SHAPE_KEYS)
            + " (at its top level or in text_config)"
        )
    return "the base's parameter count is unknown (no safetensors headers to count)"


def memory_lines(plan: Plan) -> list[str]:
    """The memory estimate per device, part by part (rules/memory.yaml)."""
    memory = {k.removeprefix("memory."): v for k, v in (plan.memory or {}).items()}
    if memory.get("weights_gb") is None:
        return [f"memory estimate: none ({_why_no_estimate(plan)})"]
    replica = []
    if memory.get("replica_min_total_gb") is not None and (plan.fields.get("processes") or 1) > 1:
        replica = [
            f"  one unsharded replica (DDP) needs {memory['replica_min_total_gb']:.2f} GB at one "
            f"row with checkpointing ({memory['replica_status']}): strategy "
            f"{plan.fields.get('strategy')}"
        ]

    def gb(key: str) -> str:
        return f"{memory[key]:.2f} GB"

    budget = memory.get("budget_gb")
    checkpointed = plan.fields.get("gradient_checkpointing")
    read = plan.base.shape_from
    lines = [
        "memory estimate (per device"
        + (f"; a base of no known family, shapes from {one_line(read)}" if read else "")
        + "):",
        *replica,
        f"  weights {gb('weights_gb')}, adapter {gb('adapter_gb')}, gradients "
        f"{gb('gradients_gb')}, optimizer state {gb('optimizer_gb')}, overhead "
        f"{gb('overhead_gb')}",
        f"  activations per row: {gb('activations_per_sample_gb')} "
        f"({gb('activations_checkpointed_per_sample_gb')} with gradient checkpointing)",
        f"  total at micro-batch {plan.fields.get('micro_batch_size')}"
        f"{' with checkpointing' if checkpointed else ''}: {gb('total_gb')}"
        + (f" of {budget:.2f} GB usable ({memory['status']})" if budget is not None else ""),
    ]
    if memory.get("preference_total_gb") is not None:
        lines.append(
            f"  preference phase: reference {gb('preference_reference_gb')}, activations per "
            f"triple {gb('preference_activations_per_triple_gb')} (chosen, rejected and the "
            f"reference's forward); total at {plan.fields.get('preference_micro_batch_size')} "
            f"triple(s): {gb('preference_total_gb')} ({memory['preference_status']})"
        )
    return lines

"""Estimate training memory per device, and resolve what depends on it.

The coefficients are data (`rules/memory.yaml`); this module is the
arithmetic. It runs inside the engine as a *fact provider*: once the plan
fields it reads are decided (dtype, 4-bit loading, adapter, target modules,
GaLore rank, processes, strategy, attention), it adds `memory.*` facts that
the batching table's rows test (fits, fits with checkpointing, does not fit)
and copy (the largest micro-batch that fits, the accumulation that reaches
the effective batch). Every figure is in GB (1e9 bytes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

GB = 1e9
STATUSES = ("no-estimate", "fits", "fits-checkpointed", "does-not-fit")


@dataclass(frozen=True)
class Provider:
    """Facts computed by Python from facts the tables decided (see rulechecks.evaluation_order)."""

    name: str
    reads: frozenset[str]
    provides: dict[str, tuple[object, ...] | None]


PROVIDER = Provider(
    name="memory-estimate",
    reads=frozenset(
        {
            "plan.torch_dtype",
            "plan.qlora",
            "plan.peft",
            "plan.use_dora",
            "plan.target_modules",
            "plan.galore_rank",
            "plan.processes",
            "plan.strategy",
            "plan.attn",
            "plan.preference_method",
            "plan.preference_reference",
        }
    ),
    provides={
        "memory.status": STATUSES,
        "memory.explicit_status": STATUSES,
        "memory.auto_micro_batch": None,
        "memory.auto_grad_accum": None,
        "memory.budget_gb": None,
        "memory.weights_gb": None,
        "memory.adapter_gb": None,
        "memory.gradients_gb": None,
        "memory.optimizer_gb": None,
        "memory.activations_per_sample_gb": None,
        "memory.activations_checkpointed_per_sample_gb": None,
        "memory.overhead_gb": None,
        "memory.total_gb": None,
        "memory.min_total_gb": None,
        # One row's checkpointed activations with what FSDP does not divide (the
        # adapter, the overhead): does it fit a device? When not, no node count helps,
        # and the refusal (batching.yaml) advises a shorter sequence_len instead.
        "memory.row_status": ("fits", "does-not-fit", "no-estimate"),
        "memory.trainable_params": None,
        # The preference phase (preference.yaml): chosen and rejected per triple, and the
        # reference's forward without gradients (a second model for adapter: full).
        "memory.preference_status": (*STATUSES, "no-phase"),
        "memory.preference_explicit_status": (*STATUSES, "no-phase"),
        "memory.preference_auto_micro_batch": None,
        "memory.preference_auto_grad_accum": None,
        "memory.preference_reference_gb": None,
        "memory.preference_activations_per_triple_gb": None,
        "memory.preference_activations_checkpointed_per_triple_gb": None,
        "memory.preference_total_gb": None,
        "memory.preference_min_total_gb": None,
    },
)
PREFERENCE_FACTS = tuple(name for name in PROVIDER.provides if ".preference_" in name)
# Before the strategy is chosen: does one full replica (the DDP layout) fit a device?
# distributed.yaml shards an adapter's base with FSDP only when it does not.
REPLICA_PROVIDER = Provider(
    name="replica-estimate",
    reads=PROVIDER.reads - {"plan.strategy", "plan.processes", "plan.preference_method"},
    provides={
        "memory.replica_status": ("fits", "does-not-fit", "no-estimate"),
        "memory.replica_min_total_gb": None,
    },
)


def module_shapes(shape: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    """(out, in) of each linear of one decoder layer, under both naming schemes."""
    hidden = shape["hidden_size"]
    heads = shape["num_attention_heads"]
    kv_heads = shape.get("num_key_value_heads") or heads
    head_dim = shape.get("head_dim") or hidden // heads
    inner = shape["intermediate_size"]
    return {
        "q_proj": (heads * head_dim, hidden),
        "k_proj": (kv_heads * head_dim, hidden),
        "v_proj": (kv_heads * head_dim, hidden),
        "o_proj": (hidden, heads * head_dim),
        "gate_proj": (inner, hidden),
        "up_proj": (inner, hidden),
        "down_proj": (hidden, inner),
        "qkv_proj": ((heads + 2 * kv_heads) * head_dim, hidden),
        "gate_up_proj": (2 * inner, hidden),
    }


def estimate(facts: Mapping[str, object], table: Mapping[str, object]) -> dict[str, object]:
    """The `memory.*` facts for these facts (all None but the status without a shape)."""
    shape = facts.get("base.shape")
    params = facts.get("base.params")
    linears = family_linears(facts, table)
    phase = facts.get("plan.preference_method") is not None
    if not isinstance(shape, Mapping) or not isinstance(params, int) or not linears:
        status = "no-estimate" if phase else "no-phase"
        return {name: None for name in PROVIDER.provides} | {
            "memory.status": "no-estimate",
            "memory.explicit_status": "no-estimate",
            "memory.row_status": "no-estimate",
            "memory.auto_micro_batch": table["no_estimate_micro_batch"],
            "memory.auto_grad_accum": _accumulation(facts, table, None),
            "memory.preference_status": status,
            "memory.preference_explicit_status": status,
            "memory.preference_auto_micro_batch": (
                table["no_estimate_micro_batch"] if phase else None
            ),
            "memory.preference_auto_grad_accum": (
                _accumulation(facts, table, None) if phase else None
            ),
        }
    breakdown = _breakdown(facts, table, shape, params)
    fixed = sum(breakdown[k] for k in ("weights", "adapter", "gradients", "optimizer", "overhead"))
    per_sample = breakdown["activations"]
    per_sample_checkpointed = breakdown["activations_checkpointed"]
    memory_gb = facts.get("target.memory_gb")
    budget = float(memory_gb) * GB * float(table["usable_fraction"]) if memory_gb else None
    processes = int(facts.get("plan.processes") or 1)
    ceiling = min(int(table["max_micro_batch"]), max(1, table["effective_batch"] // processes))
    candidates = [2**k for k in range(0, 16) if 2**k <= ceiling]

    explicit = facts.get("training.micro_batch_size")
    status, auto_batch, explicit_status, total = _fit(
        fixed, per_sample, per_sample_checkpointed, budget, candidates, explicit, table
    )
    preference = (
        _preference(facts, table, breakdown, budget, candidates, explicit)
        if phase
        else dict.fromkeys(PREFERENCE_FACTS)
        | {"memory.preference_status": "no-phase", "memory.preference_explicit_status": "no-phase"}
    )
    return preference | {
        "memory.status": status,
        "memory.explicit_status": explicit_status,
        "memory.auto_micro_batch": auto_batch,
        "memory.auto_grad_accum": _accumulation(facts, table, auto_batch),
        "memory.budget_gb": _gb(budget) if budget is not None else None,
        "memory.weights_gb": _gb(breakdown["weights"]),
        "memory.adapter_gb": _gb(breakdown["adapter"]),
        "memory.gradients_gb": _gb(breakdown["gradients"]),
        "memory.optimizer_gb": _gb(breakdown["optimizer"]),
        "memory.activations_per_sample_gb": _gb(per_sample),
        "memory.activations_checkpointed_per_sample_gb": _gb(per_sample_checkpointed),
        "memory.overhead_gb": _gb(breakdown["overhead"]),
        "memory.total_gb": _gb(total),
        "memory.min_total_gb": _gb(fixed + per_sample_checkpointed),
        "memory.row_status": _row_status(breakdown, budget),
        "memory.trainable_params": breakdown["trainable_params"],
    }


def _row_status(breakdown: Mapping[str, float], budget: float | None) -> str:
    """Whether one row fits a device once everything FSDP divides (weights, gradients,
    optimizer state) is sharded away: its checkpointed activations, the adapter and
    the overhead are what every process keeps whole."""
    if budget is None:
        return "no-estimate"
    kept = breakdown["activations_checkpointed"] + breakdown["adapter"] + breakdown["overhead"]
    return "fits" if kept <= budget else "does-not-fit"


def replica(facts: Mapping[str, object], table: Mapping[str, object]) -> dict[str, object]:
    """Whether one unsharded replica fits a device at one row per step with gradient
    checkpointing: the least that DDP (or one process) needs."""
    shape = facts.get("base.shape")
    params = facts.get("base.params")
    memory_gb = facts.get("target.memory_gb")
    if not isinstance(shape, Mapping) or not isinstance(params, int) or not memory_gb:
        return {"memory.replica_status": "no-estimate", "memory.replica_min_total_gb": None}
    unsharded = {**facts, "plan.strategy": "single", "plan.processes": 1}
    breakdown = _breakdown(unsharded, table, shape, params)
    least = breakdown["activations_checkpointed"] + sum(
        breakdown[k] for k in ("weights", "adapter", "gradients", "optimizer", "overhead")
    )
    budget = float(memory_gb) * GB * float(table["usable_fraction"])
    return {
        "memory.replica_status": "fits" if least <= budget else "does-not-fit",
        "memory.replica_min_total_gb": _gb(least),
    }


PROVIDERS = (REPLICA_PROVIDER, PROVIDER)
ESTIMATES = {REPLICA_PROVIDER.name: replica, PROVIDER.name: estimate}


def _fit(fixed, per_sample, per_sample_checkpointed, budget, candidates, explicit, table):
    """(status, auto micro-batch, the document's micro-batch's status, total bytes)."""

    def fits(batch: int, checkpointed: bool) -> bool:
        activations = per_sample_checkpointed if checkpointed else per_sample
        return budget is not None and fixed + batch * activations <= budget

    if budget is None:
        status, auto_batch = "no-estimate", table["no_estimate_micro_batch"]
    elif any(fits(b, False) for b in candidates):
        status, auto_batch = "fits", max(b for b in candidates if fits(b, False))
    elif any(fits(b, True) for b in candidates):
        status, auto_batch = "fits-checkpointed", max(b for b in candidates if fits(b, True))
    else:
        status, auto_batch = "does-not-fit", None
    if budget is None or not isinstance(explicit, int):
        explicit_status = "no-estimate"
    elif fits(explicit, False):
        explicit_status = "fits"
    elif fits(explicit, True):
        explicit_status = "fits-checkpointed"
    else:
        explicit_status = "does-not-fit"
    chosen = explicit if isinstance(explicit, int) else auto_batch or 1
    checkpointed = (explicit_status if isinstance(explicit, int) else status) == "fits-checkpointed"
    total = fixed + chosen * (per_sample_checkpointed if checkpointed else per_sample)
    return status, auto_batch, explicit_status, total


def _preference(facts, table, breakdown, budget, candidates, explicit) -> dict[str, object]:
    """The preference phase's estimate: the policy runs chosen and rejected (two sequences
    per triple); DPO's reference runs them again without gradients, from a frozen copy of
    the adapter (pre_adapter), the base with adapters off (base), or a second full model
    (adapter: full)."""
    peft = facts.get("plan.peft", True)
    reference = 0.0
    if facts.get("plan.preference_method") == "dpo":
        if not peft:
            reference = breakdown["weights"]
        elif facts.get("plan.preference_reference") == "pre_adapter":
            reference = breakdown["adapter"]
    fixed = reference + sum(
        breakdown[k] for k in ("weights", "adapter", "gradients", "optimizer", "overhead")
    )
    reference_logits = breakdown["reference_logits"] if reference or peft else 0.0
    if facts.get("plan.preference_method") != "dpo":
        reference_logits = 0.0
    per_triple = 2 * breakdown["activations"] + 2 * reference_logits
    per_triple_checkpointed = 2 * breakdown["activations_checkpointed"] + 2 * reference_logits
    status, auto_batch, explicit_status, total = _fit(
        fixed, per_triple, per_triple_checkpointed, budget, candidates, explicit, table
    )
    return {
        "memory.preference_status": status,
        "memory.preference_explicit_status": explicit_status,
        "memory.preference_auto_micro_batch": auto_batch,
        "memory.preference_auto_grad_accum": _accumulation(facts, table, auto_batch),
        "memory.preference_reference_gb": _gb(reference),
        "memory.preference_activations_per_triple_gb": _gb(per_triple),
        "memory.preference_activations_checkpointed_per_triple_gb": _gb(per_triple_checkpointed),
        "memory.preference_total_gb": _gb(total),
        "memory.preference_min_total_gb": _gb(fixed + per_triple_checkpointed),
    }


def _gb(value: float) -> float:
    return round(value / GB, 4)


def _accumulation(facts: Mapping[str, object], table: Mapping, auto_batch: int | None) -> int:
    explicit = facts.get("training.micro_batch_size")
    batch = explicit if isinstance(explicit, int) else auto_batch or 1
    processes = int(facts.get("plan.processes") or 1)
    return max(1, math.ceil(int(table["effective_batch"]) / (batch * processes)))


def _breakdown(facts, table, shape, params: int) -> dict[str, float]:
    # Every dtype the dtype table sets has a row here (rulechecks.check_memory_coverage
    # proves it when the tables load); every optimizer prices its state in optimizers.yaml.
    weight_bytes = float(table["weight_bytes"][facts["plan.torch_dtype"]])
    layers = int(shape["num_hidden_layers"])
    modules = module_shapes(shape)
    linears = _linears(facts, modules, table)
    linear_params = layers * sum(modules[name][0] * modules[name][1] for name in linears)
    linear_params = min(linear_params, params)
    if facts.get("plan.qlora"):
        weights = (params - linear_params) * weight_bytes + linear_params * float(
            table["nf4_bytes"]
        )
    else:
        weights = params * weight_bytes
    state_bytes = float(facts["optimizer.state_bytes"])
    galore_rank = facts.get("plan.galore_rank")
    # One layer's matrices, times `layers`: closed form, never a list as long as the
    # config says (num_hidden_layers is input; rules/limits.yaml max_base_layers bounds it).
    if facts.get("plan.peft", True):
        matrices = _adapter_matrices(facts, modules, table)
        trainable = layers * sum(out * inp for out, inp in matrices)
        if facts.get("plan.use_dora"):
            extra = layers * sum(modules[n][0] for n in _targets(facts, table) if n in modules)
            trainable += extra
        adapter = trainable * float(table["adapter_bytes"])
        gradients = trainable * float(table["adapter_bytes"])
    else:
        matrices = [modules[n] for n in linears]
        trainable = params
        adapter = 0.0
        gradients = params * weight_bytes
    if isinstance(galore_rank, int):
        projected = layers * sum(out * inp for out, inp in matrices)
        optimizer = (trainable - projected) * state_bytes
        optimizer += layers * _galore_layer_state(matrices, galore_rank, state_bytes)
    else:
        optimizer = trainable * state_bytes
    if facts.get("plan.strategy") == "fsdp":
        processes = int(facts.get("plan.processes") or 1)
        weights, gradients, optimizer = (x / processes for x in (weights, gradients, optimizer))
    tokens = int(facts["training.sequence_len"])
    hidden = int(shape["hidden_size"])
    scale = weight_bytes / 2  # the coefficients are for 16-bit activations
    units = float(table["activation_units_per_layer"])
    if facts.get("plan.attn") == "eager":
        units += float(table["eager_score_units"]) * shape["num_attention_heads"] * tokens / hidden
    per_layer = tokens * hidden * 2 * scale * units
    logits = tokens * int(shape["vocab_size"]) * float(table["logit_bytes_per_vocab"])
    kept = tokens * hidden * 2 * scale * float(table["checkpointed_units_per_layer"])
    if facts.get("plan.use_dora"):
        outputs = sum(modules[n][0] for n in _targets(facts, table) if n in modules)
        per_layer += tokens * outputs * float(table["dora_bytes_per_output"])
    backend = str(facts.get("target.backend") or "cpu")
    return {
        "weights": weights,
        "adapter": adapter,
        "gradients": gradients,
        "optimizer": optimizer,
        "overhead": float(table["overhead_gb"].get(backend, 0.0)) * GB,
        "activations": layers * per_layer + logits,
        "activations_checkpointed": layers * kept + per_layer + logits,
        # A forward without gradients keeps its logits (fp32) and one layer's activations.
        "reference_logits": tokens
        * int(shape["vocab_size"])
        * float(table["reference_logit_bytes_per_vocab"])
        + per_layer,
        "trainable_params": float(trainable),
    }


def family_linears(facts, table) -> list[str]:
    """The base family's attention and MLP linears (architectures.yaml); a base of no
    known family is priced on the common decoder's (memory.yaml unknown_family_linears)."""
    return [
        str(name) for name in facts.get("base.target_modules") or table["unknown_family_linears"]
    ]


def _linears(facts, modules, table) -> list[str]:
    """The family's linears, as shaped here."""
    return [name for name in family_linears(facts, table) if name in modules]


def _targets(facts, table) -> list[str]:
    targets = facts.get("plan.target_modules")
    if targets == "all-linear" or not isinstance(targets, list):
        return family_linears(facts, table)
    return [str(name) for name in targets]


def _adapter_matrices(facts, modules, table) -> list[tuple[int, int]]:
    """LoRA's A (r x in) and B (out x r) for every targeted linear of one layer."""
    rank = int(facts["training.lora_r"])
    matrices = []
    for name in _targets(facts, table):
        if name in modules:
            out, inp = modules[name]
            matrices += [(rank, inp), (out, rank)]
    return matrices


def _galore_layer_state(
    matrices: list[tuple[int, int]], galore_rank: int, state_bytes: float
) -> float:
    """GaLore's optimizer state for one layer's projected matrices: the low-rank moments
    and the fp32 projector of each."""
    state = 0.0
    for out, inp in matrices:
        rank = min(galore_rank, out, inp)
        state += 2 * rank * max(out, inp) * state_bytes / 2 + min(out, inp) * rank * 4
    return state

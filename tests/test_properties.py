"""Hypothesis over documents x bases x targets: the engine's promises hold for all of them."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement

from dlm_gen.launch import launch_command
from dlm_gen.pipeline import read_document
from dlm_gen.plan import make_plans
from dlm_gen.resolve import with_nodes
from dlm_gen.rules import load_rules
from tests.conftest import TINY_LLAMA_CONFIG, dlm_text

RULES = load_rules()
VOCABULARY = RULES.vocabulary
WORKDIR = Path(tempfile.mkdtemp(prefix="dlm-gen-props-"))
LOCAL_BASE = WORKDIR / "tiny-llama"
LOCAL_BASE.mkdir()
(LOCAL_BASE / "config.json").write_text(json.dumps(TINY_LLAMA_CONFIG))
BASES = [*sorted(RULES.base_models), "hf:someone/unknown", "hf:Qwen/Qwen2.5-7B", str(LOCAL_BASE)]
BODIES = [
    "Plain prose only.\n",
    "::instruction::\n### Q\nq?\n### A\na.\n",
    "::preference::\n### Prompt\np\n### Chosen\nc\n### Rejected\nr\n",
    "prose\n::instruction::\n### Q\nq\n### A\na\n::preference::\n"
    "### Prompt\np\n### Chosen\nc\n### Rejected\nr\n",
]
# The contract: the reason line names the adapter unless it is plain LoRA.
PLAIN_LORA = ("lora", "qlora")
GALORE = {o for o in VOCABULARY["optimizer"] if o.startswith("galore")}

preference_block = st.fixed_dictionaries(
    {},
    optional={
        "enabled": st.sampled_from([None, True, False]),
        "method": st.sampled_from(["dpo", "orpo"]),
        "reference": st.sampled_from(["base", "pre_adapter"]),
    },
)
adapter_block = st.fixed_dictionaries(
    {},
    optional={
        "adapter": st.sampled_from(VOCABULARY["adapter"]),
        "use_dora": st.sampled_from([None, True, False]),
        "lora_r": st.integers(1, 256),
        "target_modules": st.sampled_from(["auto", ["q_proj"], ["q_proj", "v_proj"]]),
    },
)
named_adapter_block = st.one_of(
    adapter_block,
    st.builds(lambda block, pref: {**block, "preference": pref}, adapter_block, preference_block),
)
training = st.fixed_dictionaries(
    {},
    optional={
        "optimizer": st.sampled_from(VOCABULARY["optimizer"]),
        "precision": st.sampled_from([None, *VOCABULARY["precision"]]),
        "attention": st.sampled_from(VOCABULARY["attention"]),
        "micro_batch_size": st.one_of(st.just("auto"), st.integers(1, 64)),
        "grad_accum": st.one_of(st.just("auto"), st.integers(1, 64)),
        "lr_scheduler": st.sampled_from(VOCABULARY["lr_scheduler"]),
        "preference": preference_block,
        "packing": st.booleans(),
    },
)


@st.composite
def documents(draw):
    settings_ = draw(training)
    if draw(st.booleans()):
        names = draw(
            st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True), min_size=1, max_size=3)
        )
        settings_["adapters"] = {name: draw(named_adapter_block) for name in sorted(set(names))}
    else:
        settings_.update(draw(adapter_block))
    return {"base_model": draw(st.sampled_from(BASES)), "training": settings_}, draw(
        st.sampled_from(BODIES)
    )


def plans_for(frontmatter, body, target):
    path = WORKDIR / "doc.dlm"
    path.write_text(dlm_text(frontmatter, body), encoding="utf-8")
    return make_plans(read_document(path), RULES, target)


def reason_tokens(reason: str) -> list[tuple[str, str]]:
    return [tuple(token.split("=", 1)) for token in reason.split(", ")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), st.sampled_from(sorted(RULES.targets)))
def test_engine_promises(document, target):
    frontmatter, body = document
    plans = plans_for(frontmatter, body, target)
    again = plans_for(frontmatter, body, target)
    assert [p.to_json() for p in plans] == [p.to_json() for p in again]  # deterministic
    for plan in plans:
        settings_ = plan.settings
        fields = plan.fields
        decided = [d.field for d in plan.decisions]
        assert len(decided) == len(set(decided))  # no field decided twice
        contradiction = (settings_["adapter"], settings_["use_dora"]) in (
            ("dora", False),
            ("full", True),
        )
        refused_ids = {r.id for r in plan.refusals}
        dora_refusals = {"adapter-dora-without-dora", "adapter-full-with-dora"}
        assert bool(dora_refusals & refused_ids) == contradiction
        if contradiction:
            continue
        # Every plan field was decided by exactly one rule (a refused plan, e.g. one
        # that fits no memory, may leave the fields it could not decide open).
        if not plan.refused:
            assert sorted(decided) == sorted(RULES.plan_fields)
        # use_dora iff DoRA was asked; a peft >= 0.9 requirement iff use_dora.
        asked = settings_["adapter"] == "dora" or settings_["use_dora"] is True
        assert fields["use_dora"] == asked
        peft = next(Requirement(r) for r in plan.requirements if r.startswith("peft"))
        assert bool(peft.specifier) == fields["use_dora"]
        if fields["use_dora"]:
            assert not peft.specifier.contains("0.8.0")
            assert peft.specifier.contains("0.10.0")
        qdora = settings_["adapter"] == "qlora" and fields["use_dora"]
        assert ("peft>=0.10" in plan.requirements) == qdora
        # The small-base warning iff a GaLore optimizer and a base under 1B.
        small = plan.base.params is not None and plan.base.params < 1_000_000_000
        warned = any(w.id == "galore-small-base" for w in plan.warnings)
        assert warned == (settings_["optimizer"] in GALORE and small)
        # Every requirement is PEP 508, one per package.
        names = [Requirement(r).name for r in plan.requirements]
        assert len(names) == len(set(names))
        # The optimizer is never dropped, and the document's precision wins.
        assert fields["optim"] == RULES.optimizers[settings_["optimizer"]]["hf_name"]
        if settings_["precision"] is not None:
            assert fields["precision"] == settings_["precision"]
        # The reason line agrees with the plan.
        tokens = reason_tokens(plan.reason())
        expected = [
            ("precision", fields["precision"]),
            ("attn", fields["attn"]),
            ("qlora", "on" if fields["qlora"] else "off"),
        ]
        if fields["adapter"] not in PLAIN_LORA:
            expected.append(("adapter", fields["adapter"]))
        expected.append(("optim", fields["optim"]))
        if fields.get("preference_method"):
            expected.append(("preference", fields["preference_method"]))
        expected += [("warn", w.token) for w in plan.warnings]
        assert tokens == expected
        # A preference phase iff this adapter has triples and its preference block (its
        # own, else the document's) does not turn it off; trl>=1.16 iff there is one.
        own = (frontmatter["training"].get("adapters") or {}).get(plan.adapter_name) or {}
        block = own.get("preference")
        if block is None:  # unset in the adapter's block: the document's
            block = frontmatter["training"].get("preference") or {}
        phase = "::preference::" in body and block.get("enabled") is not False
        if not plan.refused:
            expected_method = block.get("method", "dpo") if phase else None
            assert fields["preference_method"] == expected_method
        trl = next(Requirement(r) for r in plan.requirements if r.startswith("trl"))
        assert (not trl.specifier.contains("1.0.0")) == (
            fields.get("preference_method") is not None
        )
        # What a target cannot run is refused, and only then.
        refused = {r.id for r in plan.refusals}
        cpu_galore_8bit = target == "cpu" and settings_["optimizer"].startswith("galore_adamw_8bit")
        assert ("optim-needs-cuda" in refused) == cpu_galore_8bit
        no_bf16 = fields["precision"] == "bf16" and not RULES.targets[target]["bf16"]
        assert ("dtype-bf16-unsupported-target" in refused) == no_bf16
        assert "undecided-plan-field" not in refused
        # Packing iff the document leaves it on, there are SFT rows, and the attention
        # keeps packed samples apart.
        if not plan.refused:
            isolating = fields["attn"] in ("sdpa", "eager", "flash_attention_2")
            wanted = frontmatter["training"].get("packing", True)
            assert fields["packing"] == (wanted and fields["sft_phase"] and isolating)


@settings(max_examples=100, deadline=None)
@given(documents(), st.sampled_from(sorted(RULES.targets)))
def test_explain_json_always_has_the_contract_keys(document, target):
    from dlm_gen.explain import explain_json

    frontmatter, body = document
    plans = plans_for(frontmatter, body, target)
    data = explain_json(plans, "doc.dlm", target)
    json.dumps(data)  # serialisable
    objects = data.get("adapters", [data])
    for obj in objects:
        assert {"reason", "plan", "warnings", "refusals", "requirements", "decisions"} <= set(obj)
        assert {"adapter", "use_dora", "qlora", "precision", "attn", "optim"} <= set(obj["plan"])
        for decision in obj["decisions"]:
            assert set(decision) >= {"field", "value", "rule", "source"}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    documents(),
    st.sampled_from(sorted(RULES.targets)),
    st.integers(1, 8),
    st.one_of(st.none(), st.integers(1, 16)),
)
def test_nodes_multiply_processes_and_only_several_nodes_rendezvous(
    document, target, nodes, processes
):
    frontmatter, body = document
    path = WORKDIR / "doc.dlm"
    path.write_text(dlm_text(frontmatter, body), encoding="utf-8")
    named = with_nodes(target, nodes, RULES)
    plans = make_plans(read_document(path), RULES, named, processes)
    per_node = processes or max(1, RULES.targets[target]["gpu_count"])
    for plan in plans:
        if plan.refused:
            continue
        fields = plan.fields
        assert fields["processes"] == per_node * nodes
        assert (fields["nodes"], fields["processes_per_node"]) == (
            (nodes, per_node) if per_node * nodes > 1 else (1, 1)
        )
        launch = launch_command(fields, "0" * 12)
        assert ("--rdzv_backend c10d" in launch) == (nodes > 1)
        assert launch.startswith("python") == (per_node * nodes == 1)

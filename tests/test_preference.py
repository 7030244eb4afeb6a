"""The preference phase: DPO and ORPO train the triples after SFT, on the same adapter."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from dlm_gen.pipeline import plan_document
from dlm_gen.render import write_atomically
from dlm_gen.runtime.rows import rows_digest
from tests.conftest import plan_of, run_dlm_gen, script_constant, write_dlm
from tests.test_train_e2e import FAST as SFT_FAST

PAIRS = """The rules live in yaml tables.

::instruction::
### Q
Where do the rules live?
### A
In yaml tables.

### Q
What does dlm-gen write?
### A
A training script.
"""
TRIPLES = "".join(
    f"""
::preference::
### Prompt
{prompt}
### Chosen
{chosen}
### Rejected
{rejected}
"""
    for prompt, chosen, rejected in (
        ("Say hello.", "Hello, nice to meet you!", "Go away."),
        ("Name a colour.", "Blue, like the sky.", "I will not."),
        ("Where do the rules live?", "In yaml tables.", "Nobody knows."),
        ("What is two plus two?", "Four.", "Fish."),
    )
)
FAST = {**SFT_FAST, "num_epochs": 4}  # the SFT phase's quick settings, fewer epochs
LN2 = math.log(2)


def train(tmp_path: Path, base: Path, training: dict, body: str, steps: int = 4) -> dict:
    settings = {k: v for k, v in {**FAST, **training}.items() if v is not None}
    path = write_dlm(tmp_path, {"base_model": str(base), "training": settings}, body)
    planned = plan_document(path, "cpu")
    assert not planned.refused, [p.refusals for p in planned.plans]
    out = tmp_path / "generated"
    script = write_atomically(out, planned.render(out))
    output_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, str(script), "--output-dir", str(output_dir), "--max-steps", str(steps)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((output_dir / "run.json").read_text(encoding="utf-8"))


def fast_preference(**settings) -> dict:
    return {"hyperparams": {"learning_rate": 5e-2, "beta": 0.5}, **settings}


# --- Planning (fast) -----------------------------------------------------------------


def test_explain_shows_the_phase_and_its_numbers(tmp_path):
    plan = plan_of(tmp_path, {}, body=PAIRS + TRIPLES)
    assert ", optim=adamw_torch_fused, preference=dpo" in plan.reason()
    fields = plan.fields
    assert (fields["preference_trainer"], fields["preference_beta"]) == ("DPOTrainer", 0.1)
    assert fields["preference_reference"] == "pre_adapter" and fields["sft_phase"] is True
    assert "trl>=1.16" in plan.requirements
    assert plan.rows.triples_train == 4
    orpo = plan_of(tmp_path, {"preference": {"method": "orpo"}}, body=PAIRS + TRIPLES)
    assert orpo.fields["preference_beta"] == 0.1  # hyperparams.alpha: ORPO's lambda
    assert orpo.fields["preference_reference"] is None


def test_a_dpo_loss_with_orpo_is_refused_with_its_line(tmp_path):
    training = {"preference": {"method": "orpo", "loss_type": "hinge"}}
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m", "training": training}, TRIPLES)
    done = run_dlm_gen("explain", path)
    line = path.read_text(encoding="utf-8").split("\n").index("    loss_type: hinge") + 1
    assert done.returncode == 1
    assert f"doc.dlm:{line}: training.preference.loss_type: refused (preference-loss-type" in (
        done.stderr
    )


def test_a_few_pairs_warn_and_a_disabled_phase_says_its_triples_do_not_train(tmp_path):
    one = TRIPLES.split("\n::preference")[1]
    plan = plan_of(tmp_path, {}, body=PAIRS + "\n::preference" + one)
    assert "warn=few-preference-pairs(1)" in plan.reason()
    off = plan_of(tmp_path, {"preference": {"enabled": False}}, body=PAIRS + TRIPLES)
    assert off.fields["preference_method"] is None
    assert "warn=preference-disabled(4)" in off.reason()
    assert "preference=" not in off.reason()


def test_the_phase_is_sized_from_its_own_memory_estimate(tmp_path):
    plan = plan_of(tmp_path, {}, base="llama-3.1-8b", target="a100-80gb", body=PAIRS + TRIPLES)
    memory = plan.memory
    # Two sequences per triple and a reference forward: more per step than one SFT row.
    per_triple = memory["memory.preference_activations_per_triple_gb"]
    assert per_triple > 2 * memory["memory.activations_per_sample_gb"]
    assert plan.fields["preference_micro_batch_size"] <= plan.fields["micro_batch_size"]
    full = plan_of(
        tmp_path, {"adapter": "full"}, base="llama-3.1-8b", target="8xh100", body=TRIPLES
    )
    # adapter: full keeps a second, frozen model as DPO's reference.
    assert full.memory["memory.preference_reference_gb"] == full.memory["memory.weights_gb"]
    refused = plan_of(tmp_path, {}, base="llama-3.1-8b", target="a10g", body=PAIRS + TRIPLES)
    assert [r.id for r in refused.refusals] == ["batch-preference-does-not-fit"]
    assert "reference" in refused.refusals[0].message


def test_hash_diff_and_header_cover_the_phase(tmp_path):
    body = PAIRS + TRIPLES
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m"}, body)
    before = plan_document(path, "cpu").render(tmp_path / "out")
    assert "triples: 4 train" in " ".join(
        line.strip("# ") for line in before.text.split('"""')[0].splitlines()
    )
    changed = write_dlm(
        tmp_path,
        {"base_model": "smollm2-135m", "training": {"preference": {"hyperparams": {"beta": 0.3}}}},
        body,
        name="beta.dlm",
    )
    after = plan_document(changed, "cpu").render(tmp_path / "out")
    assert after.script_hash != before.script_hash
    done = run_dlm_gen("diff", path, changed, "--target", "cpu")
    assert done.returncode == 1
    assert "preference_beta: 0.1 -> 0.3" in done.stdout


def test_the_run_digest_tells_triples_apart(tmp_path):
    """compare refuses runs of different rows by this digest: a changed triple must show."""
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m"}, PAIRS + TRIPLES)
    out = tmp_path / "generated"
    script = Path(run_dlm_gen("render", path, "--out", out).stdout.strip())
    rows = script_constant(script.read_text(), "ROWS")
    changed = [
        {**row, "chosen": row["chosen"] + "!"} if row["kind"] == "preference" else row
        for row in rows
    ]
    assert rows_digest(rows) != rows_digest(changed)
    sft_only = [row for row in rows if row["kind"] != "preference"]
    assert rows_digest(sft_only) == rows_digest(list(reversed(sft_only)))


# --- Training (slow, tiny model) ------------------------------------------------------


@pytest.mark.slow
def test_dpo_starts_at_ln2_grows_margins_and_keeps_the_sft_adapter_as_reference(
    tmp_path, tiny_model
):
    # All four triples in every step, so the margins of successive steps compare.
    settings = {"micro_batch_size": 4, "preference": fast_preference()}
    settings["preference"]["hyperparams"]["learning_rate"] = 1e-2
    run = train(tmp_path, tiny_model, settings, PAIRS + TRIPLES, 6)
    (adapter,) = run["adapters"]
    assert adapter["steps"] == 6  # the SFT phase ran first
    preference = adapter["preference"]
    assert abs(preference["first_loss"] - LN2) < 1e-3
    assert preference["steps"] == 6 and preference["method"] == "dpo"
    margins = preference["margins"]
    assert margins[0] == 0 and min(margins[1:]) > 0.5 and margins[-1] > margins[1]
    assert preference["losses"][-1] < preference["losses"][0] - 0.3
    assert preference["reward_margin"]["after"] > preference["reward_margin"]["before"] == 0
    reference = preference["reference"]
    assert reference["adapter"] is True
    assert reference["sha256_start"] == reference["sft_adapter_sha256"]  # a copy of SFT's
    assert reference["sha256_after"] == reference["sha256_start"]  # frozen
    saved = Path(adapter["adapter_dir"])
    assert (saved / "adapter_model.safetensors").exists() and not (saved / "ref").exists()


@pytest.mark.slow
def test_orpo_trains_without_a_reference(tmp_path, tiny_model):
    settings = {"preference": fast_preference(method="orpo")}
    run = train(tmp_path, tiny_model, settings, PAIRS + TRIPLES, 4)
    preference = run["adapters"][0]["preference"]
    assert preference["method"] == "orpo" and preference["steps"] == 4
    assert len(preference["losses"]) == 4 and all(math.isfinite(x) for x in preference["losses"])
    assert preference["reference"] == {"kind": None, "adapter": False}


@pytest.mark.slow
def test_reference_base_compares_with_the_bare_base(tmp_path, tiny_model):
    settings = {"preference": fast_preference(reference="base")}
    run = train(tmp_path, tiny_model, settings, PAIRS + TRIPLES, 4)
    preference = run["adapters"][0]["preference"]
    assert preference["reference"] == {"kind": "base", "adapter": False}
    # After SFT the policy is no longer the base: the first loss is not ln 2.
    assert abs(preference["first_loss"] - LN2) > 1e-4


@pytest.mark.slow
def test_a_document_of_triples_only_trains_the_phase_from_the_base(tmp_path, tiny_model):
    run = train(tmp_path, tiny_model, {"preference": fast_preference()}, TRIPLES, 3)
    (adapter,) = run["adapters"]
    assert adapter["steps"] == 0 and adapter["preference"]["steps"] == 3
    assert abs(adapter["preference"]["first_loss"] - LN2) < 1e-3  # a fresh adapter is the base
    assert (Path(adapter["adapter_dir"]) / "adapter_model.safetensors").exists()


@pytest.mark.slow
def test_each_named_adapter_trains_on_its_own_triples(tmp_path, tiny_model):
    fast = {"learning_rate": FAST["learning_rate"]}  # per adapter, with training.adapters
    training = {
        "learning_rate": None,
        "adapters": {"facts": fast, "tone": {**fast, "preference": fast_preference()}},
    }
    body = PAIRS + TRIPLES.replace("::preference::", "::preference#tone::")
    run = train(tmp_path, tiny_model, training, body, 2)
    by_name = {adapter["name"]: adapter for adapter in run["adapters"]}
    assert by_name["facts"]["preference"] is None
    assert by_name["tone"]["preference"]["triples"]["train"] == 4
    assert by_name["tone"]["plan"]["preference_learning_rate"] == 5e-2  # its own block


@pytest.mark.slow
def test_full_fine_tuning_keeps_a_frozen_copy_as_reference(tmp_path, tiny_model):
    settings = {"adapter": "full", "preference": fast_preference()}
    run = train(tmp_path, tiny_model, settings, PAIRS + TRIPLES, 2)
    preference = run["adapters"][0]["preference"]
    assert abs(preference["first_loss"] - LN2) < 1e-3  # the copy equals the SFT model
    assert (Path(run["adapters"][0]["model_dir"]) / "config.json").exists()

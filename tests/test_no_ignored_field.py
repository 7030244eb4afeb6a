"""No silently ignored field: changing any training field changes what the script does."""

from __future__ import annotations

import ast
import re

import pytest

from dlm_gen.document import load_document
from dlm_gen.plan import make_plans
from dlm_gen.render import render_plans
from dlm_gen.rules import load_rules
from dlm_gen.schema import Frontmatter, TrainingConfig
from tests.conftest import write_dlm

# field: (another valid value, where the script reads it)
CHANGES = {
    "adapter": ("dora", 'plan["use_dora"]'),
    "lora_r": (16, 'settings["lora_r"]'),
    "lora_alpha": (32, 'settings["lora_alpha"]'),
    "lora_dropout": (0.1, 'settings["lora_dropout"]'),
    "target_modules": (["q_proj", "v_proj", "lm_head"], 'plan["target_modules"]'),
    "learning_rate": (1e-4, 'settings["learning_rate"]'),
    "sequence_len": (1024, 'settings["sequence_len"]'),
    "micro_batch_size": (2, 'plan["micro_batch_size"]'),
    "grad_accum": (8, 'plan["grad_accum"]'),
    "num_epochs": (5, 'settings["num_epochs"]'),
    "optimizer": ("adamw_bnb_8bit", 'plan["optim"]'),
    "lr_scheduler": ("linear", 'settings["lr_scheduler"]'),
    "warmup_ratio": (0.2, 'settings["warmup_ratio"]'),
    "precision": ("bf16", 'plan["bf16"]'),
    "attention": ("eager", 'plan["attn"]'),
    "seed": (7, 'settings["seed"]'),
    "use_dora": (True, 'plan["use_dora"]'),
    "galore_rank": (16, 'plan["galore_rank"]'),
    "galore_update_proj_gap": (50, 'plan["galore_update_proj_gap"]'),
    "galore_scale": (0.5, 'plan["galore_scale"]'),
    "galore_proj_type": ("left", 'plan["galore_proj_type"]'),
    "galore_target_modules": (["attn"], 'plan["optim_target_modules"]'),
}
# GaLore's knobs only mean something with a GaLore optimizer (elsewhere they are refused).
CONTEXT = {field: {"optimizer": "galore_adamw"} for field in CHANGES if field.startswith("galore")}
# Fields that legitimately never change a script, and why.
NO_EFFECT = {
    "dlm_id": "identifies the document; it names nothing in training",
    "dlm_version": "the document format version; it only steers parsing",
}
COVERED_ELSEWHERE = {
    "adapters": "tests/test_train_e2e.py::test_multi_adapter_trains_each_on_its_rows"
}


def render(tmp_path, training, **top):
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m", **top, "training": training})
    rules = load_rules()
    document = load_document(path)
    return render_plans(document, make_plans(document, rules, "cpu"), rules).text


def constant(text, name):
    tree = ast.parse(text)
    node = next(
        n
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == name
    )
    return ast.literal_eval(node.value)


def adapters_of(text):
    return constant(text, "ADAPTERS")


def test_every_field_is_listed():
    listed = set(CHANGES) | set(COVERED_ELSEWHERE)
    assert listed == set(TrainingConfig.model_fields)
    top_level = set(Frontmatter.model_fields) - {"training", "base_model", "system_prompt"}
    assert top_level == set(NO_EFFECT)


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_changing_a_field_changes_the_script(tmp_path, field):
    value, reader = CHANGES[field]
    context = CONTEXT.get(field, {})
    before = render(tmp_path, context)
    after = render(tmp_path, {**context, field: value})
    assert before != after
    [plan_before] = adapters_of(before)
    [plan_after] = adapters_of(after)
    kind, key = re.match(r'(\w+)\["(\w+)"\]', reader).groups()
    assert plan_before[kind][key] != plan_after[kind][key], f"{field} does not reach {reader}"
    code = after.split("ROWS = ", 1)[1]
    assert reader.replace('"', "'") in code or reader in code, f"the script never reads {reader}"


def test_system_prompt_and_base_reach_the_script(tmp_path):
    plain = render(tmp_path, {})
    assert plain != render(tmp_path, {}, system_prompt="Be brief.")
    assert 'SYSTEM_PROMPT = "Be brief."' in render(tmp_path, {}, system_prompt="Be brief.")
    path = write_dlm(tmp_path, {"base_model": "qwen2.5-0.5b"})
    rules = load_rules()
    document = load_document(path)
    render_base = render_plans(document, make_plans(document, rules, "cpu"), rules).text
    assert '"path": "Qwen/Qwen2.5-0.5B"' in render_base


@pytest.mark.parametrize("field", sorted(NO_EFFECT))
def test_listed_no_effect_fields_really_change_nothing(tmp_path, field):
    value = {"dlm_id": "01HZY3K8Q4V9W2X7T5N6M3P1R0", "dlm_version": 2}[field]
    before, after = render(tmp_path, {}), render(tmp_path, {}, **{field: value})
    assert adapters_of(before) == adapters_of(after)
    # Only the document line numbers of the rows move (one more frontmatter line).
    rows_before, rows_after = constant(before, "ROWS"), constant(after, "ROWS")
    assert [r["line"] + 1 for r in rows_before] == [r["line"] for r in rows_after]
    strip = [{k: v for k, v in r.items() if k != "line"} for r in rows_before]
    assert strip == [{k: v for k, v in r.items() if k != "line"} for r in rows_after]

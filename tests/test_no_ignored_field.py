"""No silently ignored field: changing any training field changes what the script does."""

from __future__ import annotations

import ast
import json
import re

import pytest

from dlm_gen.pipeline import read_document
from dlm_gen.plan import make_plans
from dlm_gen.render import render_plans
from dlm_gen.rules import load_rules
from dlm_gen.schema import Frontmatter, TrainingConfig
from tests.conftest import DEFAULT_BODY, runtime_source, script_plans, write_dlm

# field: (another valid value, where the script reads it)
CHANGES = {
    "adapter": ("dora", 'plan["use_dora"]'),
    "lora_r": (16, 'plan["lora_r"]'),
    "lora_alpha": (32, 'plan["lora_alpha"]'),
    "lora_dropout": (0.1, 'plan["lora_dropout"]'),
    "target_modules": (["q_proj", "v_proj", "lm_head"], 'plan["target_modules"]'),
    "learning_rate": (1e-4, 'plan["learning_rate"]'),
    "sequence_len": (1024, 'plan["sequence_len"]'),
    "micro_batch_size": (2, 'plan["micro_batch_size"]'),
    "grad_accum": (8, 'plan["grad_accum"]'),
    "num_epochs": (5, 'plan["num_epochs"]'),
    "optimizer": ("adamw_bnb_8bit", 'plan["optim"]'),
    "lr_scheduler": ("linear", 'plan["lr_scheduler"]'),
    "warmup_ratio": (0.2, 'plan["warmup_ratio"]'),
    "precision": ("bf16", 'plan["bf16"]'),
    "attention": ("eager", 'plan["attn"]'),
    "seed": (7, 'plan["seed"]'),
    "eval_fraction": (0.3, 'plan["eval_fraction"]'),
    "packing": (False, 'plan["packing"]'),
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
    "export": "the dlm tool's export settings: kept in run.json and explain --json, not trained",
}
COVERED_ELSEWHERE = {
    "adapters": "tests/test_train_e2e.py::test_multi_adapter_trains_each_on_its_rows",
    "sources": "tests/test_sources.py: each file is a row of the script",
    "sources_policy": "tests/test_sources.py::test_strict_policy_confines_paths_and_links_...",
    # Every field of the block reaches the preference phase's plan fields.
    "preference": "tests/test_preference.py: method, beta, reference, loss_type, rate",
    # The dlm tool's blocks dlm-gen does not implement: a warning or a refusal each
    # (rules/format.yaml), never silence.
    "cpt": "tests/test_format_compat.py::test_blocks_dlm_gen_does_not_implement_...",
    "gate": "tests/test_format_compat.py::test_blocks_dlm_gen_does_not_implement_...",
    "cache": "tests/test_format_compat.py::test_blocks_dlm_gen_does_not_implement_...",
    "audio": "tests/test_format_compat.py::test_blocks_dlm_gen_does_not_implement_...",
}


def render(tmp_path, training, **top):
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m", **top, "training": training})
    rules = load_rules()
    document = read_document(path)
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
    """Each adapter's whole plan, as {"plan": {...}} (PLAN with its own fields over it)."""
    return [{"plan": plan} for plan in script_plans(text)]


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
    code = after[after.index("\ndef main(") : after.index("\nROWS = ")]
    spellings = (reader, reader.replace('"', "'"))  # f-strings quote keys with '
    assert any(text in code for text in spellings), f"the script never reads {reader}"
    runtime = runtime_source()
    assert any(text in runtime for text in spellings), f"the runtime never reads {reader}"


def test_system_prompt_and_base_reach_the_script(tmp_path):
    plain = render(tmp_path, {})
    assert plain != render(tmp_path, {}, system_prompt="Be brief.")
    assert 'SYSTEM_PROMPT = "Be brief."' in render(tmp_path, {}, system_prompt="Be brief.")
    path = write_dlm(tmp_path, {"base_model": "qwen2.5-0.5b"})
    rules = load_rules()
    document = read_document(path)
    render_base = render_plans(document, make_plans(document, rules, "cpu"), rules).text
    assert '"path": "Qwen/Qwen2.5-0.5B-Instruct"' in render_base


@pytest.mark.parametrize("field", sorted(NO_EFFECT))
def test_listed_no_effect_fields_really_change_nothing(tmp_path, field):
    value = {
        "dlm_id": "01HZY3K8Q4V9W2X7T5N6M3P1R0",
        "dlm_version": 2,
        "export": {"default_quant": "Q8_0"},
    }[field]
    before, after = render(tmp_path, {}), render(tmp_path, {}, **{field: value})
    assert adapters_of(before) == adapters_of(after)
    # Only the document line numbers of the rows move (one more frontmatter line).
    rows_before, rows_after = constant(before, "ROWS"), constant(after, "ROWS")
    added = {"export": 2}.get(field, 1)  # frontmatter lines the field takes
    assert [r["line"] + added for r in rows_before] == [r["line"] for r in rows_after]
    strip = [{k: v for k, v in r.items() if k != "line"} for r in rows_before]
    assert strip == [{k: v for k, v in r.items() if k != "line"} for r in rows_after]


def regions(text: str) -> dict[str, range]:
    """Line ranges of the header, the plan literal, its requirements, the SCRIPT_HASH line."""
    lines = text.split("\n")
    header_end = next(i for i, line in enumerate(lines) if line.startswith('"""'))
    plan_start = lines.index("PLAN = {")
    requirements_start = lines.index("REQUIREMENTS = [")
    hash_line = next(i for i, line in enumerate(lines) if line.startswith("SCRIPT_HASH = "))
    return {
        "header": range(header_end),
        "plan": range(plan_start, lines.index("]", lines.index("ADAPTERS = [")) + 1),
        "requirements": range(requirements_start, lines.index("]", requirements_start) + 1),
        "hash": range(hash_line, hash_line + 1),
    }


def render_flow(tmp_path, training) -> str:
    """Like render, with lists on one line: the document keeps its line count."""
    lines = [f"  {key}: {json.dumps(value)}" for key, value in training.items()]
    path = tmp_path / "doc.dlm"
    front = "\n".join(["base_model: smollm2-135m", "training:", *lines])
    path.write_text("---\n" + front + "\n---\n" + DEFAULT_BODY)
    rules = load_rules()
    document = read_document(path)
    return render_plans(document, make_plans(document, rules, "cpu"), rules).text


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_a_field_change_touches_its_plan_lines_and_the_hash_only(tmp_path, field):
    """A reviewer's diff of a one-field change: the plan line(s), the header, the hash."""
    import difflib

    value, reader = CHANGES[field]
    default = TrainingConfig.model_fields[field].default
    context = CONTEXT.get(field, {})
    before = render_flow(tmp_path, {**context, field: default})  # same document lines
    after = render_flow(tmp_path, {**context, field: value})
    allowed_before, allowed_after = regions(before), regions(after)
    matcher = difflib.SequenceMatcher(None, before.split("\n"), after.split("\n"), autojunk=False)
    changed_plan_lines: list[int] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        for index in range(i1, i2):
            assert any(index in r for r in allowed_before.values()), (
                field,
                before.split("\n")[index],
            )
        for index in range(j1, j2):
            line = after.split("\n")[index]
            assert any(index in r for r in allowed_after.values()), (field, line)
            if index in allowed_after["plan"]:
                changed_plan_lines.append(index)
    key = re.match(r'plan\["(\w+)"\]', reader).group(1)
    lines = after.split("\n")
    start = next(  # in PLAN, or in the adapter's own decisions
        i
        for i in range(lines.index("PLAN = {"), len(lines))
        if lines[i].startswith((f'    "{key}": ', f'            "{key}": '))
    )
    end = next(i for i in range(start, len(lines)) if ",  # " in lines[i])
    assert set(changed_plan_lines) & set(range(start, end + 1)), (key, changed_plan_lines)


@pytest.mark.parametrize(
    ("example", "target"), [("galore-smollm2.dlm", "a100-80gb"), ("multi-adapter.dlm", "a10g")]
)
def test_every_plan_line_names_the_rule_explain_names(example, target):
    from tests.conftest import EXAMPLES, plan_comments

    rules = load_rules()
    document = read_document(EXAMPLES / example)
    plans = make_plans(document, rules, target)
    text = render_plans(document, plans, rules).text
    comments = plan_comments(text)
    assert len(comments) == len(plans)
    for plan, by_field in zip(plans, comments, strict=True):
        explained = {d["field"]: d["rule"] for d in plan.to_json()["decisions"]}
        assert by_field == explained
        assert set(by_field) == set(plan.fields)


# Plan fields the script need not read, and why.
READ_BY_DLM_GEN_ONLY = {
    "reason_adapter": "dlm-gen writes it into the reason line (the header and ADAPTERS)",
    "qlora": "the reason line's qlora=on|off; the script reads load_in_4bit",
    "adapter": "run.json carries it to `dlm-gen compare`, whose verdict rows match on it",
    "precision": "dtype.yaml turns it into torch_dtype, bf16 and fp16, which the script reads",
}


def test_every_plan_field_is_read_by_the_script_and_every_read_is_a_field():
    """The inverse of the tests above: no decided value is dead, no read is undecided."""
    read = set(re.findall(r"""(?:plan|\["plan"\])\[["'](\w+)["']\]""", runtime_source()))
    fields = set(load_rules().plan_fields)
    assert read - fields == set(), "the runtime reads plan keys no rule decides"
    unread = fields - read - set(READ_BY_DLM_GEN_ONLY)
    assert unread == set(), f"plan fields the script never reads: {sorted(unread)}"

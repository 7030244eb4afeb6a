"""Every row of the rule tables fires for at least one document (CI's coverage check).

A row no document can reach is dead policy: it reads as a promise and does
nothing. The cases below are plain documents; each rule id must fire
(decide, warn, refuse or require) for at least one of them on some target.
"""

from __future__ import annotations

import itertools
import json
import shutil

from dlm_gen.errors import DlmError
from dlm_gen.pipeline import read_document
from dlm_gen.plan import make_plans
from dlm_gen.resources import data_dir
from dlm_gen.rules import load_rules
from tests.conftest import TINY_LLAMA_CONFIG

PAIRS = "::instruction::\n### Q\nq\n### A\na\n"
PREFERENCE = "::preference::\n### Prompt\np\n### Chosen\nc\n### Rejected\nr\n"
MANY_PAIRS = "::instruction::\n" + "".join(f"### Q\nq{i}\n### A\na{i}\n\n" for i in range(20))
MANY_TRIPLES = "::preference::\n" + "".join(
    f"### Prompt\np{i}\n### Chosen\nc{i}\n### Rejected\nr{i}\n\n" for i in range(20)
)
BODIES = (PAIRS, PREFERENCE, "Prose only.\n" + PREFERENCE, MANY_PAIRS, MANY_TRIPLES)
ADAPTERS = ("lora", "dora", "qlora", "full")
OPTIMIZERS = tuple(load_rules().optimizers)  # every entry of rules/optimizers.yaml
# Settings that reach the remaining rows: contradictions, explicit choices, knobs.
SPECIAL = (
    {"use_dora": True},
    {"adapter": "qlora", "use_dora": True},
    {"adapter": "dora", "use_dora": False},
    {"adapter": "full", "use_dora": True},
    {"precision": "fp16"},
    {"precision": "bf16"},
    {"precision": "fp32"},
    {"attention": "flash_attention_2"},
    {"attention": "eager"},
    {"attention": "sdpa"},
    {"micro_batch_size": 64, "grad_accum": 2},
    {"micro_batch_size": 1},
    {"target_modules": ["q_proj"]},
    {"optimizer": "galore_adamw_layerwise", "grad_accum": 2},
    {"sequence_len": 32768},
    {"eval_fraction": 0.2},
    {"packing": False},
    {"lora_dropout": 0.1},
    {"cpt": {"schedule": "dapt"}},
    {"cpt": {"embed_warmup_steps": 5}},
    {"gate": {"enabled": True}},
    {"cache": {}, "audio": {}},
    *(
        {knob: value}
        for knob, value in (
            ("galore_rank", 4),
            ("galore_update_proj_gap", 5),
            ("galore_scale", 1.0),
            ("galore_proj_type", "left"),
            ("galore_target_modules", ["attn"]),
        )
    ),
)
# Settings that reach the preference phase's rows (with triples in the body).
PREFERENCE_SPECIAL = (
    {},
    {"preference": {"enabled": False}},
    {"preference": {"method": "orpo"}},
    {"preference": {"method": "orpo", "loss_type": "ipo"}},
    {"adapter": "full"},
    {"adapter": "qlora"},  # batch-preference-does-not-fit-qlora: its advice omits qlora
    {"micro_batch_size": 1},
    {"micro_batch_size": 64, "grad_accum": 2},
    {"micro_batch_size": 8, "sequence_len": 32768},
    {"adapter": "full", "micro_batch_size": 1},
)
# A local base whose chat template cannot be read (a directory in its place): the
# base-chat-template-unevaluated row (no child process is started for it).
UNREAD_TEMPLATE_BASE = "./unread-template-model"
BASES = (
    "smollm2-135m",
    "llama-3.1-8b",
    "llama-3.3-70b",
    "hf:org/unknown-size",
    UNREAD_TEMPLATE_BASE,
)
TARGETS = ("cpu", "t4", "a100-80gb", "h100", "8xh100")


def cases():
    for adapter, optimizer in itertools.product(ADAPTERS, OPTIMIZERS):
        yield {"adapter": adapter, "optimizer": optimizer}, PAIRS
    for special in SPECIAL:
        yield special, PAIRS
    for body in BODIES:
        yield {}, body
    for special in PREFERENCE_SPECIAL:
        yield special, PREFERENCE
        yield special, "Prose only.\n" + PREFERENCE


def fired_ids(rules, directory) -> set[str]:
    """Every rule id that fires for some case, base, target and process count."""
    seen: set[str] = set()
    model = directory / UNREAD_TEMPLATE_BASE
    (model / "chat_template.jinja").mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text(json.dumps(TINY_LLAMA_CONFIG))
    for index, (training, body) in enumerate(cases()):
        for base in BASES:
            path = directory / f"case{index}.dlm"
            front = json.dumps({"base_model": base, "training": training})
            path.write_text(f"---\n{front}\n---\n{body}")
            try:
                document = read_document(path)
            except DlmError:
                continue
            for target, processes in itertools.product(TARGETS, (None, 2)):
                for plan in make_plans(document, rules, target, processes):
                    seen.update(plan.fired)
    return seen


def dead_rows(rules, directory) -> set[str]:
    ids = {rule.id for table in rules.tables for rule in table.rules}
    return ids - fired_ids(rules, directory)


def test_every_rule_fires_for_some_document(tmp_path):
    assert dead_rows(load_rules(), tmp_path) == set(), "rows no document reaches (dead policy)"


def test_a_row_that_cannot_fire_is_reported(tmp_path):
    """FSDP on a single process never happens (one process runs plain python): such a
    row is dead, and the coverage check names it."""
    tables = tmp_path / "rules"
    shutil.copytree(data_dir("rules"), tables)
    with (tables / "distributed.yaml").open("a") as handle:
        handle.write(
            "\n  - id: dist-fsdp-one-process\n    why: x\n"
            "    when: {plan.strategy: fsdp, plan.launcher: python}\n"
            "    warn: {token: fsdp-one-process, message: never reached}\n"
        )
    assert dead_rows(load_rules(tables), tmp_path) == {"dist-fsdp-one-process"}

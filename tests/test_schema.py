"""The JSON Schemas: the frontmatter one stays in sync with the models; the rules one bites."""

from __future__ import annotations

import json

import jsonschema
import pytest

from dlm_gen import yamlsrc
from dlm_gen.resources import data_dir
from dlm_gen.rules import load_rules

SCHEMA_DIR = data_dir("schema")
MODELS = load_rules().models()


def test_checked_in_frontmatter_schema_matches_the_models():
    checked_in = (SCHEMA_DIR / "dlm-frontmatter.schema.json").read_text(encoding="utf-8")
    assert checked_in == MODELS.json_schema(), (
        "schema/dlm-frontmatter.schema.json is stale: run `make schema`"
    )


def test_schema_command_prints_the_schema(cli):
    code, out, _ = cli("schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["additionalProperties"] is False
    assert "base_model" in schema["required"]
    optimizers = schema["$defs"]["TrainingConfig"]["properties"]["optimizer"]["enum"]
    assert "galore_adamw_8bit" in optimizers
    # The optimizer names are the entries of rules/optimizers.yaml, in its order.
    assert optimizers == list(load_rules().optimizers)


def test_models_follow_the_rule_set_they_are_built_from(rules_copy):
    """A rules directory's vocabulary is its own, in process: no import-time snapshot."""
    vocabulary = rules_copy / "vocabulary.yaml"
    vocabulary.write_text(vocabulary.read_text().replace("[cosine, linear, constant]", "[cosine]"))
    models = load_rules(rules_copy).models()
    front = {"base_model": "smollm2-135m", "training": {"lr_scheduler": "linear"}}
    MODELS.frontmatter.model_validate(front)
    with pytest.raises(ValueError, match="cosine"):
        models.frontmatter.model_validate(front)
    assert MODELS.frontmatter.model_validate(front).training.lr_scheduler == "linear"


def test_frontmatter_schema_agrees_with_the_models_on_examples():
    schema = json.loads(MODELS.json_schema())
    validator = jsonschema.Draft202012Validator(schema)
    good = {"base_model": "smollm2-135m", "training": {"adapter": "dora", "lora_r": 16}}
    bad = {"base_model": "smollm2-135m", "training": {"lora_r": 0, "extra": 1}}
    assert validator.is_valid(good)
    MODELS.frontmatter.model_validate(good)
    assert not validator.is_valid(bad)
    with pytest.raises(ValueError):
        MODELS.frontmatter.model_validate(bad)


def test_every_shipped_table_is_valid_against_the_rules_schema():
    schema = json.loads((SCHEMA_DIR / "rules.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    tables = sorted(data_dir("rules").glob("*.yaml"))
    assert len(tables) >= 10
    for table in tables:
        value = yamlsrc.load(table.read_text(encoding="utf-8"), table.name).value
        assert validator.is_valid(value), table.name


def test_rules_schema_rejects_an_unknown_operator():
    schema = json.loads((SCHEMA_DIR / "rules.schema.json").read_text(encoding="utf-8"))
    table = {
        "kind": "rules",
        "id_prefix": "x",
        "hit_policy": "collect",
        "rules": [{"id": "x", "when": {"training.lora_r": {"between": [1, 2]}}, "set": {"a": 1}}],
    }
    assert not jsonschema.Draft202012Validator(schema).is_valid(table)

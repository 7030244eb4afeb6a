"""Bad input: exit 1, every problem with file, line, field and the expectation; no traceback."""

from __future__ import annotations

import shutil
import time

import pytest

from dlm_gen.resources import data_dir
from tests.conftest import DEFAULT_BODY


def write(tmp_path, text: str | bytes, name="bad.dlm"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def assert_fails(cli, *args, expect: list[str]):
    code, out, err = cli("explain", *args)
    assert code == 1, (out, err)
    assert "Traceback" not in err
    for fragment in expect:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    return err


def test_no_frontmatter(tmp_path, cli):
    path = write(tmp_path, "just prose\n")
    assert_fails(cli, path, expect=[f"{path}:1:", "no frontmatter", "'---'"])


def test_unterminated_frontmatter(tmp_path, cli):
    path = write(tmp_path, "---\nbase_model: smollm2-135m\n")
    assert_fails(cli, path, expect=[f"{path}:1:", "unterminated frontmatter"])


def test_malformed_yaml(tmp_path, cli):
    path = write(tmp_path, "---\nbase_model: smollm2-135m\ntraining: [1, 2\n---\n")
    assert_fails(cli, path, expect=[f"{path}:4:", "malformed YAML"])


def test_unknown_key_with_did_you_mean(tmp_path, cli):
    path = write(
        tmp_path, "---\nbase_model: smollm2-135m\ntraining:\n  optimiser: adamw_torch\n---\n"
    )
    assert_fails(
        cli, path, expect=[f"{path}:4:", "training.optimiser", "did you mean 'optimizer'?"]
    )


def test_unknown_top_level_key(tmp_path, cli):
    path = write(tmp_path, "---\nbase_modle: smollm2-135m\n---\n")
    assert_fails(
        cli, path, expect=[f"{path}:2:", "base_modle", "did you mean 'base_model'?", "missing"]
    )


def test_wrong_type(tmp_path, cli):
    path = write(tmp_path, "---\nbase_model: smollm2-135m\ntraining:\n  lora_r: eight\n---\n")
    assert_fails(cli, path, expect=[f"{path}:4:", "training.lora_r", "valid integer", "'eight'"])


def test_out_of_range(tmp_path, cli):
    path = write(tmp_path, "---\nbase_model: smollm2-135m\ntraining:\n  lora_r: 300\n---\n")
    assert_fails(
        cli, path, expect=[f"{path}:4:", "training.lora_r", "less than or equal to 256", "300"]
    )


def test_enum_value_lists_the_choices(tmp_path, cli):
    path = write(tmp_path, "---\nbase_model: smollm2-135m\ntraining:\n  optimizer: sgd\n---\n")
    assert_fails(cli, path, expect=[f"{path}:4:", "training.optimizer", "'galore_adamw'", "'sgd'"])


def test_duplicate_key(tmp_path, cli):
    text = "---\nbase_model: smollm2-135m\ntraining:\n  lora_r: 8\n  lora_r: 16\n---\n"
    path = write(tmp_path, text)
    assert_fails(cli, path, expect=[f"{path}:5:", "training.lora_r", "duplicate key", "line 4"])


def test_invalid_fence_line(tmp_path, cli):
    path = write(tmp_path, "---\nbase_model: smollm2-135m\n---\nprose\n::instrution::\n")
    assert_fails(cli, path, expect=[f"{path}:5:", "invalid fence line", "'::instruction::'"])


def test_bad_adapter_tag_name(tmp_path, cli):
    path = write(tmp_path, "---\nbase_model: smollm2-135m\n---\nprose\n::instruction#Bad::\n")
    assert_fails(cli, path, expect=[f"{path}:5:", "invalid fence line", "[a-z][a-z0-9_]"])


def test_non_utf8_bytes(tmp_path, cli):
    path = write(tmp_path, b"---\nbase_model: smollm2-135m\n---\ncaf\xe9\n")
    assert_fails(cli, path, expect=[f"{path}:4:", "not valid UTF-8", "0xe9"])


def test_alias_bomb_fails_fast(tmp_path, cli):
    lines = ["---", "base_model: smollm2-135m", 'a: &a ["x","x","x","x","x","x","x","x","x"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        refs = ",".join([f"*{previous}"] * 9)
        lines.append(f"{name}: &{name} [{refs}]")
    path = write(tmp_path, "\n".join(lines) + "\n---\n")
    start = time.perf_counter()
    assert_fails(cli, path, expect=[f"{path}:", "alias bomb"])
    assert time.perf_counter() - start < 1.0


def test_file_over_size_limit(tmp_path, cli, monkeypatch):
    tables = tmp_path / "rules"
    shutil.copytree(data_dir("rules"), tables)
    limits = tables / "limits.yaml"
    limits.write_text(limits.read_text().replace("16777216", "1000"))
    monkeypatch.setenv("DLM_GEN_RULES", str(tables))
    path = write(tmp_path, "---\nbase_model: smollm2-135m\n---\n" + "x" * 2000)
    assert_fails(cli, path, expect=[f"{path}:", "limit is 1000 bytes"])


def test_real_size_limit_is_16_mib(tmp_path, cli):
    path = tmp_path / "huge.dlm"
    with path.open("wb") as handle:
        handle.write(b"---\nbase_model: smollm2-135m\n---\n")
        handle.truncate(16 * 1024 * 1024 + 1)
    assert_fails(cli, path, expect=[f"{path}:", "16 MiB"])


def test_unknown_base_model(tmp_path, cli):
    path = write(tmp_path, "---\nbase_model: smollm-135m\n---\n" + DEFAULT_BODY)
    assert_fails(
        cli,
        path,
        expect=[f"{path}:2:", "base_model", "unknown base model", "did you mean 'smollm2-135m'"],
    )


def test_directory_base_without_config(tmp_path, cli):
    (tmp_path / "empty-model").mkdir()
    path = write(tmp_path, "---\nbase_model: ./empty-model\n---\n" + DEFAULT_BODY)
    assert_fails(cli, path, expect=[f"{path}:2:", "base_model", "has no config.json"])


def test_unknown_target(tmp_path, cli):
    path = write(tmp_path, "---\nbase_model: smollm2-135m\n---\n" + DEFAULT_BODY)
    assert_fails(cli, path, "--target", "a100", expect=["unknown target 'a100'", "a100-80gb"])


def test_missing_file(tmp_path, cli):
    path = tmp_path / "nope.dlm"
    assert_fails(cli, path, expect=[f"{path}:", "no such file"])


def test_frontmatter_not_a_mapping(tmp_path, cli):
    path = write(tmp_path, "---\n- a\n- b\n---\n")
    assert_fails(cli, path, expect=[f"{path}:2:", "must be a YAML mapping", "list"])


def test_question_without_answer(tmp_path, cli):
    body = "::instruction::\n### Q\nHello?\n"
    path = write(tmp_path, "---\nbase_model: smollm2-135m\n---\n" + body)
    assert_fails(cli, path, expect=[f"{path}:5:", "'### Q' block has no '### A'"])


def test_answer_before_question(tmp_path, cli):
    body = "::instruction::\n### A\nOops\n"
    path = write(tmp_path, "---\nbase_model: smollm2-135m\n---\n" + body)
    assert_fails(cli, path, expect=[f"{path}:5:", "'### A' here, expected '### Q'"])


def test_undeclared_adapter_tag(tmp_path, cli):
    text = "---\nbase_model: smollm2-135m\ntraining:\n  adapters:\n    tone: {}\n---\n"
    path = write(tmp_path, text + "::instruction#facts::\n### Q\nq\n### A\na\n")
    assert_fails(cli, path, expect=[f"{path}:7:", "'#facts'", "declared: tone"])


def test_flat_adapter_fields_with_adapters(tmp_path, cli):
    text = "---\nbase_model: smollm2-135m\ntraining:\n  lora_r: 32\n  adapters:\n    a: {}\n---\n"
    path = write(tmp_path, text + DEFAULT_BODY)
    err = assert_fails(cli, path, expect=[f"{path}:3:", "training: lora_r set at the top"])
    assert "expected" not in err


def test_per_adapter_block_rejects_global_field(tmp_path, cli):
    text = "---\nbase_model: smollm2-135m\ntraining:\n  adapters:\n    a:\n      seed: 1\n---\n"
    path = write(tmp_path, text + DEFAULT_BODY)
    assert_fails(cli, path, expect=[f"{path}:6:", "training.adapters.a.seed", "set seed under"])


def test_every_problem_is_reported_at_once(tmp_path, cli):
    text = (
        "---\nbase_model: smollm2-135m\ntraining:\n  lora_r: 0\n  lora_dropout: 0.9\n"
        "  optimzer: adamw_torch\n---\n::prefrence::\n"
    )
    path = write(tmp_path, text)
    err = assert_fails(
        cli,
        path,
        expect=[f"{path}:4:", f"{path}:5:", f"{path}:6:", f"{path}:8:", "did you mean"],
    )
    assert err.count("error:") == 4


@pytest.mark.parametrize("flag", ["--json", "--verbose"])
def test_refused_plan_exits_1_with_field_and_line(tmp_path, cli, flag):
    text = "---\nbase_model: smollm2-135m\ntraining:\n  optimizer: galore_adamw_8bit\n---\n"
    path = write(tmp_path, text + DEFAULT_BODY)
    err = assert_fails(
        cli,
        path,
        "--target",
        "cpu",
        flag,
        expect=[f"{path}:4:", "training.optimizer", "optim-needs-cuda", "needs CUDA"],
    )
    assert err.count("\n") == 1  # one paragraph per problem


def test_usage_error_is_exit_2(cli):
    code, _, err = cli("explain")
    assert code == 2
    assert "usage:" in err


def test_tilde_user_that_does_not_exist(tmp_path, cli):
    path = write(tmp_path, "---\nbase_model: ~no-such-user-here/model\n---\n" + DEFAULT_BODY)
    assert_fails(cli, path, expect=[f"{path}:2:", "base_model", "no such user"])


def test_yaml_tags_are_refused(tmp_path, cli):
    text = '---\nbase_model: !!python/object/apply:os.system ["echo pwned"]\n---\n'
    path = write(tmp_path, text)
    assert_fails(cli, path, expect=[f"{path}:2:", "base_model", "!!python/object/apply"])


def test_bad_adapter_name_names_the_key(tmp_path, cli):
    path = write(tmp_path, "---\nbase_model: smollm2-135m\ntraining:\n  adapters: {Bad: {}}\n---\n")
    assert_fails(cli, path, expect=[f"{path}:4:", "training.adapters.Bad:", "got 'Bad'"])

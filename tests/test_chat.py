"""The system prompt a chat template injects, found before the run (dlm_gen/chat.py)."""

from __future__ import annotations

import json
from pathlib import Path

from dlm_gen.chat import injected_system_prompt
from tests.conftest import TINY_LLAMA_CONFIG, plan_of, run_dlm_gen, write_dlm

# SmolLM2-135M-Instruct's template, as its tokenizer ships it.
SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
PLAIN_CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}"
)


def test_a_template_that_injects_a_system_turn_names_it():
    expected = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert injected_system_prompt(SMOLLM2) == expected


def test_templates_without_a_default_or_unreadable_or_hostile_give_none():
    assert injected_system_prompt(PLAIN_CHATML) is None
    assert injected_system_prompt("{% if %}") is None  # does not parse
    assert injected_system_prompt("{{ raise_exception('no system role') }}") is None
    # The sandbox refuses attribute escapes: the template is input, not trusted code.
    escape = "{{ ().__class__.__base__.__subclasses__() }}{{ messages }}"
    assert injected_system_prompt(escape) is None


def test_a_local_base_without_a_document_prompt_plans_under_its_templates(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps(TINY_LLAMA_CONFIG))
    (base / "chat_template.jinja").write_text(SMOLLM2)
    plan = plan_of(tmp_path, {}, base=str(base))
    assert plan.system_prompt == {
        "text": "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
        "source": "chat template default",
    }
    document = write_dlm(tmp_path, {"base_model": str(base), "system_prompt": "Be brief."})
    assert json.loads(run_dlm_gen("explain", document, "--json").stdout)["system_prompt"] == {
        "text": "Be brief.",
        "source": "document",
    }


def test_the_header_names_the_system_prompt(tmp_path):
    document = write_dlm(tmp_path, {"base_model": "smollm2-135m"})
    script = run_dlm_gen("render", document, "--out", tmp_path / "out").stdout.strip()
    header = Path(script).read_text(encoding="utf-8").split('"""', 1)[0]
    assert "# System turn:  'You are a helpful AI assistant named SmolLM" in header
    assert "(chat" in header and "template default)" in header


def test_a_costly_template_is_stopped_not_run_to_the_end():
    """A base directory is input too: a template that loops or allocates without end gives
    "unknown" within the time budget, never a hang or gigabytes of output."""
    import time

    costly = (
        '{{ "x" * 1000000000 }}{{ messages }}',
        "{{ 10 ** 10 ** 10 }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% for i in range(100000) %}{{ 'eight ch' }}{% endfor %}{{ messages }}",
    )
    for template in costly:
        started = time.perf_counter()
        assert injected_system_prompt(template) is None, template
        assert time.perf_counter() - started < 5, template
    assert injected_system_prompt(SMOLLM2) is not None  # the budget leaves real templates be


def test_a_system_prompt_stays_one_comment_line_in_the_header(tmp_path):
    document = write_dlm(
        tmp_path,
        {"base_model": "smollm2-135m", "system_prompt": "one\nimport os; os.system('x')\u202e"},
    )
    script = run_dlm_gen("render", document, "--out", tmp_path / "out").stdout.strip()
    header = Path(script).read_text(encoding="utf-8").split('"""', 1)[0]
    [line] = [line for line in header.splitlines() if line.startswith("# System turn:")]
    assert "\\nimport os" in line and "\\u202e" in line
    assert not any(line.startswith("import") for line in header.splitlines())

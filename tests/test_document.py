"""The body parser: sections, rows, tags, code blocks and line numbers."""

from dlm_gen.document import InstructionRow, PreferenceRow, TextRow
from dlm_gen.pipeline import read_document
from tests.conftest import write_dlm

BODY = """Intro prose line one.
More prose.

::instruction::
### Q
What is two plus two?
### A
Four.

### Q
And a code block?
### A
```
::preference::
### Q
```
Still the answer.

::preference#tone::
### Prompt
Say hi.
### Chosen
Hello!
### Rejected
Go away.

::prose::
Closing prose.
"""


def test_sections_rows_and_lines(tmp_path):
    front = {"base_model": "smollm2-135m", "training": {"adapters": {"tone": {}}}}
    path = write_dlm(tmp_path, front, BODY)
    document = read_document(path)
    lines = path.read_text().splitlines()
    body_start = lines.index("Intro prose line one.") + 1
    kinds = [(s.kind, s.adapter) for s in document.sections]
    assert kinds == [
        ("prose", None),
        ("instruction", None),
        ("preference", "tone"),
        ("prose", None),
    ]
    rows = document.rows
    assert rows[0] == TextRow(body_start, None, "Intro prose line one.\nMore prose.")
    first_q, second_q = rows[1], rows[2]
    assert isinstance(first_q, InstructionRow)
    assert (first_q.question, first_q.answer) == ("What is two plus two?", "Four.")
    assert first_q.line == body_start + 4  # the '### Q' line
    # Fence lines and headings inside a ``` block are part of the answer.
    assert second_q.answer == "```\n::preference::\n### Q\n```\nStill the answer."
    assert rows[3] == PreferenceRow(
        lines.index("### Prompt") + 1, "tone", "Say hi.", "Hello!", "Go away."
    )
    assert rows[4].text == "Closing prose."


def test_empty_body_gives_no_sections(tmp_path):
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m"}, "")
    assert read_document(path).sections == ()


def test_adapter_settings_merge_over_flat_training(tmp_path):
    front = {
        "base_model": "smollm2-135m",
        "training": {"optimizer": "galore_adamw", "adapters": {"a": {"adapter": "dora"}}},
    }
    document = read_document(write_dlm(tmp_path, front))
    settings = document.training.for_adapter("a")
    assert settings["adapter"] == "dora"
    assert settings["optimizer"] == "galore_adamw"
    assert document.adapter_names == ["a"]


def test_exponent_float_without_dot_is_a_float(tmp_path):
    path = tmp_path / "lr.dlm"
    path.write_text("---\nbase_model: smollm2-135m\ntraining:\n  learning_rate: 5e-5\n---\nx\n")
    assert read_document(path).training.learning_rate == 5e-5


def test_field_lines_point_at_keys(tmp_path):
    path = tmp_path / "lines.dlm"
    path.write_text("---\nbase_model: smollm2-135m\ntraining:\n  optimizer: galore_adamw\n---\n")
    document = read_document(path)
    assert document.line_of("training.optimizer") == 4
    assert document.line_of("training.lora_r") == 3  # unset: its parent's line

"""Documents written for the `dlm` tool: the parts of its format dlm-gen keeps or answers."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_dlm_gen, write_dlm

EXPORT = {"default_quant": "Q5_K_M", "default_temperature": 0.2, "default_top_p": None}


def test_the_export_block_is_validated_and_kept(tmp_path):
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m", "export": EXPORT})
    done = run_dlm_gen("explain", path, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["export"] == EXPORT
    plain = write_dlm(tmp_path, {"base_model": "smollm2-135m"}, name="plain.dlm")
    # It changes no training decision.
    assert json.loads(run_dlm_gen("explain", plain, "--json").stdout)["plan"] == data["plan"]
    out = tmp_path / "out"
    script = run_dlm_gen("render", path, "--out", out).stdout.strip()
    assert '"default_quant": "Q5_K_M"' in Path(script).read_text(encoding="utf-8")


def test_a_bad_export_value_is_a_located_error(tmp_path):
    for export, expected in (
        ({"default_quant": "Q3"}, "export.default_quant: expected 'Q4_K_M', 'Q5_K_M'"),
        ({"default_temperature": 3}, "export.default_temperature"),
        ({"quant": "Q8_0"}, "unknown key 'quant'"),
    ):
        path = write_dlm(tmp_path, {"base_model": "smollm2-135m", "export": export})
        done = run_dlm_gen("explain", path)
        assert done.returncode == 1 and expected in done.stderr, done.stderr
        assert "doc.dlm:" in done.stderr and "Traceback" not in done.stderr


def test_format_versions_up_to_the_dlm_tools_current_are_read(tmp_path):
    for version in (1, 2, 15):
        path = write_dlm(tmp_path, {"dlm_version": version, "base_model": "smollm2-135m"})
        assert run_dlm_gen("explain", path).returncode == 0
    path = write_dlm(tmp_path, {"dlm_version": 16, "base_model": "smollm2-135m"})
    done = run_dlm_gen("explain", path)
    assert done.returncode == 1
    assert "doc.dlm:2: dlm_version: 16 is newer than the format versions" in (done.stderr)
    assert "(1..15)" in done.stderr


def test_a_version_1_dpo_block_is_migrated_to_preference_in_memory(tmp_path):
    from dlm_gen.pipeline import read_document

    dpo = {"enabled": True, "beta": 0.2, "loss_type": "ipo", "reference": "pre_dpo_adapter"}
    path = write_dlm(
        tmp_path, {"dlm_version": 1, "base_model": "smollm2-135m", "training": {"dpo": dpo}}
    )
    preference = read_document(path).training.preference
    assert preference.enabled is True and preference.method == "dpo"
    assert preference.hyperparams.beta == 0.2 and preference.loss_type == "ipo"
    assert preference.reference == "pre_adapter"
    # An error inside the old block points at its line under `dpo:`.
    bad = write_dlm(
        tmp_path,
        {"dlm_version": 1, "base_model": "smollm2-135m", "training": {"dpo": {"beta": 3}}},
    )
    done = run_dlm_gen("explain", bad)
    line = bad.read_text(encoding="utf-8").split("\n").index("    beta: 3") + 1
    assert done.returncode == 1
    assert f"doc.dlm:{line}: training.preference.hyperparams.beta" in done.stderr
    # Only version 1 documents had `dpo`; a current one is told the key is unknown.
    current = write_dlm(
        tmp_path,
        {"dlm_version": 15, "base_model": "smollm2-135m", "training": {"dpo": dpo}},
    )
    assert "unknown key 'dpo'" in run_dlm_gen("explain", current).stderr


def test_the_preference_block_is_accepted_with_the_formats_defaults(tmp_path):
    from dlm_gen.pipeline import read_document

    path = write_dlm(
        tmp_path,
        {"base_model": "smollm2-135m", "training": {"preference": {"method": "orpo"}}},
    )
    preference = read_document(path).training.preference
    assert (preference.enabled, preference.loss_type, preference.reference) == (
        None,
        "sigmoid",
        "pre_adapter",
    )
    assert preference.hyperparams.model_dump() == {
        "beta": 0.1,
        "alpha": 0.1,
        "learning_rate": 5e-6,
        "num_epochs": 1,
    }
    bad = write_dlm(
        tmp_path, {"base_model": "smollm2-135m", "training": {"preference": {"method": "kto"}}}
    )
    assert "training.preference.method: expected 'dpo' or 'orpo'" in (
        run_dlm_gen("explain", bad).stderr
    )


# The markers as the dlm tool's docs show them (docs/format/*-section.md).
SYNTH = (
    '<!-- dlm-auto-synth: synth_teacher="self" synth_strategy="extraction" '
    'synth_at="2026-04-24T10:18:42Z" source_section_id="b6b7d8a2f4b3f9c0" -->'
)
MINED = (
    '<!-- dlm-auto-mined: judge_name="sway" judge_score_chosen="0.82" '
    'judge_score_rejected="0.31" mined_at="2026-04-23T18:42:11Z" mined_run_id="7" -->'
)
MARKED_BODY = f"""Prose first.

::instruction::
{SYNTH}
### Q
What does DGEMM do?

### A
It multiplies dense matrices.

::preference::
<!-- dlm-auto-harvest: source="run-7" -->
{MINED}
### Prompt
What is 2 + 2?
### Chosen
4.
### Rejected
The sum of two and two is four.
"""


def test_the_markers_the_dlm_tool_writes_are_metadata_not_text(tmp_path):
    from dlm_gen.pipeline import read_document

    path = write_dlm(tmp_path, {"base_model": "smollm2-135m"}, MARKED_BODY)
    rows = read_document(path).rows
    assert [type(row).__name__ for row in rows] == ["TextRow", "InstructionRow", "PreferenceRow"]
    assert rows[1].question == "What does DGEMM do?" and "dlm-auto" not in rows[2].prompt
    wrong = MARKED_BODY.replace(
        "::instruction::\n<!-- dlm-auto-synth", "::instruction::\n<!-- dlm-auto-mined"
    )
    bad = write_dlm(tmp_path, {"base_model": "smollm2-135m"}, wrong)
    done = run_dlm_gen("explain", bad)
    line = wrong.split("\n").index("::instruction::") + 2 + 3  # the marker, after 3 lines
    assert done.returncode == 1
    assert f"doc.dlm:{line}: the dlm-auto-mined marker belongs after a ::preference::" in (
        done.stderr
    )


def test_image_and_audio_sections_are_refused_precisely(tmp_path):
    body = 'Prose.\n\n::image path="figures/a.png" alt="A chart"::\nA caption.\n'
    done = run_dlm_gen("explain", write_dlm(tmp_path, {"base_model": "smollm2-135m"}, body))
    assert done.returncode == 1
    assert "doc.dlm:6: ::image:: sections (the dlm format's image inputs) are not supported" in (
        done.stderr
    )
    audio = '::audio path="a.wav" transcript="Hello."::\n'
    done = run_dlm_gen("explain", write_dlm(tmp_path, {"base_model": "smollm2-135m"}, audio))
    assert "::audio:: sections" in done.stderr and "Traceback" not in done.stderr


def test_blocks_dlm_gen_does_not_implement_warn_or_refuse_with_their_line(tmp_path):
    training = {
        "cpt": {"schedule": "dapt"},
        "cache": {"enabled": False},
        "audio": {"auto_resample": True},
        "adapters": {"a": {}, "b": {}},
        "gate": {"enabled": True, "steps": 50},
    }
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m", "training": training})
    done = run_dlm_gen("explain", path, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    tokens = {w["token"]: w for w in data["adapters"][0]["warnings"]}
    assert {"cpt-schedule-ignored(dapt)", "gate-not-trained", "cache-ignored", "audio-ignored"} <= (
        set(tokens)
    )
    lines = path.read_text(encoding="utf-8").split("\n")
    assert tokens["gate-not-trained"]["line"] == lines.index("    enabled: true") + 1
    assert tokens["cache-ignored"]["field"] == "training.cache"
    verbose = run_dlm_gen("explain", path, "--verbose").stdout
    assert f"at line {lines.index('  cache:') + 1}, training.cache:" in verbose
    # Unfreezing the embeddings would change what trains: refused, at its line.
    refused = write_dlm(
        tmp_path,
        {"base_model": "smollm2-135m", "training": {"cpt": {"embed_warmup_steps": 10}}},
    )
    done = run_dlm_gen("explain", refused)
    line = refused.read_text(encoding="utf-8").split("\n").index("    embed_warmup_steps: 10") + 1
    assert done.returncode == 1
    assert (
        f"doc.dlm:{line}: training.cpt.embed_warmup_steps: refused (format-cpt-embed-warmup)"
        in (done.stderr)
    )
    plain = write_dlm(tmp_path, {"base_model": "smollm2-135m"}, name="plain.dlm")
    assert "warn=" not in run_dlm_gen("explain", plain).stdout

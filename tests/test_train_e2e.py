"""Rendered scripts train for real on the CPU, on a tiny Llama built offline."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dlm_gen.literals import visible
from dlm_gen.pipeline import plan_document, read_document
from dlm_gen.plan import make_plans
from dlm_gen.render import render_plans, write_atomically
from dlm_gen.rules import load_rules
from tests.conftest import write_dlm

pytestmark = pytest.mark.slow

BODY = """The rules live in yaml tables. The rules live in yaml tables.

::instruction::
### Q
Where do the rules live?
### A
In yaml tables.

### Q
What does dlm-gen write?
### A
A training script.

### Q
Which adapter is trained?
### A
A small adapter.
"""
FAST = {
    "sequence_len": 256,
    "micro_batch_size": 2,
    "grad_accum": 1,
    "learning_rate": 5e-3,
    "warmup_ratio": 0.0,
    "num_epochs": 30,
}


def render(directory: Path, base: Path, training: dict, body=BODY, target="cpu") -> Path:
    path = write_dlm(directory, {"base_model": str(base), "training": {**FAST, **training}}, body)
    rules = load_rules()
    document = read_document(path)
    plans = make_plans(document, rules, target)
    assert not any(plan.refused for plan in plans), [p.refusals for p in plans]
    out = directory / "generated"
    return write_atomically(out, render_plans(document, plans, rules, out))


def run(script: Path, output_dir: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), "--output-dir", str(output_dir), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def train(directory, base, training, steps=8, body=BODY) -> tuple[dict, Path]:
    script = render(directory, base, training, body)
    output_dir = directory / "run"
    result = run(script, output_dir, "--max-steps", str(steps))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((output_dir / "run.json").read_text()), output_dir


def adapter_tensors(adapter_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(adapter_dir / "adapter_model.safetensors"))


def test_lora_trains_and_writes_a_complete_run_json(tmp_path, tiny_model):
    training = {"adapter": "lora", "eval_fraction": 0.25}
    manifest, _ = train(tmp_path, tiny_model, training, steps=12)
    [run_] = manifest["adapters"]
    assert {"hash", "adapters", "versions", "base_model", "target"} <= set(manifest)
    # The dlm tool's export: block is kept (defaults here), never trained.
    assert manifest["export"] == {
        "default_quant": "Q4_K_M",
        "default_temperature": None,
        "default_top_p": None,
    }
    assert run_["steps"] == 12
    for key in ("final_train_loss", "eval_loss", "wall_seconds", "tokens_per_second"):
        assert math.isfinite(run_[key]) and run_[key] > 0, key
    assert run_["peak_memory_bytes"] > 0
    assert run_["final_train_loss"] < run_["first_loss"]
    # The script splits exactly as the plan said (explain, the header).
    [plan] = plan_document(tmp_path / "doc.dlm", "cpu").plans
    assert (
        run_["rows"]
        == plan.rows.to_json()
        == {
            "train": 3,
            "held_out": 1,
            "eval_on": "held-out rows",
        }
    )
    args = run_["trainer_args"]
    assert args["optim"] == "adamw_torch_fused" and args["learning_rate"] == 5e-3
    assert run_["optimizer"]["class"] == "torch.optim.adamw.AdamW"
    assert args["per_device_train_batch_size"] == 2 and args["gradient_accumulation_steps"] == 1
    assert args["max_length"] == 256 and args["seed"] == 42
    assert args["bf16"] is False and args["fp16"] is False
    assert args["gradient_checkpointing"] is False
    tensors = adapter_tensors(Path(run_["adapter_dir"]))
    assert any("lora_A" in name for name in tensors)
    assert not any("lora_magnitude_vector" in name for name in tensors)
    assert manifest["versions"]["transformers"]
    # How far the adapter moved the model on the held-out rows, and per-step timing.
    assert run_["delta_kl"] > 0 and 0 < run_["delta_js"] <= math.log(2)
    assert run_["positions"] > 0
    assert len(run_["step_seconds"]) == 12 and run_["mean_step_seconds"] > 0
    assert len(run_["losses"]) == 12
    assert len(run_["rows_sha256"]) == 64
    # Where the wall time went: every phase measured, and they add up to the record's time.
    timings = manifest["timings"]
    assert all(timings[key] > 0 for key in ("to_first_step", "loop", "after_last_step"))
    parts = timings["to_first_step"] + timings["loop"] + timings["after_last_step"]
    assert parts == pytest.approx(timings["total"])
    assert 0 < run_["step_marks"]["first_step"] < run_["step_marks"]["last_step_end"]
    # No instruction row is longer than sequence_len: nothing was cut (trainer-truncation-*).
    assert run_["truncation"] == {"rows_cut": 0, "tokens_lost": 0, "instruction_rows": 3}


def test_lm_head_in_target_modules_trains_in_full(tmp_path, tiny_model):
    training = {"target_modules": ["q_proj", "v_proj", "lm_head"]}
    manifest, _ = train(tmp_path, tiny_model, training, steps=3)
    [run_] = manifest["adapters"]
    tensors = adapter_tensors(Path(run_["adapter_dir"]))
    assert any("lm_head" in name and "lora" not in name for name in tensors)
    assert {name.split(".")[-3] for name in tensors if "lora_A" in name} == {"q_proj", "v_proj"}


def test_dora_saves_magnitude_vectors(tmp_path, tiny_model):
    manifest, _ = train(tmp_path, tiny_model, {"adapter": "dora"})
    [run_] = manifest["adapters"]
    tensors = adapter_tensors(Path(run_["adapter_dir"]))
    assert any("lora_magnitude_vector" in name for name in tensors)
    config = json.loads((Path(run_["adapter_dir"]) / "adapter_config.json").read_text())
    assert config["use_dora"] is True


def test_galore_really_projects_the_trainable_layers(tmp_path, tiny_model):
    manifest, _ = train(tmp_path, tiny_model, {"optimizer": "galore_adamw"})
    [run_] = manifest["adapters"]
    assert run_["optimizer"]["class"] == "galore_torch.adamw.AdamW"
    # 7 target modules x 2 layers x (lora_A, lora_B): every trainable matrix is projected.
    assert run_["optimizer"]["projected_tensors"] == 28
    assert run_["trainer_args"]["optim_target_modules"] == [".*attn.*", ".*mlp.*"]
    assert math.isfinite(run_["final_train_loss"])


def test_adamw_bnb_8bit_trains_on_cpu(tmp_path, tiny_model):
    manifest, _ = train(tmp_path, tiny_model, {"optimizer": "adamw_bnb_8bit"})
    [run_] = manifest["adapters"]
    assert run_["optimizer"]["class"].startswith("bitsandbytes.")
    assert math.isfinite(run_["final_train_loss"])


def test_qlora_loads_4bit_and_trains_on_cpu(tmp_path, tiny_model):
    manifest, _ = train(tmp_path, tiny_model, {"adapter": "qlora"})
    [run_] = manifest["adapters"]
    assert run_["loaded_in_4bit"] is True
    assert math.isfinite(run_["final_train_loss"])
    assert (Path(run_["adapter_dir"]) / "adapter_model.safetensors").is_file()


def test_same_script_twice_gives_bit_identical_adapters(tmp_path, tiny_model):
    script = render(tmp_path, tiny_model, {"adapter": "dora"})
    first = run(script, tmp_path / "one", "--max-steps", "6")
    second = run(script, tmp_path / "two", "--max-steps", "6")
    assert first.returncode == 0 and second.returncode == 0, second.stderr[-2000:]
    a = adapter_tensors(tmp_path / "one" / "adapter")
    b = adapter_tensors(tmp_path / "two" / "adapter")
    assert a.keys() == b.keys()
    assert all((a[name] == b[name]).all() for name in a)
    assert any((a[name] != 0).any() for name in a if "lora_B" in name)  # it trained


def test_multi_adapter_trains_each_on_its_rows(tmp_path, tiny_model):
    body = (
        "Shared prose for every adapter.\n\n"
        "::instruction#facts::\n### Q\nfact one?\n### A\nyes.\n\n### Q\nfact two?\n### A\nno.\n\n"
        "::instruction#tone::\n### Q\nhello?\n### A\nhi!\n"
    )
    adapters = {
        "facts": {"adapter": "dora", "learning_rate": 5e-3},
        "tone": {"adapter": "lora", "learning_rate": 1e-3},
    }
    training = {"adapters": adapters, "learning_rate": 2e-4}  # the flat field stays default
    manifest, output_dir = train(tmp_path, tiny_model, training, steps=4, body=body)
    by_name = {run_["name"]: run_ for run_ in manifest["adapters"]}
    assert set(by_name) == {"facts", "tone"}
    # Small documents train every row and evaluate on them (runtime-eval-on-training-rows).
    assert by_name["facts"]["rows"] == {"train": 3, "held_out": 0, "eval_on": "training rows"}
    assert by_name["tone"]["rows"] == {"train": 2, "held_out": 0, "eval_on": "training rows"}
    assert by_name["tone"]["trainer_args"]["learning_rate"] == 1e-3
    assert (output_dir / "facts" / "adapter" / "adapter_model.safetensors").is_file()
    assert (output_dir / "tone" / "adapter" / "adapter_model.safetensors").is_file()
    facts = adapter_tensors(output_dir / "facts" / "adapter")
    assert any("lora_magnitude_vector" in name for name in facts)
    # What the run left is a run's (each NAME/ holds only what a run writes there, no
    # link): trained into again, and answered from by each adapter.
    [script] = (tmp_path / "generated").glob("train_*.py")
    again = run(script, output_dir, "--max-steps", "1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert not list(output_dir.glob("*/checkpoint-*"))
    answered = run(script, output_dir, "--prompt", "fact one?")
    assert answered.returncode == 0, answered.stderr[-3000:]
    assert [line.split()[0] for line in answered.stdout.splitlines()] == ["[facts]", "[tone]"]


def test_resume_continues_from_the_last_checkpoint(tmp_path, tiny_model):
    script = render(tmp_path, tiny_model, {})
    output_dir = tmp_path / "run"
    first = run(script, output_dir, "--max-steps", "4", "--save-steps", "2", "--keep-checkpoints")
    assert first.returncode == 0, first.stderr[-2000:]
    assert (output_dir / "checkpoint-4").is_dir()
    second = run(script, output_dir, "--max-steps", "6", "--save-steps", "2", "--resume")
    assert second.returncode == 0, second.stderr[-2000:]
    [run_] = json.loads((output_dir / "run.json").read_text())["adapters"]
    assert run_["steps"] == 6 and len(run_["losses"]) == 6  # the history carries over
    logged = re.findall(r"^step (\d+)/6  loss", second.stdout, flags=re.MULTILINE)
    assert logged == ["5", "6"]  # but only steps 5 and 6 ran again


def test_a_finished_run_keeps_the_result_a_run_card_and_no_checkpoint(tmp_path, tiny_model):
    script = render(tmp_path, tiny_model, {"warmup_ratio": 0.5})
    output_dir = tmp_path / "run"
    done = run(script, output_dir, "--max-steps", "4", "--save-steps", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(output_dir.glob("checkpoint-*"))  # runtime-defaults: keep_checkpoints false
    assert (output_dir / "adapter" / "adapter_model.safetensors").is_file()
    card = (output_dir / "README.md").read_text()
    assert "[None]" not in card and str(tiny_model.name) in card and "--prompt" in card
    assert card == (output_dir / "adapter" / "README.md").read_text()
    # The console: one line per step with i/N, the samples, a summary; no library noise.
    assert re.findall(r"^step (\d)/4  loss", done.stdout, flags=re.MULTILINE) == list("1234")
    assert "before:" in done.stdout and "after:" in done.stdout
    assert re.search(r"^4 steps in \d+s \(median step", done.stdout, flags=re.MULTILINE)
    noise = ("Loading weights", "gemm_4bit_forward", "FutureWarning", "{'loss'")
    assert not [n for n in noise if n in done.stdout + done.stderr], done.stderr[-2000:]
    [run_] = json.loads((output_dir / "run.json").read_text())["adapters"]
    # optim-first-step-learns: with half the steps warming up, no step runs at LR 0.
    assert len(run_["learning_rates"]) == 4 and min(run_["learning_rates"]) > 0
    assert run_["system_prompt"] == {"text": None, "source": "none"}  # the fallback template
    assert len(run_["samples"]) == 3 and {"before", "after", "split"} <= set(run_["samples"][0])
    answered = run(script, output_dir, "--prompt", "Where do the rules live?")
    assert answered.returncode == 0, answered.stderr[-2000:]
    # The saved adapter answers as the trained model did at the end of the run (shown
    # escaped, as every console line of the script).
    [sample] = [s for s in run_["samples"] if s["question"] == "Where do the rules live?"]
    assert answered.stdout.strip() == visible(" ".join(sample["after"].split()))


def test_the_first_step_changes_the_adapter(tmp_path, tiny_model):
    """A 1-step run with warm-up: the HF schedule alone would run it at LR 0."""
    manifest, output_dir = train(tmp_path, tiny_model, {"warmup_ratio": 0.5}, steps=1)
    [run_] = manifest["adapters"]
    assert run_["learning_rates"][0] > 0
    tensors = adapter_tensors(output_dir / "adapter")
    assert any(t.abs().sum() > 0 for name, t in tensors.items() if "lora_B" in name)


def test_cuda_script_on_a_cpu_host_stops_before_loading(tmp_path, tiny_model):
    script = render(tmp_path, tiny_model, {"adapter": "qlora"}, target="a100-80gb")
    result = run(script, tmp_path / "run")
    assert result.returncode == 1
    assert "rendered for a100-80gb" in result.stderr and "no CUDA GPU" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_help_works_without_torch(tmp_path, tiny_model):
    script = render(tmp_path, tiny_model, {})
    blocker = tmp_path / "blocked"
    for name in ("torch", "transformers", "peft", "trl"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text("raise ImportError('blocked')\n")
    result = subprocess.run(
        [sys.executable, str(script), "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(blocker)},
    )
    assert result.returncode == 0 and "--max-steps" in result.stdout


def test_missing_requirement_is_reported_before_anything_heavy(tmp_path, tiny_model):
    script = render(tmp_path, tiny_model, {"attention": "flash_attention_2"}, target="h100")
    result = run(script, tmp_path / "run")
    assert result.returncode == 1
    assert "1. flash-attn is not installed: pip install 'flash-attn>=2'" in result.stderr


def test_qdora_trains_on_cpu_and_evaluates_like_qlora(tmp_path, tiny_model):
    """QDoRA trains on a CPU and its plan keeps the 4-bit weights unpacked. The repacking
    bug itself (a wrong DoRA weight norm) needs real weights to show: the tiny model's
    losses barely move with it, so tests/test_real_model.py::test_qdora_on_cpu_scores_
    like_qlora is the test that fails without quant-cpu-dora-unpacked."""
    (tmp_path / "qdora").mkdir()
    (tmp_path / "qlora").mkdir()
    qdora, _ = train(tmp_path / "qdora", tiny_model, {"adapter": "qlora", "use_dora": True})
    qlora, _ = train(tmp_path / "qlora", tiny_model, {"adapter": "qlora"})
    [run_] = qdora["adapters"]
    [twin] = qlora["adapters"]
    assert run_["loaded_in_4bit"] is True and run_["plan"]["use_dora"] is True
    assert run_["plan"]["cpu_4bit_packing"] is False and twin["plan"]["cpu_4bit_packing"]
    tensors = adapter_tensors(Path(run_["adapter_dir"]))
    assert any("lora_magnitude_vector" in name for name in tensors)
    assert math.isfinite(run_["final_train_loss"])
    # Eval is the training rows here: the loss eval reports must be the one training saw.
    assert run_["eval_loss"] < 1.5 * twin["eval_loss"], (run_["eval_loss"], twin["eval_loss"])
    assert run_["eval_loss"] < 2 * run_["final_train_loss"] + 0.5


def test_full_fine_tuning_with_galore_and_its_knobs(tmp_path, tiny_model):
    training = {
        "adapter": "full",
        "optimizer": "galore_adamw",
        "galore_rank": 4,
        "galore_update_proj_gap": 2,
        "galore_proj_type": "left",
    }
    manifest, output_dir = train(tmp_path, tiny_model, training, steps=6)
    [run_] = manifest["adapters"]
    assert run_["adapter_dir"] is None
    assert (output_dir / "model" / "model.safetensors").is_file()
    optimizer = run_["optimizer"]
    assert optimizer["class"] == "galore_torch.adamw.AdamW"
    assert optimizer["galore"] == {
        "rank": 4,
        "update_proj_gap": 2,
        "scale": 0.25,
        "proj_type": "left",
    }
    # 2 layers x 7 attention/MLP projections, the base weights themselves.
    assert optimizer["projected_tensors"] == 14
    assert run_["trainable_parameters"] > 100_000  # every weight trains
    assert run_["final_train_loss"] < run_["first_loss"]
    assert run_["delta_kl"] > 0  # measured against a freshly loaded base


def test_two_process_torchrun_on_cpu(tmp_path, tiny_model):
    """gloo DDP: both ranks train, rank 0 alone writes one adapter and one run.json."""
    script = render_for_processes(tmp_path, tiny_model, 2)
    output_dir = tmp_path / "run"
    plain = run(script, output_dir, "--max-steps", "2")
    assert plain.returncode == 1 and "torchrun --nproc_per_node 2" in plain.stderr
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            str(script),
            "--output-dir",
            str(output_dir),
            "--max-steps",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 0: trained 4 step(s)" in result.stdout
    assert "rank 1: trained 4 step(s)" in result.stdout
    manifest = json.loads((output_dir / "run.json").read_text())
    assert manifest["world_size"] == 2
    assert [p.name for p in output_dir.rglob("run.json")] == ["run.json"]
    # The adapter only: the checkpoint served while training (runtime-defaults).
    assert len(list(output_dir.rglob("adapter_model.safetensors"))) == 1
    assert (output_dir / "adapter" / "adapter_model.safetensors").is_file()
    [run_] = manifest["adapters"]
    assert run_["trainer_args"]["max_steps"] == 4 and math.isfinite(run_["final_train_loss"])


def header_launch(script: Path, env: dict[str, str]) -> list[str]:
    """The header's Launch line up to the script's name, as argv, run with this Python."""
    from tests.test_multinode import header_launch as launch_text

    line = launch_text(script.read_text())
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        line = line.replace(f"${name}", env[name])
    words = shlex.split(line)
    words = words[: words.index(script.name)]
    assert words[0] == "torchrun"
    return [sys.executable, "-m", "torch.distributed.run", *words[1:]]


def launch_two_nodes(scripts: list[Path], output_dir: Path, *args: str) -> list:
    """One launcher per "node" on the loopback interface, started as the header says."""
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    launches = [
        subprocess.Popen(
            [*header_launch(script, env), str(script), "--output-dir", str(output_dir), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for script in scripts
    ]
    return [(launch, *launch.communicate(timeout=600)) for launch in launches]


def test_two_nodes_on_the_loopback_train_one_run(tmp_path, tiny_model):
    """Two torchrun launchers (the header's line, one process each, gloo) meet at a c10d
    rendezvous on 127.0.0.1: both train the same steps; one run.json, one adapter."""
    script = render(tmp_path, tiny_model, {}, target="2xcpu")
    output_dir = tmp_path / "run"
    results = launch_two_nodes([script, script], output_dir, "--max-steps", "3")
    for launch, _, stderr in results:
        assert launch.returncode == 0, stderr[-3000:]
    stdout = "".join(out for _, out, _ in results)
    assert "rank 0: trained 3 step(s)" in stdout and "rank 1: trained 3 step(s)" in stdout
    manifest = json.loads((output_dir / "run.json").read_text())
    assert (manifest["world_size"], manifest["nodes"], manifest["processes_per_node"]) == (2, 2, 1)
    assert [p.name for p in output_dir.rglob("run.json")] == ["run.json"]
    assert len(list(output_dir.rglob("adapter_model.safetensors"))) == 1
    [run_] = manifest["adapters"]
    assert run_["trainer_args"]["max_steps"] == 3 and math.isfinite(run_["final_train_loss"])


def test_ranks_running_different_scripts_are_refused_before_training(tmp_path, tiny_model):
    script = render(tmp_path, tiny_model, {}, target="2xcpu")
    copy = tmp_path / "other-node" / script.name  # another checkout: one byte differs
    copy.parent.mkdir()
    copy.write_text(script.read_text() + "# edited\n")
    output_dir = tmp_path / "run"
    results = launch_two_nodes([script, copy], output_dir, "--max-steps", "3")
    for launch, _, stderr in results:
        assert launch.returncode != 0
        assert "the ranks run different scripts" in stderr, stderr[-3000:]
    assert not output_dir.exists()  # refused before anything was written


def test_a_multi_node_script_refuses_a_one_node_launch(tmp_path, tiny_model):
    script = render(tmp_path, tiny_model, {}, target="2xcpu")
    result = run(script, tmp_path / "run")
    assert result.returncode == 1
    assert "trains on 2 node(s) x 1 process(es) per node" in result.stderr
    assert "--nnodes 2 --nproc_per_node 1 --rdzv_backend c10d" in result.stderr


def render_for_processes(directory: Path, base: Path, processes: int) -> Path:
    path = write_dlm(directory, {"base_model": str(base), "training": FAST}, BODY)
    rules = load_rules()
    document = read_document(path)
    plans = make_plans(document, rules, "cpu", processes)
    out = directory / "generated"
    return write_atomically(out, render_plans(document, plans, rules, out))


MANY_SHORT_PAIRS = "".join(
    f"::instruction::\n### Q\nQuestion {i}?\n### A\n{'Yes. ' * (1 + i % 4)}\n\n" for i in range(30)
)


def test_packed_rows_set_the_steps_warmup_and_evaluation(tmp_path, tiny_model):
    """Steps and warm-up count packed rows, not samples; the held-out rows are packed too;
    the record's token counts add up to what the batches held."""
    settings = {"num_epochs": 2, "warmup_ratio": 0.5, "eval_fraction": 0.2, "sequence_len": 128}
    script = render(tmp_path, tiny_model, settings, MANY_SHORT_PAIRS)
    result = run(script, tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    [run_] = json.loads((tmp_path / "run" / "run.json").read_text())["adapters"]
    packing = run_["packing"]
    assert packing["on"] and packing["train_rows"] < packing["train_samples"]
    assert packing["train_samples"] == run_["rows"]["train"]
    assert packing["eval_rows"] < packing["eval_samples"] == run_["rows"]["held_out"]
    per_epoch = math.ceil(packing["train_rows"] / FAST["micro_batch_size"])
    assert run_["steps"] == per_epoch * settings["num_epochs"]
    assert run_["trainer_args"]["warmup_steps"] == math.ceil(run_["steps"] * 0.5)
    assert run_["padding_tokens"] < run_["tokens_trained"] / 4  # rows nearly full


@pytest.mark.slow
def test_report_to_tensorboard_writes_the_loss_it_prints(tmp_path, tiny_model):
    """--report-to tensorboard: the Trainer's own integration writes event files beside
    the adapter, holding the same per-step loss the script prints and run.json keeps."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    script = render(tmp_path, tiny_model, {})
    output_dir = tmp_path / "run"
    done = run(script, output_dir, "--max-steps", "3", "--report-to", "tensorboard")
    assert done.returncode == 0, done.stderr[-3000:]
    [directory] = {path.parent for path in (output_dir / "runs").glob("*/events.out.tfevents.*")}
    accumulator = EventAccumulator(str(directory))
    accumulator.Reload()
    logged = [event.value for event in accumulator.Scalars("train/loss")]
    manifest = json.loads((output_dir / "run.json").read_text())
    assert manifest["report_to"] == ["tensorboard"]
    assert logged == pytest.approx(manifest["adapters"][0]["losses"], rel=1e-5)
    assert f"loss {logged[0]:.4f}" in done.stdout


def test_report_to_an_integration_that_is_not_installed_is_a_usage_error(tmp_path, tiny_model):
    script = render(tmp_path, tiny_model, {})
    done = run(script, tmp_path / "run", "--report-to", "tensorboard,nosuchtracker")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "argument --report-to: nosuchtracker is not installed here" in done.stderr
    assert "tensorboard" in done.stderr and not (tmp_path / "run").exists()

"""Several nodes: `--nodes N` / `NxTARGET` plans, the launch line, the SLURM batch file."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from dlm_gen.pipeline import read_document
from dlm_gen.plan import make_plans
from dlm_gen.rules import load_rules
from tests.conftest import write_dlm

FULL_70B = {"base_model": "llama-3.3-70b", "training": {"adapter": "full"}}


def plan_for(tmp_path, frontmatter, target, processes=None):
    path = write_dlm(tmp_path, frontmatter)
    [plan] = make_plans(read_document(path), load_rules(), target, processes)
    return plan


def test_full_70b_plans_on_four_nodes_and_is_refused_on_one_with_the_numbers(tmp_path):
    one = plan_for(tmp_path, FULL_70B, "8xh100")
    [refusal] = one.refusals
    assert refusal.id == "batch-does-not-fit"
    numbers = [float(x) for x in re.findall(r"([0-9.]+) GB", refusal.message)]
    assert numbers[0] > numbers[1] == 72.0  # needed against usable, per device
    assert "--nodes N" in refusal.message
    four = plan_for(tmp_path, FULL_70B, "4x8xh100")
    assert not four.refused
    fields = four.fields
    assert (fields["nodes"], fields["processes_per_node"], fields["processes"]) == (4, 8, 32)
    assert fields["strategy"] == "fsdp"
    # Sharded state divides over all 32 processes, not the 8 of one node.
    assert four.memory["memory.optimizer_gb"] * 4 == pytest.approx(
        one.memory["memory.optimizer_gb"], rel=1e-5
    )


def test_nodes_flag_and_prefixed_target_are_the_same_plan(tmp_path, cli):
    path = write_dlm(tmp_path, FULL_70B)
    prefixed = cli("explain", path, "--target", "4x8xh100", "--json")
    flagged = cli("explain", path, "--target", "8xh100", "--nodes", "4", "--json")
    assert prefixed[0] == flagged[0] == 0
    assert prefixed[1] == flagged[1]
    assert cli("explain", path, "--target", "8xh100", "--nodes", "1")[0] == 1  # one node: refused


def test_contradicting_node_counts_and_unknown_prefixed_targets_are_usage_errors(tmp_path, cli):
    path = write_dlm(tmp_path, FULL_70B)
    code, _, err = cli("explain", path, "--target", "2x8xh100", "--nodes", "3")
    assert code == 1 and "--nodes 3 contradicts --target 2x8xh100" in err
    code, _, err = cli("explain", path, "--target", "2x9xh100")
    assert code == 1 and "unknown target '2x9xh100'" in err and "2x8xh100" in err
    code, _, err = cli("explain", path, "--target", "h1000", "--nodes", "2")
    assert code == 1 and "unknown target 'h1000'" in err  # the name as written, not 2xh1000
    assert "Traceback" not in err


def rendered(tmp_path, cli, *options):
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m", "training": {}})
    out = tmp_path / "generated"
    code, stdout, err = cli("render", path, "--out", out, *options)
    assert code == 0, err
    return path, out, out / stdout.strip().split("/")[-1]


def header_launch(script_text: str) -> str:
    """The header's Launch line, its continuation lines joined."""
    lines = script_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# Launch:"))
    parts = [lines[start].removeprefix("# Launch:").strip()]
    for line in lines[start + 1 :]:
        if not line.startswith("#  "):
            break
        parts.append(line.removeprefix("#").strip())
    return " ".join(parts)


def test_the_header_gives_the_exact_multi_node_launch_line(tmp_path, cli):
    _, _, script = rendered(tmp_path, cli, "--target", "2x8xh100")
    text = script.read_text()
    script_hash = script.stem.removeprefix("train_")
    launch = shlex.split(header_launch(text))
    assert launch[: launch.index(script.name)] == [
        "torchrun",
        "--nnodes",
        "2",
        "--nproc_per_node",
        "8",
        "--rdzv_backend",
        "c10d",
        "--rdzv_endpoint",
        "$MASTER_ADDR:$MASTER_PORT",
        "--rdzv_id",
        script_hash,
    ]
    assert "# Target:       2x8xh100 (NVIDIA H100 80GB HBM3, 2 nodes x 8 processes)" in text


def test_sbatch_is_written_on_request_and_runs_the_header_launch(tmp_path, cli):
    _, out, script = rendered(tmp_path, cli, "--target", "2x8xh100", "--sbatch")
    batch = script.with_suffix(".sbatch").read_text()
    assert "#SBATCH --nodes=2" in batch and "#SBATCH --gpus-per-node=8" in batch
    [srun] = [line for line in batch.splitlines() if line.startswith("srun ")]
    words = shlex.split(srun)
    command = words[words.index("torchrun") : words.index(script.name)]
    header = shlex.split(header_launch(script.read_text()))
    assert command == header[: header.index(script.name)]
    assert 'MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"' in batch
    assert list(out.glob("*.sbatch")) == [script.with_suffix(".sbatch")]


def test_check_keeps_the_sbatch_in_sync(tmp_path, cli):
    path, out, script = rendered(tmp_path, cli, "--target", "2x8xh100")
    options = ("--out", out, "--target", "2x8xh100")
    assert cli("check", path, *options)[0] == 0  # not asked for: none needed
    code, _, err = cli("check", path, *options, "--sbatch")
    assert code == 1 and "missing" in err and ".sbatch" in err
    assert cli("render", path, *options, "--sbatch")[0] == 0
    assert cli("check", path, *options, "--sbatch")[0] == 0
    batch = script.with_suffix(".sbatch")
    batch.write_text(batch.read_text().replace("--nodes=2", "--nodes=3"))
    code, _, err = cli("check", path, *options)  # there, so compared even unasked
    assert code == 1 and "hand-edited" in err and batch.name in err


def test_a_rerender_removes_the_older_sbatch_with_its_script(tmp_path, cli):
    path, out, script = rendered(tmp_path, cli, "--target", "2x8xh100", "--sbatch")
    path.write_text(path.read_text() + "\nOne more line of prose.\n")
    code, stdout, _ = cli("render", path, "--out", out, "--target", "2x8xh100", "--sbatch")
    assert code == 0
    assert not script.exists() and not script.with_suffix(".sbatch").exists()
    new = out / stdout.strip().split("/")[-1]
    assert sorted(p.name for p in out.iterdir()) == [new.name, new.with_suffix(".sbatch").name]


def test_single_node_scripts_keep_the_plain_torchrun_line(tmp_path, cli):
    _, _, script = rendered(tmp_path, cli, "--target", "8xh100")
    assert header_launch(script.read_text()).startswith(
        f"torchrun --nproc_per_node 8 {script.name}"
    )


def test_nodes_of_a_one_gpu_profile_never_read_as_another_profile(tmp_path, cli):
    """`8xa100-80gb` is the one-node, 8-GPU profile; eight nodes of `a100-80gb` are
    `8x(a100-80gb)`, whichever way they are asked for."""
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m", "training": {}})
    one_node = plan_for(tmp_path, {"base_model": "smollm2-135m"}, "8xa100-80gb")
    assert (one_node.fields["nodes"], one_node.fields["processes_per_node"]) == (1, 8)
    for options in (("--target", "a100-80gb", "--nodes", "8"), ("--target", "8x(a100-80gb)")):
        code, out, err = cli("explain", path, *options, "--json")
        assert code == 0, err
        data = json.loads(out)
        assert data["target"] == "8x(a100-80gb)"
        assert (data["plan"]["nodes"], data["plan"]["processes_per_node"]) == (8, 1)


def test_a_hostile_document_name_cannot_add_a_line_to_the_batch_file(tmp_path, cli):
    name = 'doc\nrm -rf "$HOME"\n$(touch pwned).dlm'
    path = write_dlm(tmp_path, {"base_model": "smollm2-135m", "training": {}}, name=name)
    out = tmp_path / "generated"
    code, _, err = cli("render", path, "--out", out, "--target", "2x8xh100", "--sbatch")
    assert code == 0, err
    [batch] = out.glob("*.sbatch")
    lines = batch.read_text().splitlines()
    assert not any(line.startswith(("rm ", "$(")) for line in lines)
    commands = [line for line in lines if not line.startswith("#")]
    assert all("pwned" not in line and "HOME" not in line for line in commands)

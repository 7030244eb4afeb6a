"""`dlm-gen doctor` and `--target host`: detection, profile matching, requirement checks."""

from __future__ import annotations

import json

import yaml

from dlm_gen.doctor import matching_profile, new_profile_yaml
from dlm_gen.rules import load_rules
from tests.conftest import EXAMPLES, write_dlm

TARGETS = load_rules().targets


def cuda_host(gpu, capability, memory, count=1):
    return {
        "backend": "cuda",
        "gpu": gpu,
        "compute_capability": capability,
        "memory_gb": memory,
        "bf16": capability >= 8.0,
        "flash_attn": capability >= 8.0,
        "gpu_count": count,
    }


def test_doctor_on_this_cpu_host(cli):
    code, out, _ = cli("doctor")
    assert code == 0
    assert out.splitlines()[0] == "target profile: cpu"
    assert "torch" in out and "galore-torch" in out


def test_doctor_json_with_a_document(cli):
    code, out, _ = cli("doctor", EXAMPLES / "galore-smollm2.dlm", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["profile"] == "cpu" and report["host"]["backend"] == "cpu"
    assert report["versions"]["transformers"]
    assert all(item["met"] for item in report["document"]["requirements"])
    [entry] = report["document"]["reasons"]
    assert entry["adapter"] is None and entry["reason"].startswith("precision=fp32")


def test_doctor_reports_unmet_requirements_and_exits_1(tmp_path, cli):
    path = write_dlm(
        tmp_path,
        {"base_model": "smollm2-135m", "training": {"optimizer": "galore_adamw"}},
    )
    text = path.read_text().replace(
        "optimizer: galore_adamw", "optimizer: galore_adamw\n  galore_rank: 4"
    )
    path.write_text(text)
    assert cli("doctor", path)[0] == 0
    flash = write_dlm(
        tmp_path, {"base_model": "smollm2-135m", "training": {"attention": "flash_attention_2"}}
    )
    code, out, _ = cli("doctor", flash)
    assert code == 1  # refused on cpu and flash-attn is missing
    assert "MISSING flash-attn>=2" in out and "refused: attn-flash-unsupported-target" in out


def test_matching_profiles():
    assert matching_profile(cuda_host("NVIDIA A100-SXM4-80GB", 8.0, 85), TARGETS) == "a100-80gb"
    assert matching_profile(cuda_host("NVIDIA A100-SXM4-40GB", 8.0, 42), TARGETS) == "a100-40gb"
    assert matching_profile(cuda_host("NVIDIA H100 80GB HBM3", 9.0, 85, 8), TARGETS) == "8xh100"
    assert matching_profile(cuda_host("NVIDIA H200", 9.0, 150), TARGETS) == "h200"
    assert matching_profile(cuda_host("Tesla T4", 7.5, 16), TARGETS) == "t4"


def test_unknown_gpu_gets_a_profile_to_add():
    host = cuda_host("NVIDIA B200", 10.0, 192, 2)
    assert matching_profile(host, TARGETS) is None
    snippet = new_profile_yaml(host)
    [(name, profile)] = yaml.safe_load(snippet).items()
    assert name == "2xnvidia-b200"
    assert profile == host  # pastes into rules/targets.yaml as it is


def test_target_host_plans_for_this_machine(tmp_path, cli):
    code, out, _ = cli("explain", EXAMPLES / "galore-smollm2.dlm", "--target", "host")
    assert code == 0 and out.startswith("reason: precision=fp32")
    code, out, _ = cli(
        "render", EXAMPLES / "galore-smollm2.dlm", "--target", "host", "--out", tmp_path
    )
    assert code == 0
    script = (tmp_path / out.strip().split("/")[-1]).read_text()
    assert "# Target:       host (host CPU)" in script


def test_flash_attention_on_a_host_comes_from_the_targets_table():
    from dlm_gen.doctor import flash_attention_known
    from dlm_gen.rules import load_rules

    targets = load_rules().targets
    assert flash_attention_known(8.0, targets) is True  # the A100 profiles say so
    assert flash_attention_known(7.5, targets) is False  # the T4 profile says not
    assert flash_attention_known(12.0, targets) is False  # no profile: not assumed


def test_the_packages_doctor_reports_are_those_the_tables_can_require():
    from dlm_gen.doctor import required_packages
    from dlm_gen.rules import load_rules

    names = required_packages(load_rules())
    assert {"torch", "transformers", "peft", "trl", "accelerate"} <= set(names)
    assert {"bitsandbytes", "galore-torch", "flash-attn"} <= set(names)

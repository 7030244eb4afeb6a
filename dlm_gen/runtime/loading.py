"""Loading the libraries, the tokenizer, the model and the adapter's configuration, each
as the plan decided (quant-*, dtype-*, attn-*, adapter-*, lora-*, pad-*)."""

from __future__ import annotations

import os

from dlm_gen.runtime.chat import use_chat_template
from dlm_gen.runtime.console import fail
from dlm_gen.runtime.flags import usage_error
from dlm_gen.runtime.script import Script


def set_up_libraries(script: Script, report_to: list[str]) -> None:
    """What must be set before the libraries start (CUDA's workspace, FSDP's loading),
    the console kept to what a user reads, and --report-to checked against the
    integrations the installed transformers offers."""
    plan = script.plan
    workspace = plan["cublas_workspace_config"]
    if workspace is not None:  # runtime-cublas-workspace: before CUDA initialises
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", workspace)
    if plan["fsdp_cpu_ram_efficient_loading"]:
        # dist-fsdp-adapters: read before from_pretrained: rank 0 loads the weights, the
        # other ranks build an empty model and receive their shards.
        os.environ.setdefault("FSDP_CPU_RAM_EFFICIENT_LOADING", "true")
    quiet_libraries()
    if report_to:
        from transformers.integrations import get_available_reporting_integrations

        available = get_available_reporting_integrations()
        missing = [name for name in report_to if name not in available]
        if missing:
            usage_error(
                script,
                f"argument --report-to: {', '.join(missing)} is not installed here (this "
                f"transformers can report to: {', '.join(sorted(available)) or 'nothing'})",
            )


def seed_everything(seed: int, deterministic: bool) -> None:
    """All RNGs from one seed; deterministic kernels where the plan asks for them
    (runtime-deterministic-*)."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def quiet_libraries() -> None:
    """Keep the console to what a user reads: no weight-loading bars, no warning about an
    optional bitsandbytes CPU kernel package (its fallback kernel is used)."""
    import logging
    import warnings

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    # Saving again into a run directory re-reads the run card written there, which has
    # no Hub metadata block; that is expected.
    logging.getLogger("huggingface_hub.repocard").setLevel(logging.ERROR)
    # TRL reads the model's deprecated is_gradient_checkpointing itself; nothing to act on.
    warnings.filterwarnings(
        "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )
    try:
        from datasets import disable_progress_bars
    except ImportError:
        return
    disable_progress_bars()


def loaded(what: str, source: str, load, *arguments):
    """`load(*arguments)`, or a stop (exit 1) naming `source` where it fails: files that
    cannot be read as `what` (a --base-path that holds a config.json but no model, a
    truncated download), or a library's own error. One escaped line with the error's
    type, never a traceback."""
    try:
        return load(*arguments)
    except Exception as error:
        message = " ".join(str(error).split())
        fail(f"cannot load the {what} from {source}: {type(error).__name__}: {message}")


def load_tokenizer(plan: dict, source: str, revision: str | None) -> tuple[object, bool]:
    """The base's tokenizer with a chat template (its own, or the plan's fallback) and a
    pad token (pad-*); and whether a pad token was added (the embeddings grow by one)."""
    from transformers import AutoTokenizer

    tokenizer = loaded(
        "tokenizer",
        source,
        lambda: AutoTokenizer.from_pretrained(source, revision=revision),
    )
    use_chat_template(tokenizer, plan)
    added_pad = False
    if tokenizer.pad_token is None:
        if plan["pad_with"] == "eos" and tokenizer.eos_token is not None:
            # Padding is masked out of the loss: reuse EOS, add no embedding.
            tokenizer.pad_token = tokenizer.eos_token
        else:
            tokenizer.add_special_tokens({"pad_token": plan["added_pad_token"]})
            added_pad = True
    return tokenizer, added_pad


def load_model(plan: dict, tokenizer, added_pad: bool, source: str, revision: str | None):
    """The causal LM in the planned dtype and attention, 4-bit where the plan quantizes."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantization = None
    if plan["load_in_4bit"]:  # quant-nf4-4bit: QLoRA's NF4 + double quantization
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=plan["bnb_4bit_quant_type"],
            bnb_4bit_use_double_quant=plan["bnb_4bit_use_double_quant"],
            bnb_4bit_compute_dtype=getattr(torch, plan["bnb_4bit_compute_dtype"]),
            # quant-storage-*: packed uint8, or the compute dtype where FSDP shards it
            bnb_4bit_quant_storage=getattr(torch, plan["bnb_4bit_quant_storage"]),
        )
    model = loaded(
        "model",
        source,
        lambda: AutoModelForCausalLM.from_pretrained(
            source,
            revision=revision,
            dtype=getattr(torch, plan["torch_dtype"]),
            attn_implementation=plan["attn"],
            quantization_config=quantization,
        ),
    )
    if plan["load_in_4bit"] and not plan["cpu_4bit_packing"]:
        # quant-cpu-dora-unpacked: bitsandbytes would repack the 4-bit weights in place
        # for gradient-free CPU forwards, and DoRA's weight norm cannot read that layout.
        for module in model.modules():
            if hasattr(module, "support_avx512bf16_for_cpu"):
                module.support_avx512bf16_for_cpu = False
    if added_pad:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def lora_config(plan: dict):
    """The adapter's LoraConfig: rank, scale, dropout, the modules it adapts (and those
    it trains whole), DoRA's magnitude where the plan has it."""
    from peft import LoraConfig

    targets = plan["target_modules"]  # lora-target-modules-*: the document's list wins
    whole = []
    if isinstance(targets, list):  # lora-modules-trained-whole: train these in full, no LoRA
        whole = [name for name in targets if name in plan["modules_trained_whole"]]
        targets = [name for name in targets if name not in plan["modules_trained_whole"]]
    return LoraConfig(
        r=plan["lora_r"],
        lora_alpha=plan["lora_alpha"],
        lora_dropout=plan["lora_dropout"],
        target_modules=targets,
        modules_to_save=whole or None,
        use_dora=plan["use_dora"],  # adapter-dora: magnitude + direction
        bias=plan["lora_bias"],
        task_type="CAUSAL_LM",
    )

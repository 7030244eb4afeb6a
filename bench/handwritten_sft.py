"""The baseline: a minimal hand-written TRL SFT + LoRA script, as a person would write it.

Same model, same rows, same steps and hyperparameters as the generated script
it is compared with (bench/train_overhead.py passes them as JSON).

    python bench/handwritten_sft.py SPEC.json
"""

import json
import sys
import time
from pathlib import Path

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

spec = json.loads(Path(sys.argv[1]).read_text())
torch.manual_seed(spec["seed"])
tokenizer = AutoTokenizer.from_pretrained(spec["model"])
tokenizer.pad_token = tokenizer.eos_token
model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
dataset = Dataset.from_list([{"text": text} for text in spec["texts"]])
trainer = SFTTrainer(
    model=model,
    args=SFTConfig(
        output_dir=spec["output_dir"],
        per_device_train_batch_size=spec["micro_batch_size"],
        gradient_accumulation_steps=1,
        learning_rate=spec["learning_rate"],
        max_steps=spec["steps"],
        max_length=spec["sequence_len"],
        bf16=False,
        gradient_checkpointing=False,
        # The library's default optimizer unless the spec names one (bench/step_costs.py).
        **({"optim": spec["optim"]} if "optim" in spec else {}),
        use_cpu=True,
        save_strategy="no",
        report_to=[],
        logging_steps=1,
        seed=spec["seed"],
        disable_tqdm=True,
    ),
    train_dataset=dataset,
    processing_class=tokenizer,
    peft_config=LoraConfig(
        r=spec["lora_r"],
        lora_alpha=spec["lora_alpha"],
        lora_dropout=spec["lora_dropout"],
        use_dora=spec.get("use_dora", False),
        target_modules=spec["target_modules"],
    ),
)
started = time.perf_counter()
trainer.train()
print(json.dumps({"train_seconds": time.perf_counter() - started}))

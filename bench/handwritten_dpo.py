"""The baseline: a minimal hand-written TRL DPO + LoRA script, as a person would write it.

Same model, same triples (conversational, so TRL applies the chat template),
same steps, batch, learning rate and beta as the generated script's preference
phase it is compared with (bench/preference_overhead.py passes them as JSON).
Prints the median optimizer-step time.

    python bench/handwritten_dpo.py SPEC.json
"""

import json
import statistics
import sys
import time
from pathlib import Path

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import DPOConfig, DPOTrainer

spec = json.loads(Path(sys.argv[1]).read_text())
torch.manual_seed(spec["seed"])
tokenizer = AutoTokenizer.from_pretrained(spec["model"])
if tokenizer.pad_token is None:
    tokenizer.pad_token = tokenizer.eos_token
if tokenizer.chat_template is None:  # the tiny test model ships none: plain ChatML
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
dataset = Dataset.from_list(
    [
        {
            "prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
        for prompt, chosen, rejected in spec["triples"]
    ]
)


class StepTimes(TrainerCallback):
    def __init__(self):
        self.seconds, self.started = [], 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self.started)


times = StepTimes()
trainer = DPOTrainer(
    model=model,
    args=DPOConfig(
        output_dir=spec["output_dir"],
        per_device_train_batch_size=spec["micro_batch_size"],
        gradient_accumulation_steps=1,
        learning_rate=spec["learning_rate"],
        beta=spec["beta"],
        max_steps=spec["steps"],
        max_length=spec["sequence_len"],
        # TRL defaults to checkpointing; the plan compared with does not checkpoint on a
        # CPU, and runs the plan's optimizer (bench/preference_overhead.py passes it).
        gradient_checkpointing=False,
        optim=spec["optim"],
        bf16=False,  # TRL turns bf16 on by default; the CPU plan trains in fp32
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
        lora_dropout=0.0,
        target_modules=spec["target_modules"],
    ),
    callbacks=[times],
)
started = time.perf_counter()
trainer.train()
print(
    json.dumps(
        {
            "train_seconds": time.perf_counter() - started,
            "median_step_seconds": statistics.median(times.seconds),
        }
    )
)

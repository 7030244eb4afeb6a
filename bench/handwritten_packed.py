"""The baseline for packing: a hand-written TRL SFT + LoRA script with `packing=True`.

What a person would write: conversational rows, TRL's own chat templating and its
best-fit packing (padding-free), the same model, LoRA, batch, rate and steps as the
generated script it is compared with (bench/packing_throughput.py passes them as
JSON). Prints the training seconds and the tokens TRL counted.

    python bench/handwritten_packed.py SPEC.json
"""

import json
import sys
import time
from pathlib import Path

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer


class StepTimes(TrainerCallback):
    """Seconds per optimizer step, timed like the generated script's own timer."""

    def __init__(self):
        self.seconds = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self.started)


spec = json.loads(Path(sys.argv[1]).read_text())
timer = StepTimes()
torch.manual_seed(spec["seed"])
tokenizer = AutoTokenizer.from_pretrained(spec["model"])
model = AutoModelForCausalLM.from_pretrained(
    spec["model"], dtype=torch.float32, attn_implementation="sdpa"
)
if tokenizer.chat_template is not None:  # conversational rows: TRL applies the template
    rows = [
        {
            "prompt": [{"role": "user", "content": question}],
            "completion": [{"role": "assistant", "content": answer}],
        }
        for question, answer in spec["pairs"]
    ]
else:  # a base without a template (the tiny Llama): plain prompt and completion text
    rows = [{"prompt": f"{q}\n", "completion": a} for q, a in spec["pairs"]]
dataset = Dataset.from_list(rows)
trainer = SFTTrainer(
    model=model,
    args=SFTConfig(
        output_dir=spec["output_dir"],
        per_device_train_batch_size=spec["micro_batch_size"],
        gradient_accumulation_steps=1,
        learning_rate=spec["learning_rate"],
        max_steps=spec["steps"],
        max_length=spec["sequence_len"],
        packing=True,
        bf16=False,
        gradient_checkpointing=False,
        optim=spec["optim"],
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
        target_modules=spec["target_modules"],
    ),
    callbacks=[timer],
)
trainer.train()
tokens = max(log.get("num_tokens", 0) for log in trainer.state.log_history)
print(json.dumps({"step_seconds": timer.seconds, "tokens": tokens}))

---
dlm_version: 1
# Built offline by `python examples/tiny_model.py runs/tiny-llama` (make demo does it).
base_model: ../runs/tiny-llama
system_prompt: You answer in one short sentence.
training:
  adapter: dora
  optimizer: adamw_torch
  lora_r: 8
  learning_rate: 5e-3
  num_epochs: 20
  micro_batch_size: 2
  grad_accum: 1
  sequence_len: 128
  warmup_ratio: 0.0
---
dlm-gen turns a declarative fine-tuning document into a training script.
The rules live in yaml tables, not in python.

::instruction::
### Q
What does dlm-gen write?
### A
A training script.

### Q
Where do the rules live?
### A
In yaml tables.

### Q
Which adapter does this document train?
### A
A dora adapter.

---
dlm_version: 1
base_model: smollm2-135m
system_prompt: You are a concise assistant for the dlm-gen project.
training:
  adapter: lora
  optimizer: galore_adamw
  lora_r: 8
  learning_rate: 2e-4
  num_epochs: 3
---
dlm-gen turns a declarative fine-tuning document into a training script that
a person can read, review in a pull request, and run on a GPU.

::instruction::
### Q
What does dlm-gen produce?
### A
A standalone training script, generated/train_<hash>.py, that trains with
transformers, peft and trl.

### Q
Where does the policy live?
### A
In YAML rule tables under rules/, not in Python.

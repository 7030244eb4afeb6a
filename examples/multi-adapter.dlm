---
dlm_version: 1
base_model: qwen2.5-1.5b
system_prompt: You answer questions about the project.
training:
  optimizer: adamw_torch
  num_epochs: 2
  adapters:
    facts:
      adapter: dora
      lora_r: 8
    tone:
      adapter: lora
      lora_r: 4
      learning_rate: 1e-4
---
Shared prose trains both adapters.

::instruction#facts::
### Q
Which file holds the optimizer policy?
### A
rules/optimizer.yaml.

::instruction#tone::
### Q
How should answers sound?
### A
Short and friendly.

::preference#tone::
### Prompt
Say hello.
### Chosen
Hello! How can I help?
### Rejected
What.

---
dlm_version: 1
base_model: llama-3.2-3b
training:
  adapter: qlora
  optimizer: paged_adamw_8bit
  lora_r: 16
  lora_alpha: 32
  sequence_len: 1024
---
::instruction::
### Q
What does QLoRA quantize?
### A
The frozen base weights, to 4-bit NF4; the LoRA adapters train in higher precision.

---
dlm_version: 1
# Too big for a T4 (16 GB) in fp16 even at micro-batch 1; fits an H100.
# `dlm-gen explain examples/llama8b-lora.dlm --target t4` refuses with the numbers.
base_model: llama-3.1-8b
training:
  adapter: lora
  lora_r: 16
  sequence_len: 2048
---
::instruction::
### Q
Which table decides whether a plan fits a GPU?
### A
rules/memory.yaml holds the coefficients; rules/batching.yaml decides.

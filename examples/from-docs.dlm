---
dlm_version: 15
# Built offline by `python examples/tiny_model.py runs/tiny-llama` (make demo does it).
base_model: ../runs/tiny-llama
training:
  # Every Markdown file under ../docs trains as one prose row headed by its
  # path; the script embeds their text, so `dlm-gen check` calls it stale once
  # one of them changes.
  sources_policy: permissive
  sources:
    - path: ../docs
      include: ["**/*.md"]
      max_bytes_per_file: 65536
  sequence_len: 128
  micro_batch_size: 2
  grad_accum: 1
  learning_rate: 5e-3
  warmup_ratio: 0.0
  num_epochs: 2
---
The documents of this repository, read as a corpus.

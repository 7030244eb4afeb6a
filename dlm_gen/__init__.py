"""dlm-gen: a declarative fine-tuning document in, a reviewable training script out."""

__version__ = "0.1.0"

"""Build a tiny Llama and its tokenizer offline, for smoke runs and tests.

No hub access: the tokenizer is a byte-level BPE trained in-process on a
small text, the model a 2-layer Llama initialised from a fixed seed. The
result is a normal model directory (config.json, safetensors, tokenizer) that
a .dlm document can name as `base_model: path/to/dir`.

    python examples/tiny_model.py runs/tiny-llama
"""

from __future__ import annotations

import sys
from pathlib import Path

ALPHABET_TEXT = (
    "the quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX 0123456789 "
    "what where which how why is are does a an of to in on for with and or not. "
    "dlm-gen turns a declarative fine-tuning document into a training script. "
    "rules tables yaml python adapter lora dora galore optimizer question answer. "
    "<|im_start|> <|im_end|> system user assistant : , ; ! ? ' \" ( ) [ ] { } / - _ \n"
)
# ChatML's markers, as text the tokenizer learns merges for (not special tokens).
CHAT_MARKERS_TEXT = "<|im_start|> <|im_end|> "


def build_tiny_model(
    directory: str | Path,
    extra_text: str = "",
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    chat_markers: bool = True,
) -> Path:
    """Write a small Llama (2 layers, width 64 by default) and a 512-token BPE tokenizer.

    Without `chat_markers`, the tokenizer never saw ChatML's <|im_start|> and <|im_end|>:
    a base of another family, whose vocabulary has no such marker."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    text = ALPHABET_TEXT if chat_markers else ALPHABET_TEXT.replace(CHAT_MARKERS_TEXT, "")
    bpe.train_from_iterator([text, extra_text] * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.save_pretrained(directory)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/tiny-llama")
    print(build_tiny_model(target))

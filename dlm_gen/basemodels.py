"""Facts about the base model: from the registry table, or a local config.json.

The parameter count decides policy (GaLore's small-base warning), so it must
be right without downloading or loading weights. It is computed from the
decoder's shapes: embeddings, per layer attention + MLP + norms, final norm,
and an untied LM head. The per-family differences (bias on q/k/v, q/k norms)
come from the `architectures` table.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

HUB_PREFIX = "hf:"


@dataclass(frozen=True)
class BaseModel:
    """What the engine and the renderer need to know about a base model."""

    key: str
    source: str  # "registry", "hub" or "local"
    hub_id: str | None
    revision: str | None
    path: str | None
    model_type: str | None
    architecture: str | None
    params: int | None
    target_modules: tuple[str, ...] | None
    max_position_embeddings: int | None
    decoder_layer: str | None = None
    shape: dict | None = None  # the config shapes the memory estimate needs

    def facts(self) -> dict[str, object]:
        return {
            "base.key": self.key,
            "base.source": self.source,
            "base.hub_id": self.hub_id,
            "base.revision": self.revision,
            "base.model_type": self.model_type,
            "base.architecture": self.architecture,
            "base.params": self.params,
            "base.target_modules": (
                list(self.target_modules) if self.target_modules is not None else None
            ),
            "base.max_position_embeddings": self.max_position_embeddings,
            "base.decoder_layer": self.decoder_layer,
            "base.shape": self.shape,
        }


def count_parameters(config: dict, family: dict) -> int:
    """Parameters of a decoder-only transformer from its config (no weights needed)."""
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    vocab = config["vocab_size"]
    intermediate = config["intermediate_size"]
    q_width, kv_width = heads * head_dim, kv_heads * head_dim
    attention = hidden * q_width + 2 * hidden * kv_width + q_width * hidden
    if family.get("qkv_bias") or config.get("attention_bias"):
        attention += q_width + 2 * kv_width
    if config.get("attention_bias"):
        attention += hidden  # o_proj bias too
    if family.get("qk_norm"):
        attention += 2 * head_dim
    mlp = 3 * hidden * intermediate
    if config.get("mlp_bias"):
        mlp += 2 * intermediate + hidden
    layer = attention + mlp + 2 * hidden  # input and post-attention norms
    embeddings = vocab * hidden
    head = 0 if config.get("tie_word_embeddings", False) else vocab * hidden
    return embeddings + config["num_hidden_layers"] * layer + hidden + head


def safetensors_parameters(directory: Path) -> int | None:
    """Count parameters from safetensors headers alone (shapes, not data)."""
    total = 0
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return None
    for file in files:
        with file.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100_000_000:
                return None
            header = json.loads(handle.read(length))
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in entry["shape"]:
                count *= dim
            total += count
    return total


def from_registry(key: str, entry: dict, families: dict, source: str = "registry") -> BaseModel:
    family = families.get(entry["model_type"], {})
    modules = entry.get("target_modules") or family.get("target_modules")
    return BaseModel(
        key=key,
        source=source,
        hub_id=entry["hub_id"],
        revision=entry["revision"],
        path=None,
        model_type=entry["model_type"],
        architecture=entry["architecture"],
        params=count_parameters(entry["config"], family),
        target_modules=tuple(modules) if modules else None,
        max_position_embeddings=entry["config"]["max_position_embeddings"],
        decoder_layer=family.get("decoder_layer"),
        shape=_shape(entry["config"]),
    )


def from_hub_id(key: str, hub_id: str) -> BaseModel:
    """A Hub model the registry does not know: its size and shape are unknown."""
    return BaseModel(key, "hub", hub_id, None, None, None, None, None, None, None)


def from_directory(key: str, directory: Path, families: dict) -> BaseModel:
    """A local model directory: facts from config.json, never from the weights."""
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ValueError("config.json is not a JSON object")
    model_type = config.get("model_type")
    architectures = config.get("architectures") or [None]
    family = families.get(model_type)
    params: int | None
    if family is not None:
        params = count_parameters(config, family)
    else:
        params = safetensors_parameters(directory)
    modules = family["target_modules"] if family else None
    return BaseModel(
        key=key,
        source="local",
        hub_id=None,
        revision=None,
        path=str(directory),
        model_type=model_type,
        architecture=architectures[0],
        params=params,
        target_modules=tuple(modules) if modules else None,
        max_position_embeddings=config.get("max_position_embeddings"),
        decoder_layer=family.get("decoder_layer") if family else None,
        shape=_shape(config) if family else None,
    )


SHAPE_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
)


def _shape(config: dict) -> dict | None:
    shape = {key: config.get(key) for key in SHAPE_KEYS}
    required = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    if not all(isinstance(shape[key], int) for key in (*required, "vocab_size")):
        return None
    return shape


def format_size(params: int | float | None) -> str:
    """135M, 1.7B, 7.6B: the size the way model cards print it."""
    if params is None:
        return "unknown"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if params >= scale:
            value = params / scale
            text = f"{value:.0f}" if value >= 100 or unit == "M" else f"{value:.1f}"
            if text == "1000":  # 999.6M is still under 1B: never print it as 1000M
                text = "999"
            return text.removesuffix(".0") + unit
    return str(int(params))

"""Facts about the base model: from the registry table, or a local config.json.

The parameter count decides policy (GaLore's small-base warning), so it must
be right without downloading or loading weights. It is computed from the
decoder's shapes: embeddings, per layer attention + MLP + norms, final norm,
and an untied LM head. The per-family differences (bias on q/k/v, q/k norms)
come from the `architectures` table.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import stat
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dlm_gen.files import read_at_most

HUB_PREFIX = "hf:"
# The Hub's repository id grammar (huggingface_hub's validate_repo_id), ASCII
# only: each part starts and ends with a letter, digit or underscore, holds
# letters, digits, '-', '_' and '.', and has at most 96 characters.
_HUB_PART = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$")


def hub_id_problem(hub_id: str) -> str | None:
    """Why `hub_id` is not a Hub repository id (org/name), or None when it is."""
    parts = hub_id.split("/")
    if len(parts) != 2:
        return "a repository id is exactly one org and one name, separated by '/'"
    for part in parts:
        if not _HUB_PART.match(part):
            return (
                "each part holds only ASCII letters, digits, '-', '_' and '.', starts and "
                "ends with a letter, digit or '_', and has at most 96 characters"
            )
        if ".." in part or "--" in part:
            return "'..' and '--' are not allowed in a repository id"
    if hub_id.endswith(".git"):
        return "a repository id does not end in '.git'"
    return None


def is_written_as_path(text: str) -> bool:
    """`./x`, `../x`, `~/x`, `/x` or anything with a '/': a local directory, not a key."""
    return "/" in text or text in (".", "..", "~") or text.startswith("~")


def normalized_path(text: str) -> str:
    """The path as written, normalized ('a/./b/../c' -> './a/c'); '~' stays '~'."""
    normalized = posixpath.normpath(text)
    if normalized.startswith(("/", "~", "../")) or normalized == "..":
        return normalized
    return "./" + normalized.removeprefix("./")


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
    # The system prompt its chat template injects when a conversation has none.
    chat_system_default: str | None = None
    # Where the shapes came from when not the registry or a local directory.
    config_from: str | None = None
    # Why a local base's chat template could not be read or evaluated (its file as the
    # document names it, and the bound it went past); None when it ran or is absent.
    chat_template_problem: str | None = None
    # Which config fields the shapes were read from, for a base of no known family
    # ("config.json: hidden_size, ..." or "config.json text_config: ..."); else None.
    shape_from: str | None = None

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
            "base.chat_system_default": self.chat_system_default,
            "base.config_from": self.config_from,
            "base.chat_template_problem": self.chat_template_problem,
            "base.shape_from": self.shape_from,
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
    attention += {"per_head": 2 * head_dim, "per_projection": q_width + kv_width}.get(
        family.get("qk_norm", "none"), 0
    )
    mlp = 3 * hidden * intermediate
    if config.get("mlp_bias"):
        mlp += 2 * intermediate + hidden
    experts = config.get("num_local_experts") or 1
    if experts > 1:  # a mixture of experts: one MLP per expert, and the router
        mlp = experts * mlp + experts * hidden
    layer = attention + mlp + family.get("layer_norms", 2) * hidden
    embeddings = vocab * hidden
    head = 0 if config.get("tie_word_embeddings", False) else vocab * hidden
    return embeddings + config["num_hidden_layers"] * layer + hidden + head


class BaseModelError(Exception):
    """A local model directory whose files cannot give its facts; names the file."""

    def __init__(self, file: Path, field: str | None, message: str) -> None:
        super().__init__(f"{file}: {field + ': ' if field else ''}{message}")
        self.file, self.field, self.message = file, field, message


# Sizes a real decoder has: from 1 to 2**24 (16.7M) each. Beyond that a config
# is broken or hostile, and its arithmetic would overflow or mislead the plan.
MAX_DIMENSION = 2**24


def folder_caps() -> dict[str, int]:
    """The caps of rules/limits.yaml on a local base folder's files and totals."""
    from dlm_gen.limits import limits

    return limits()


def _parameter_cap(caps: Mapping[str, int]) -> int:
    return caps["max_base_billion_parameters"] * 10**9


def _past_parameter_cap(caps: Mapping[str, int]) -> str:
    return (
        f"more than {format_size(_parameter_cap(caps))} parameters, the limit "
        "(rules/limits.yaml max_base_billion_parameters)"
    )


def safetensors_parameters(directory: Path, caps: Mapping[str, int] | None = None) -> int | None:
    """Count parameters from safetensors headers alone (shapes, not data), every file's
    header, tensor count and the total bounded by `caps` (rules/limits.yaml)."""
    caps = caps or folder_caps()
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return None
    total, header_bytes, tensors, containers = 0, 0, 0, 0
    for file in files:
        raw = _read_safetensors_header(file, caps["max_safetensors_header_bytes"] - header_bytes)
        header_bytes += len(raw)
        if _JSON_LIST_START.match(raw):
            raise BaseModelError(file, None, "header is not a JSON object")
        containers += json_containers(raw)
        if containers > caps["max_safetensors_containers"]:
            raise BaseModelError(
                file,
                None,
                f"more than {caps['max_safetensors_containers']} objects and lists in the "
                "folder's headers (rules/limits.yaml max_safetensors_containers)",
            )
        for name, shape in _safetensors_shapes(file, raw):
            tensors += 1
            if tensors > caps["max_safetensors_tensors"]:
                raise BaseModelError(
                    file,
                    None,
                    f"more than {caps['max_safetensors_tensors']} tensors in the folder's "
                    "headers (rules/limits.yaml max_safetensors_tensors)",
                )
            total += _tensor_size(file, name, shape, caps)
            if total > _parameter_cap(caps):
                raise BaseModelError(
                    file, None, f"the headers add up to {_past_parameter_cap(caps)}"
                )
    return total


# JSON whitespace, then the '[' of a list: never a header or a tokenizer config, and
# refused unparsed (a list of a million `{}` parses into 80 MB of objects).
_JSON_LIST_START = re.compile(rb"[ \t\r\n]*\[")


def json_containers(raw: bytes) -> int:
    """The objects and lists a JSON text would build, counted before it is parsed.

    An empty object costs Python ~64 bytes for 2-3 bytes of file, so a header or
    tokenizer_config.json of `[{},{},...]` under its byte cap parsed into gigabytes.
    Brackets inside strings are counted too: an over-count only refuses earlier."""
    return raw.count(b"{") + raw.count(b"[")


def _read_safetensors_header(file: Path, budget: int) -> bytes:
    """The JSON header of a safetensors file: its 8-byte length, then that many bytes.

    Not `files.read_bounded`: a weights file is gigabytes and only its header is read.
    The same care, though: a FIFO, device or directory is refused before a read could
    block, and the length is checked against what is left of the folder's header budget
    and against the file's own size before anything is read.
    """
    try:
        if not stat.S_ISREG(os.stat(file).st_mode):
            raise BaseModelError(file, None, _not_regular(file))
        descriptor = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise BaseModelError(file, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise BaseModelError(file, None, _not_regular(file))
        prefix = read_at_most(descriptor, 8)
        if len(prefix) < 8:
            raise BaseModelError(file, None, "shorter than a safetensors header (8 bytes)")
        (length,) = struct.unpack("<Q", prefix)
        if length > budget:
            raise BaseModelError(
                file,
                None,
                f"header of {length} bytes is implausible: the folder's headers may hold "
                f"{budget} more bytes (rules/limits.yaml max_safetensors_header_bytes)",
            )
        if length > info.st_size - 8:
            raise BaseModelError(
                file,
                None,
                f"header of {length} bytes is longer than the file ({info.st_size} bytes)",
            )
        raw = read_at_most(descriptor, length)
    except OSError as exc:
        raise BaseModelError(file, None, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(descriptor)
    if len(raw) < length:
        raise BaseModelError(file, None, f"header of {length} bytes is cut short")
    return raw


def _not_regular(file: Path) -> str:
    if file.is_dir():
        return "is a directory, expected a safetensors file"
    return "not a regular file (a device, FIFO or socket): expected a safetensors file"


def _safetensors_shapes(file: Path, raw: bytes) -> list[tuple[str, list[int]]]:
    """(name, shape) of each tensor in one safetensors header; BaseModelError names the file."""
    try:
        header = json.loads(raw, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise BaseModelError(file, None, f"header names {exc.key!r} twice") from None
    except RecursionError:
        raise BaseModelError(
            file, None, "header is nested too deeply to be a safetensors header"
        ) from None
    except ValueError:  # also UnicodeDecodeError and over-long integers
        raise BaseModelError(file, None, "header is not valid JSON") from None
    if not isinstance(header, dict):
        raise BaseModelError(file, None, "header is not a JSON object")
    shapes = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(
            _is_int(d) and 0 <= d <= MAX_DIMENSION for d in shape
        ):
            raise BaseModelError(
                file, None, f"tensor {name[:80]!r}: expected a shape of sizes 0..2**24"
            )
        shapes.append((name, shape))
    return shapes


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key[:80]


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object, refused when it names a key twice (json.loads would keep the last,
    and a tensor named twice would be counted once)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _tensor_size(file: Path, name: str, shape: list[int], caps: Mapping[str, int]) -> int:
    """The elements of one tensor, refused as soon as the product passes the cap (a shape
    of 64 dimensions of 2**24 is a 1536-bit number, not a model)."""
    if 0 in shape:
        return 0
    size, cap = 1, _parameter_cap(caps)
    for dim in shape:
        size *= dim
        if size > cap:
            shown = ", ".join(str(d) for d in shape[:4]) + (", ..." if len(shape) > 4 else "")
            raise BaseModelError(
                file,
                None,
                f"tensor {name[:80]!r}: shape [{shown}] ({len(shape)} dimensions) holds "
                f"{_past_parameter_cap(caps)}",
            )
    return size


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_config(directory: Path, limit: int) -> dict:
    """config.json as a JSON object whose shape fields are plausible integers."""
    from dlm_gen.files import InputFileError, read_bounded

    file = directory / "config.json"
    try:
        config = json.loads(read_bounded(file, limit))
    except InputFileError as exc:
        raise BaseModelError(file, None, str(exc)) from None
    except RecursionError:
        raise BaseModelError(file, None, "nested too deeply to be a model config") from None
    except ValueError as exc:  # also UnicodeDecodeError and over-long integers
        raise BaseModelError(file, None, f"not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(config, dict):
        raise BaseModelError(file, None, "expected a JSON object")
    _check_shape_fields(file, config, "")
    text_config = config.get("text_config")
    if text_config is not None:
        if not isinstance(text_config, dict):
            raise BaseModelError(file, "text_config", "expected a JSON object")
        _check_shape_fields(file, text_config, "text_config.")
    for key in ("model_type",):
        if key in config and not isinstance(config[key], str):
            raise BaseModelError(file, key, f"expected a string, got {_short(config[key])}")
    architectures = config.get("architectures")
    if architectures is not None and not (
        isinstance(architectures, list) and all(isinstance(a, str) for a in architectures)
    ):
        raise BaseModelError(file, "architectures", "expected a list of class names")
    return config


def _check_shape_fields(file: Path, config: dict, prefix: str) -> None:
    """The shape fields of `config` (the top level, or its text_config) are plausible
    integers where they are written."""
    for key in (*SHAPE_KEYS, "max_position_embeddings", "num_local_experts"):
        value = config.get(key)
        optional = key in (
            "num_key_value_heads",
            "head_dim",
            "max_position_embeddings",
            "num_local_experts",
        )
        if value is None and (optional or key not in config):
            continue
        if not _is_int(value) or not 1 <= value <= (2**31 if optional else MAX_DIMENSION):
            raise BaseModelError(
                file,
                prefix + key,
                f"expected a whole number from 1 to {2**31 if optional else MAX_DIMENSION}, "
                f"got {_short(value)}",
            )


def _short(value: object) -> str:
    text = (
        json.dumps(value) if not isinstance(value, int) or abs(value) < 10**20 else "a huge number"
    )
    return text if len(text) <= 40 else text[:37] + "..."


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
        chat_system_default=entry.get("chat_system_default"),
    )


def from_hub_id(
    key: str, hub_id: str, families: dict | None = None, limit: int = 2**20
) -> BaseModel:
    """A Hub model the registry does not know: its facts from the config.json of its
    snapshot in the local Hugging Face cache when there is one (no network), else
    unknown. The revision stays unpinned: the document names none."""
    unknown = BaseModel(key, "hub", hub_id, None, None, None, None, None, None, None)
    snapshot = cached_snapshot(hub_id)
    if snapshot is None or families is None:
        return unknown
    try:
        local = from_directory(key, snapshot, families, limit)
    except BaseModelError:
        return unknown  # a broken cache entry only means the size stays unknown
    return BaseModel(
        key=key,
        source="hub",
        hub_id=hub_id,
        revision=None,
        path=None,
        model_type=local.model_type,
        architecture=local.architecture,
        params=local.params,
        target_modules=local.target_modules,
        max_position_embeddings=local.max_position_embeddings,
        decoder_layer=local.decoder_layer,
        shape=local.shape,
        chat_system_default=local.chat_system_default,
        config_from=f"local Hugging Face cache, snapshot {snapshot.name}",
    )


def hub_cache_directory() -> Path:
    """Where huggingface_hub keeps downloads: $HF_HUB_CACHE, else $HF_HOME/hub, else
    ~/.cache/huggingface/hub (its documented order)."""
    import os

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or "~/.cache/huggingface"
    return Path(home).expanduser() / "hub"


def cached_snapshot(hub_id: str) -> Path | None:
    """The cached snapshot directory of `hub_id` that holds a config.json: the one
    refs/main names, else the only one; None when there is none (or no single one)."""
    from dlm_gen.files import InputFileError, read_bounded

    repository = hub_cache_directory() / ("models--" + hub_id.replace("/", "--"))
    snapshots = repository / "snapshots"
    try:  # a commit hash: 41 bytes with its line break; a FIFO or a device is refused
        main = read_bounded(repository / "refs" / "main", 256).decode("ascii").strip()
    except (InputFileError, UnicodeDecodeError):
        main = ""
    candidates = [snapshots / main] if re.fullmatch(r"[0-9a-f]{40}", main) else []
    if not candidates:
        try:
            candidates = [p for p in snapshots.iterdir() if (p / "config.json").is_file()]
        except OSError:
            return None
    if len(candidates) != 1 or not (candidates[0] / "config.json").is_file():
        return None
    return candidates[0]


def from_directory(key: str, directory: Path, families: dict, limit: int = 2**20) -> BaseModel:
    """A local model directory: facts from config.json, never from the weights.

    `key` is the path as the document wrote it (normalized); it is what the
    script records, so that no absolute path of the rendering machine leaks.
    """
    caps = folder_caps()
    config = read_config(directory, limit)
    _check_layers(directory / "config.json", config, caps)
    model_type = config.get("model_type")
    architectures = config.get("architectures") or [None]
    family = families.get(model_type) if model_type is not None else None
    params: int | None
    if family is not None:
        missing = [k for k in REQUIRED_SHAPE_KEYS if k not in config]
        if missing:
            raise BaseModelError(
                directory / "config.json", missing[0], f"required for model_type {model_type}"
            )
        params = count_parameters(config, family)
        if params > _parameter_cap(caps):
            raise BaseModelError(
                directory / "config.json",
                None,
                f"its shapes ({_shape_summary(config)}) make {params:.2e} parameters: "
                f"{_past_parameter_cap(caps)}",
            )
        shape, shape_from = _shape(config), None
    else:
        shape, shape_from = shape_of_any_family(config)
        params = safetensors_parameters(directory, caps)
    modules = family["target_modules"] if family else None
    chat_default, chat_problem = _chat_system_default(
        directory, key, caps["max_tokenizer_config_bytes"]
    )
    return BaseModel(
        key=key,
        source="local",
        hub_id=None,
        revision=None,
        path=key,
        model_type=model_type,
        architecture=architectures[0],
        params=params,
        target_modules=tuple(modules) if modules else None,
        max_position_embeddings=config.get("max_position_embeddings"),
        decoder_layer=family.get("decoder_layer") if family else None,
        shape=shape,
        chat_system_default=chat_default,
        chat_template_problem=chat_problem,
        shape_from=shape_from,
    )


def _check_layers(file: Path, config: dict, caps: Mapping[str, int]) -> None:
    """num_hidden_layers within the layer cap: the count every per-layer size multiplies
    (at the top level and in a text_config, where a multimodal model keeps its decoder's)."""
    nested = config.get("text_config")
    for prefix, fields in (
        ("", config),
        ("text_config.", nested if isinstance(nested, dict) else {}),
    ):
        layers = fields.get("num_hidden_layers")
        if _is_int(layers) and layers > caps["max_base_layers"]:
            raise BaseModelError(
                file,
                prefix + "num_hidden_layers",
                f"{layers} layers; the limit is {caps['max_base_layers']} "
                "(rules/limits.yaml max_base_layers)",
            )


def _shape_summary(config: dict) -> str:
    return ", ".join(f"{key} {config[key]}" for key in REQUIRED_SHAPE_KEYS if key in config)


def _chat_system_default(
    directory: Path, written: str, limit: int
) -> tuple[str | None, str | None]:
    """(the default system prompt of a local base's chat template, why it is unknown):
    from chat_template.jinja, else tokenizer_config.json's chat_template. An absent file,
    or a template that cannot run, means unknown and no problem; a file that cannot be
    read, or a template that goes past a bound of rules/limits.yaml, means unknown with a
    problem naming the file as the document wrote the base (`written`), which the
    `base-chat-template-unevaluated` rule turns into a warning."""
    from dlm_gen.chat import evaluate

    file, template, problem = _chat_template(directory, limit)
    if template is not None:
        verdict = evaluate(template)
        if verdict.problem is None:
            return verdict.prompt, None
        field = "chat_template: " if file and file.name == "tokenizer_config.json" else ""
        problem = f"{field}not evaluated: {verdict.problem}"
    if file is None or problem is None:
        return None, None
    return None, f"{written.rstrip('/')}/{file.name}: {problem}"


def _chat_template(directory: Path, limit: int) -> tuple[Path | None, str | None, str | None]:
    """(the file the template comes from, the template, why it could not be read): from
    chat_template.jinja when it exists (it wins in transformers too), else from
    tokenizer_config.json's chat_template; every read bounded and regular files only."""
    from dlm_gen.files import InputFileError, read_bounded

    jinja = directory / "chat_template.jinja"
    if os.path.lexists(jinja):
        try:
            return jinja, read_bounded(jinja, limit).decode("utf-8"), None
        except InputFileError as exc:
            return jinja, None, f"not read: {exc}"
        except UnicodeDecodeError:
            return jinja, None, "not read: not valid UTF-8"
    file = directory / "tokenizer_config.json"
    if not os.path.lexists(file):
        return None, None, None
    try:
        raw = read_bounded(file, limit)
    except InputFileError as exc:
        return file, None, f"not read: {exc}"
    if _JSON_LIST_START.match(raw):
        return file, None, "not read: not a JSON object"
    cap = folder_caps()["max_tokenizer_config_containers"]
    if json_containers(raw) > cap:
        limit_name = "rules/limits.yaml max_tokenizer_config_containers"
        return file, None, f"not read: more than {cap} objects and lists ({limit_name})"
    try:
        config = json.loads(raw)
    except RecursionError:
        return file, None, "not read: nested too deeply"
    except ValueError:  # also UnicodeDecodeError and over-long integers
        return file, None, "not read: not valid JSON"
    template = config.get("chat_template") if isinstance(config, dict) else None
    return file, template if isinstance(template, str) else None, None


SHAPE_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
)


REQUIRED_SHAPE_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "vocab_size",
)


def shape_of_any_family(config: dict) -> tuple[dict | None, str | None]:
    """The shapes of a base whose model_type no table knows: the usual fields of a
    decoder's config.json, at its top level or in its text_config (a multimodal model's
    language part); and which fields were read, for explain to say."""
    for where, fields in (("config.json", config), ("config.json text_config", None)):
        fields = fields if fields is not None else config.get("text_config")
        if isinstance(fields, dict):
            shape = _shape(fields)
            if shape is not None:
                read = [key for key in SHAPE_KEYS if shape[key] is not None]
                return shape, f"{where}: {', '.join(read)}"
    return None, None


def _shape(config: dict) -> dict | None:
    shape = {key: config.get(key) for key in SHAPE_KEYS}
    if not all(_is_int(shape[key]) for key in REQUIRED_SHAPE_KEYS):
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

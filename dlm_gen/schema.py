"""The `.dlm` frontmatter as pydantic models: fields, defaults and bounds.

Defaults and bounds are those of the upstream `.dlm` format. Unknown keys are
errors (`extra="forbid"`), never dropped. The models say what a document may
contain; what it *means* for training is decided by the rule tables.

The classes below hold the fields; the values an enumerated field accepts
(adapter kinds, optimizers, ...) belong to the policy, so
`frontmatter_models(vocabulary)` narrows them to a loaded rule set's
vocabulary (`RuleSet.models()`), and a rules directory under DLM_GEN_RULES
brings its own optimizers without a restart. The JSON Schema in `schema/` is
exported from the shipped rule set's models (`dlm-gen schema`).
"""

from __future__ import annotations

import copy
import functools
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from dlm_gen.schema_blocks import FormatBlocks, PreferenceConfig
from dlm_gen.schema_blocks import Strict as _Strict

# The dlm tool's frontmatter schema versions this reader accepts (its CURRENT_SCHEMA_VERSION
# is 15); a newer document may use keys this version of dlm-gen does not know.
FORMAT_VERSIONS = (1, 15)
AdapterName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
ModuleName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.]+$")]
TargetModules = Literal["auto"] | Annotated[list[ModuleName], Field(min_length=1)]


class AdapterSettings(_Strict):
    """The fields that may differ between named adapters of one document."""

    adapter: str = Field(
        "lora", description="lora, qlora (4-bit base), dora (LoRA + DoRA) or full (no adapter)."
    )
    use_dora: bool | None = Field(
        None,
        description="DoRA on top of the adapter: with qlora it is QDoRA; adapter: dora implies it.",
    )
    lora_r: int = Field(8, ge=1, le=256, description="LoRA rank.")
    lora_alpha: int = Field(16, ge=1, le=65536, description="LoRA scaling numerator (alpha / r).")
    lora_dropout: float | None = Field(
        None,
        ge=0.0,
        le=0.5,
        description="LoRA dropout; null lets the plan pick (0.05 on a GPU, 0 on a CPU).",
    )
    target_modules: TargetModules = Field(
        "auto", description='"auto" (the base model\'s default) or a list of module names.'
    )
    learning_rate: float = Field(2e-4, gt=0, le=1.0, description="Peak learning rate.")


class NamedAdapterSettings(AdapterSettings):
    """One block of `training.adapters`: its settings, and optionally its own preference
    phase (unset, it follows `training.preference`)."""

    preference: PreferenceConfig | None = Field(
        None, description="This adapter's preference phase; null follows training.preference."
    )


PER_ADAPTER_FIELDS = tuple(NamedAdapterSettings.model_fields)


class TrainingConfig(FormatBlocks, AdapterSettings):
    """The `training:` block (the dlm format's further blocks come from FormatBlocks)."""

    sequence_len: int = Field(2048, ge=64, le=32768, description="Maximum tokens per row.")
    micro_batch_size: Literal["auto"] | Annotated[int, Field(ge=1, le=65536)] = Field(
        "auto", description="Rows per device per step, or auto."
    )
    grad_accum: Literal["auto"] | Annotated[int, Field(ge=1, le=65536)] = Field(
        "auto", description="Gradient accumulation steps, or auto."
    )
    num_epochs: int = Field(3, ge=1, le=10000, description="Passes over the training rows.")
    optimizer: str = Field("adamw_torch", description="Optimizer.")
    lr_scheduler: str = Field("cosine", description="Learning-rate schedule.")
    warmup_ratio: float = Field(0.1, ge=0.0, le=0.5, description="Warm-up share of steps.")
    precision: str | None = Field(None, description="null lets the plan pick.")
    attention: str = Field("auto", description="Attention implementation; auto lets the plan pick.")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Seed for every RNG.")
    packing: bool = Field(
        True,
        description=(
            "Pack SFT rows into sequence_len rows where the attention keeps packed "
            "samples apart (rules/packing.yaml); false pads each row alone."
        ),
    )
    eval_fraction: Literal["auto"] | Annotated[float, Field(ge=0.0, le=0.5)] = Field(
        "auto",
        description=(
            "Share of rows held out for the eval loss (by a hash of seed and row), 0 for "
            "none (the eval loss is then measured on training rows), or auto: 0.1 from "
            "20 rows up, else 0."
        ),
    )
    galore_rank: int | None = Field(
        None, ge=1, le=8192, description="GaLore projection rank (GaLore optimizers only)."
    )
    galore_update_proj_gap: int | None = Field(
        None, ge=1, le=1_000_000, description="Steps between GaLore projector updates."
    )
    galore_scale: float | None = Field(
        None, gt=0, le=100, description="Scale of GaLore's projected update."
    )
    galore_proj_type: str | None = Field(
        None, description="Which side GaLore projects: std, reverse_std, right, left or full."
    )
    galore_target_modules: Annotated[list[ModuleName], Field(min_length=1)] | None = Field(
        None, description="Module-name patterns GaLore projects (default: attention and MLP)."
    )
    adapters: dict[AdapterName, NamedAdapterSettings] | None = Field(
        None, min_length=1, description="Named adapters, each with its own settings."
    )

    @model_validator(mode="after")
    def _flat_fields_stay_default_with_adapters(self) -> TrainingConfig:
        if self.adapters is None:
            return self
        defaults = type(self).model_fields
        changed = [
            name
            for name in AdapterSettings.model_fields
            if getattr(self, name) != defaults[name].default
        ]
        if changed:
            raise ValueError(
                f"{', '.join(changed)} set at the top of training while training.adapters "
                "is set: move per-adapter fields into each adapter block"
            )
        return self

    def for_adapter(self, name: str | None) -> dict[str, object]:
        """The effective flat settings of one adapter (the whole block when unnamed)."""
        flat = self.model_dump(exclude={"adapters"})
        if name is not None and self.adapters is not None:
            own = self.adapters[name].model_dump()
            if own.get("preference") is None:  # unset: the document's preference block
                own.pop("preference", None)
            flat.update(own)
        return flat

    def block_for(self, block: str, name: str | None) -> object:
        """A nested block as one adapter sees it: its own, when its block sets one."""
        own = getattr(self.adapters[name], block, None) if name and self.adapters else None
        return own if own is not None else getattr(self, block)


class ExportConfig(_Strict):
    """The `export:` block: how the `dlm` tool exports the trained model (GGUF, Ollama).

    dlm-gen trains and does not export; the block is validated and kept in
    run.json and `explain --json`, so a document written for `dlm` keeps it.
    """

    default_quant: str = Field(
        "Q4_K_M", description="GGUF quantization used when `dlm export` is given none."
    )
    default_temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="Sampling temperature of the exported model."
    )
    default_top_p: float | None = Field(
        None, ge=0.0, le=1.0, description="Top-p of the exported model."
    )


class Frontmatter(_Strict):
    """The YAML frontmatter of a `.dlm` document."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        title="dlm-gen .dlm frontmatter",
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://dlm-gen.invalid/schema/dlm-frontmatter.schema.json",
        },
    )

    dlm_id: str | None = Field(
        None, pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$", description="Crockford-base32 ULID."
    )
    dlm_version: int = Field(
        1,
        ge=1,
        le=FORMAT_VERSIONS[1],
        description="Format version of the document (the dlm tool's schema versions 1..15).",
    )
    base_model: str = Field(
        min_length=1,
        max_length=4096,
        description="Registry key, hf:org/name, or a local directory holding config.json.",
    )
    system_prompt: str | None = Field(None, description="System prompt for instruction rows.")
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)


# The training fields whose values come from the vocabulary (rules/vocabulary.yaml,
# the optimizer names from rules/optimizers.yaml).
ENUMERATED_FIELDS = (
    "adapter",
    "optimizer",
    "lr_scheduler",
    "precision",
    "attention",
    "galore_proj_type",
)


@dataclass(frozen=True)
class FrontmatterModels:
    """The frontmatter models of one vocabulary: what a document may say under those tables."""

    frontmatter: type[Frontmatter]
    training: type[TrainingConfig]
    adapter: type[AdapterSettings]
    export: type[ExportConfig]

    def json_schema(self) -> str:
        """The JSON Schema of the frontmatter, as checked in at schema/ (for editors)."""
        import json

        return json.dumps(self.frontmatter.model_json_schema(), indent=2) + "\n"


def frontmatter_models(vocabulary: Mapping[str, tuple[str, ...]]) -> FrontmatterModels:
    """The models whose enumerated fields accept exactly the vocabulary's values."""
    names = (*ENUMERATED_FIELDS, "export_quant")
    return _models(tuple((name, tuple(vocabulary[name])) for name in names))


@functools.lru_cache(maxsize=8)
def _models(vocabulary: tuple[tuple[str, tuple[str, ...]], ...]) -> FrontmatterModels:
    values = dict(vocabulary)

    def narrowed(model: type[BaseModel], names) -> dict[str, tuple[object, object]]:
        fields: dict[str, tuple[object, object]] = {}
        for name in names:
            info = model.model_fields[name]
            accepted = Literal[values[name]]  # type: ignore[valid-type]
            nullable = type(None) in typing.get_args(info.annotation)
            fields[name] = (accepted | None if nullable else accepted, copy.copy(info))
        return fields

    adapter = create_model(
        "NamedAdapterSettings",
        __base__=NamedAdapterSettings,
        __doc__=NamedAdapterSettings.__doc__,
        **narrowed(NamedAdapterSettings, ["adapter"]),
    )
    adapters = copy.copy(TrainingConfig.model_fields["adapters"])
    training = create_model(
        "TrainingConfig",
        __base__=TrainingConfig,
        __doc__=TrainingConfig.__doc__,
        **narrowed(TrainingConfig, ENUMERATED_FIELDS),
        adapters=(dict[AdapterName, adapter] | None, adapters),
    )
    quant = copy.copy(ExportConfig.model_fields["default_quant"])
    export = create_model(
        "ExportConfig",
        __base__=ExportConfig,
        __doc__=ExportConfig.__doc__,
        default_quant=(Literal[values["export_quant"]], quant),  # type: ignore[valid-type]
    )
    frontmatter = create_model(
        "Frontmatter",
        __base__=Frontmatter,
        __doc__=Frontmatter.__doc__,
        training=(training, Field(default_factory=training)),
        export=(export, Field(default_factory=export)),
    )
    return FrontmatterModels(frontmatter, training, adapter, export)

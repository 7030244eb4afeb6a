"""The `training:` blocks of the dlm format beyond the core fields, as pydantic models.

Field names, defaults and bounds are the format's (the dlm tool's
docs/format/frontmatter.md), so a document written for `dlm` validates here.
What each block means for a dlm-gen plan is decided by the rule tables:
`training.preference` waits for the preference phase (rules/corpus.yaml),
`sources` become prose rows (dlm_gen/sources.py), and the blocks dlm-gen does
not implement (`cpt`, `gate`, `cache`, `audio`) get a warning or a refusal
from rules/format.yaml. The optional blocks are null when a document does
not write them, so a rule can tell "written" from "left at the default".
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

GlobPattern = Annotated[str, Field(min_length=1, max_length=1000)]


class Strict(BaseModel):
    """Unknown keys are errors, values are never coerced, a model never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PreferenceHyperparams(Strict):
    beta: float = Field(0.1, ge=0.0, le=1.0, description="DPO's KL strength (beta).")
    alpha: float = Field(0.1, ge=0.0, le=1.0, description="ORPO's odds-ratio weight.")
    learning_rate: float = Field(5e-6, gt=0.0, le=1.0, description="The phase's learning rate.")
    num_epochs: int = Field(1, ge=1, le=10000, description="Passes over the preference triples.")


class PreferenceConfig(Strict):
    """`training.preference`: how `::preference::` triples train (a phase after SFT)."""

    enabled: bool | None = Field(
        None, description="null: on when the document has ::preference:: sections."
    )
    method: Literal["dpo", "orpo"] = Field("dpo", description="dpo or orpo.")
    hyperparams: PreferenceHyperparams = Field(default_factory=PreferenceHyperparams)
    loss_type: Literal["sigmoid", "hinge", "ipo"] = Field(
        "sigmoid", description="DPO's loss (DPO only)."
    )
    reference: Literal["base", "pre_adapter"] = Field(
        "pre_adapter",
        description="DPO's reference: the bare base, or the adapter as SFT left it.",
    )


class CptConfig(Strict):
    """`training.cpt`: the dlm tool's continued-pretraining refinements."""

    schedule: Literal["auto", "dapt", "sft"] = Field(
        "auto", description="auto, dapt (the DAPT learning-rate curve) or sft."
    )
    embed_warmup_steps: int = Field(
        0, ge=0, le=1_000_000, description="Steps with embed_tokens and lm_head unfrozen."
    )


class GateConfig(Strict):
    """`training.gate`: the dlm tool's learned gate over named adapters."""

    enabled: bool = False
    hidden_proj_dim: int = Field(64, ge=8, le=2048)
    steps: int = Field(200, ge=1, le=10000)
    lr: float = Field(3e-4, gt=0.0, le=1.0)
    cold_start_floor: int = Field(4, ge=1, le=1024)
    entropy_lambda: float = Field(0.01, ge=0.0, le=1.0)


class CacheConfig(Strict):
    """`training.cache`: the dlm tool's tokenized-section cache."""

    enabled: bool = True
    max_bytes: int = Field(10 * 2**30, ge=1)
    prune_older_than_days: int = Field(90, ge=1)


class AudioConfig(Strict):
    """`training.audio`: the dlm tool's audio-language knobs."""

    auto_resample: bool = False


class SourceDirective(Strict):
    """One entry of `training.sources`: files whose text trains as prose rows."""

    path: str = Field(
        min_length=1,
        max_length=4096,
        description="File or directory; relative to the document, '~' expanded.",
    )
    include: list[GlobPattern] = Field(
        default_factory=lambda: ["**/*"],
        min_length=1,
        description="POSIX globs ('**' spans directories); a file must match one.",
    )
    exclude: list[GlobPattern] = Field(
        default_factory=list, description="Globs applied first: a match drops the file."
    )
    max_bytes_per_file: int | None = Field(
        None, ge=1, description="Larger files are skipped and counted."
    )
    max_files: int | None = Field(
        None, ge=1, description="Keep the first N files in lexicographic order."
    )


class FormatBlocks(Strict):
    """The dlm format's blocks, mixed into `training:` (see TrainingConfig)."""

    preference: PreferenceConfig = Field(
        default_factory=PreferenceConfig, description="Preference training of the triples."
    )
    sources: Annotated[list[SourceDirective], Field(min_length=1)] | None = Field(
        None, description="Files that train as prose rows, one row per file."
    )
    sources_policy: Literal["permissive", "strict"] = Field(
        "permissive",
        description="strict: every source path must stay under the document's directory.",
    )
    cpt: CptConfig | None = Field(None, description="dlm's continued-pretraining knobs.")
    gate: GateConfig | None = Field(None, description="dlm's learned adapter gate.")
    cache: CacheConfig | None = Field(None, description="dlm's tokenized-section cache.")
    audio: AudioConfig | None = Field(None, description="dlm's audio-language knobs.")

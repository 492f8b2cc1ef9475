"""The training configuration: every setting of a run, written to ``<run>/config.json``.

A run directory is fully described by its config; ``genbel train --config FILE`` (JSON or YAML)
re-runs it, and ``--resume`` refuses a config that differs in a setting that changes the result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from genbel.errors import ConfigError, Errors

#: settings that may differ between a run and its resumption (they do not change the result)
RESUME_FREE = {
    "resume",
    "log_every",
    "max_minutes",
    "eval_every",
    "save_every",
    "num_threads",
    "device",
    "keep_checkpoints",
    "out",
    "eval_max_mentions",
}


class TrainConfig(BaseModel):
    """Settings of ``genbel train`` (one field per CLI option)."""

    model_config = ConfigDict(extra="forbid")

    # ---------------------------------------------------------------- model
    base_model: str = Field("smollm2-135m", description="packaged alias, local HF dir or hub id")
    init: str | None = Field(
        None, description="start from this genbel linker dir / run dir (e.g. after pre-training)"
    )
    architecture: Literal["causal", "seq2seq"] | None = Field(None, description="auto from the model config")
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] | None = Field(
        None, description="module names; None = all linear layers of attention+MLP"
    )

    # ---------------------------------------------------------------- prompt
    prompt_style: Literal["syncabel", "genbioel"] | None = Field(None, description="default by architecture")
    context_chars: int | None = 0
    include_group: bool = False

    # ---------------------------------------------------------------- data
    kb: str | None = Field(None, description="KB path (None = the bundled default KB)")
    kb_format: str | None = None
    kb_group: str | None = None
    train_corpora: list[str] = Field(default_factory=list)
    dev_corpus: str | None = None
    synthetic_corpora: list[str] = Field(default_factory=list)
    entity_types: list[str] | None = None
    type_map: dict[str, str] = Field(default_factory=dict)
    target: Literal["tfidf", "preferred"] = "tfidf"
    composite: Literal["each", "first", "skip"] = "each"
    abbreviations: Literal["none", "expand", "both"] = "none"
    strict: bool = False
    dedupe: bool = True
    pretrain_per_concept: int = Field(0, description="KB-guided pre-training samples per concept (0 = none)")
    pretrain_concepts: int | None = Field(
        None, description="at most this many concepts for pre-training samples"
    )
    mix: dict[str, float] = Field(
        default_factory=lambda: {"human": 0.5, "synthetic": 0.5, "kb": 0.5},
        description="relative share of each source in every batch (sources without data are ignored)",
    )
    memory: bool = Field(
        False, description="robust memory training: human examples carry a memory of earlier gold names"
    )
    memory_corruption: float = Field(0.1, description="probability that a memory entry is corrupted")
    memory_fraction: float = Field(0.5, description="share of human examples that carry a memory")
    memory_size: int = Field(10, description="most recent distinct memory entries shown in a prompt")
    memory_style: Literal["block", "lines"] = Field(
        "block", description="memory layout: LongBEL's block, or an append-only transcript (lines)"
    )

    # ---------------------------------------------------------------- optimisation
    epochs: float = 1.0
    max_steps: int | None = Field(None, description="overrides epochs")
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    max_grad_norm: float = 1.0
    label_smoothing: float = 0.0
    max_length: int = Field(128, description="max prompt + target tokens of an example; longer ones are dropped")
    group_by_length: bool = True
    max_minutes: float | None = Field(None, description="stop (and save) after this much training time")
    seed: int = 0
    device: str = Field("auto", description="auto | cpu | cuda")
    bf16: bool | None = Field(None, description="None = on GPU with bf16 support")
    num_threads: int | None = None

    # ---------------------------------------------------------------- run
    out: str = "runs/genbel-train"
    save_every: int = 100
    eval_every: int = 0
    eval_max_mentions: int = 200
    keep_checkpoints: int = 2
    log_every: int = 10

    @field_validator("batch_size", "grad_accum", "max_length", "lora_r", "memory_size")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v

    @field_validator("memory_corruption", "memory_fraction")
    @classmethod
    def _rate(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{v!r} is not in [0, 1]")
        return v

    @field_validator("mix")
    @classmethod
    def _mix(cls, v: dict[str, float]) -> dict[str, float]:
        bad = set(v) - {"human", "synthetic", "kb"}
        if bad:
            raise ValueError(f"unknown sources {sorted(bad)} (human, synthetic, kb)")
        if any(x < 0 for x in v.values()):
            raise ValueError("shares must be >= 0")
        return v

    # ---------------------------------------------------------------- io
    def style(self, architecture: str) -> str:
        return self.prompt_style or ("syncabel" if architecture == "causal" else "genbioel")

    def write(self, path: str | Path) -> None:
        from genbel.io import atomic_write_text

        p = Path(path)
        if p.suffix in (".yaml", ".yml"):
            import yaml

            atomic_write_text(p, yaml.safe_dump(self.model_dump(), sort_keys=False))
        else:
            atomic_write_text(p, json.dumps(self.model_dump(), indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> TrainConfig:
        p = Path(path)
        if not p.exists():
            raise ConfigError(Errors.E006.format(path=p))
        text = p.read_text(encoding="utf-8")
        try:
            if p.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as e:  # noqa: BLE001 - any parse error becomes one clear message
            raise ConfigError(Errors.E016.format(path=p, reason=f"cannot parse: {e}")) from e
        return cls.parse(data, where=str(p))

    @classmethod
    def parse(cls, data: dict, where: str = "<config>") -> TrainConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or "config"
            raise ConfigError(Errors.E357.format(field=f"{field} ({where})", reason=err["msg"])) from e

    def differences(self, other: TrainConfig) -> list[str]:
        """Fields (outside :data:`RESUME_FREE`) whose values differ."""
        a, b = self.model_dump(), other.model_dump()
        return [k for k in a if k not in RESUME_FREE and a[k] != b[k]]

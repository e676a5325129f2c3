"""Training settings and named presets (the paper's reference runs and CPU-sized ones)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from ..catalogue import CPU_TRANSFORMER, CPU_TRANSFORMER_LANGEVIN_STEPS, PRESETS
from ..models.model import ModelConfig
from ..validation import check_known_fields

__all__ = ["TrainConfig", "PRESETS", "resolve_preset"]


@dataclass
class TrainConfig:
    """Optimiser steps, batch and schedule; AdamW with warm-up then cosine decay, EMA weights."""

    steps: int = 2000
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    warmup_steps: int = 100
    ema_decay: float = 0.999
    seed: int = 0
    checkpoint_every: int = 500
    max_events: int | None = None  # use at most this many training events (None: all)
    # stream the data from HDF5 in windows of about this many events (None: all in memory);
    # see lipsgen.training.streaming
    window_events: int | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.window_events is not None and self.window_events < 1:
            raise ValueError(f"window_events must be a positive integer, got {self.window_events!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        check_known_fields(cls, values, "training config")
        return cls(**values)


def resolve_preset(name: str, model_config: ModelConfig) -> tuple[ModelConfig, TrainConfig]:
    """Apply preset ``name`` to a model config; returns the model and training configs."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    model_overrides, train_overrides = PRESETS[name][model_config.model]
    if name == "cpu" and model_config.backbone == "transformer" and model_config.model != "nf":  # nf: no backbone
        model_overrides = {**model_overrides, **CPU_TRANSFORMER[0]}
        train_overrides = {**train_overrides, **CPU_TRANSFORMER[1]}
        if model_config.model == "langevin":
            train_overrides["steps"] = CPU_TRANSFORMER_LANGEVIN_STEPS
    if name == "cpu" and model_config.model == "langevin" and model_config.n_particles > 4:
        # The exact divergence costs 3N backward passes; beyond a few particles, estimate it.
        model_overrides = {**model_overrides, "divergence": "hutchinson"}
    return replace(model_config, **model_overrides), TrainConfig(**train_overrides)

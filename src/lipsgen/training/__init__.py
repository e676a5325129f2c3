"""Training: configs and presets, the loop, checkpoints."""

from ..random import derived_generator
from .checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from .config import PRESETS, TrainConfig, resolve_preset
from .trainer import TrainResult, train

__all__ = ["CheckpointError", "PRESETS", "TrainConfig", "TrainResult", "derived_generator", "load_model",
           "read_checkpoint", "resolve_preset", "save_checkpoint", "train"]

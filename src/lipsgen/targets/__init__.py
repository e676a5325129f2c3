"""Training targets with known truth (DESIGN §4)."""

from .base import DEFAULT_CHUNK_SIZE, Target
from .uniform import Uniform, uniform_phase_space

__all__ = ["DEFAULT_CHUNK_SIZE", "Target", "Uniform", "uniform_phase_space"]

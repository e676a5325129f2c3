"""Generative processes: paths, losses and reverse samplers, independent of the network."""

from .base import Process, Trajectory
from .flow import FlowMatching
from .langevin import LangevinDiffusion, langevin_schedule
from .vp import VPDiffusion

__all__ = ["FlowMatching", "LangevinDiffusion", "Process", "Trajectory", "VPDiffusion", "langevin_schedule"]

"""Generative processes: paths, losses and reverse steps, independent of the network; one solver."""

from .base import Process, ode_step
from .flow import FlowMatching
from .langevin import LOSS_WEIGHTS, TIME_LAWS, LangevinDiffusion, langevin_schedule
from .solver import Step, Trajectory, solve
from .vp import VPDiffusion

__all__ = ["FlowMatching", "LangevinDiffusion", "LOSS_WEIGHTS", "Process", "Step", "TIME_LAWS", "Trajectory",
           "VPDiffusion", "langevin_schedule", "ode_step", "solve"]

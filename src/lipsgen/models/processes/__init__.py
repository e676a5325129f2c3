"""Generative processes: paths, losses and reverse steps, independent of the network; one solver."""

from .base import Process, ode_step
from .flow import FlowMatching
from .langevin import LOSS_WEIGHTS, TIME_LAWS, LangevinDiffusion, langevin_schedule
from .normalizing import NormalizingFlowProcess
from .solver import DensityStep, Step, Trajectory, jacobian_step, solve, solve_with_log_det
from .vp import VPDiffusion

__all__ = ["DensityStep", "FlowMatching", "LangevinDiffusion", "LOSS_WEIGHTS", "NormalizingFlowProcess", "Process",
           "Step", "TIME_LAWS", "Trajectory", "VPDiffusion", "jacobian_step", "langevin_schedule", "ode_step", "solve",
           "solve_with_log_det"]

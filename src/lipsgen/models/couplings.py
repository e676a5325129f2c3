"""Couplings of data and noise states for flow matching (docs/design.md, "Particle coupling").

Flow matching is exact for any coupling whose marginals are the data and the prior. For unlabelled
particles the data law is exchangeable, and so is the prior's (N(0, I) in z-space, the RAMBO prior
in q-space): relabelling each data state's particles to match its noise state keeps both marginals
(the relabelled state has the data's set of particles, and it is exchangeable, since relabelling
data and noise alike commutes with the assignment; an exchangeable law is fixed by the law of its
set). The paths then no longer carry each particle to an unrelated noise particle, which a
permutation-equivariant network otherwise has to average over (equivariant flow matching, Klein,
Kraemer and Noe, arXiv:2306.15030).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

__all__ = ["align_particles"]


def align_particles(x0: Tensor, x1: Tensor) -> Tensor:
    """Data states x0 (n, N, 3), each event's particles relabelled to lie closest to the noise
    states x1 (n, N, 3): the permutation pi minimising ``sum_i |x0[pi(i)] - x1[i]|^2``, solved per
    event (Hungarian algorithm). Returns (n, N, 3), x0's dtype and device."""
    if x0.shape != x1.shape or x0.ndim != 3:
        raise ValueError(f"data and noise states must have one shape (n, N, 3), got {tuple(x0.shape)} and "
                         f"{tuple(x1.shape)}")
    cost = torch.cdist(x1.detach().double(), x0.detach().double()).square().cpu().numpy()
    order = np.stack([linear_sum_assignment(c)[1] for c in cost]) if len(cost) else np.zeros((0, x0.shape[1]), int)
    index = torch.as_tensor(order, dtype=torch.long, device=x0.device)
    return torch.take_along_dim(x0, index.unsqueeze(-1), dim=1)

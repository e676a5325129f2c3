"""Projection of massive jets onto massless N-particle phase space in the CM frame.

Durham jets (E scheme) are massive: ``E_j > |p_j|``. The projection is the P scheme followed by
the event's rest frame: every jet keeps its 3-momentum with ``E_j -> |p_j|``, then the massless
jets are boosted to their common rest frame and all momenta are scaled by one factor so that the
total energy is ``sqrt_s`` (``lipsgen.to_cm_frame``, the RAMBO map). Exact to float64 rounding in
E and p afterwards, by construction of the map.

For an event in its CM frame with every final-state particle clustered, the jets' 3-momenta sum
to zero, the boost is the identity to rounding and every jet keeps its direction exactly. For
N = 3 and 4 no other exact projection keeps the directions: massless momenta ``a_j n_j`` along
fixed unit vectors that sum to zero span a one-dimensional space of ``a`` (3 coplanar vectors, or
4 generic ones), so ``a_j`` is proportional to ``|p_j|``. The energies then change by
``sqrt_s |p_j| / (E_j sum_k |p_k|)``: heavier jets lose energy relative to lighter ones, and the
energy ordering can flip between two jets of similar energy and different mass (counted per event
in ``order_changed``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..coordinates.rambo import to_cm_frame
from ..kinematics import three_to_four
from ..validation import check_events

__all__ = ["ProjectedJets", "project_jets"]


@dataclass(frozen=True)
class ProjectedJets:
    """``events`` (n, N, 4): massless jets in the CM frame at ``sqrt_s``, ordered by decreasing
    energy; ``massive`` (n, N, 4): the jets before projection, in the same order;
    ``max_rel_energy_change`` (n,): the largest ``|E'_j / E_j - 1|`` of each event (energies in
    units of each one's total); ``max_angle`` (n,): the largest change of a jet's direction in
    radians (from the boost; zero to rounding for CM events); ``order_changed`` (n,) bool: the
    massive jets' energy ordering differs from the projected one."""

    events: Tensor
    massive: Tensor
    max_rel_energy_change: Tensor
    max_angle: Tensor
    order_changed: Tensor

    def datasets(self) -> dict[str, np.ndarray]:
        """Per-event arrays for an event file: the massive jets and the projection's measures."""
        return {"massive_jets": self.massive.numpy(),
                "projection_max_rel_energy_change": self.max_rel_energy_change.numpy(),
                "projection_max_angle": self.max_angle.numpy(),
                "projection_order_changed": self.order_changed.numpy()}

    def summary(self) -> dict[str, float]:
        """File attributes: how far the projection moved the jets, over all events."""
        change = self.max_rel_energy_change
        if not len(change):
            return dict.fromkeys(("projection_rel_energy_change_median", "projection_rel_energy_change_max",
                                  "projection_angle_max", "projection_order_changed_fraction"), 0.0)
        return {"projection_rel_energy_change_median": float(change.median()),
                "projection_rel_energy_change_max": float(change.max()),
                "projection_angle_max": float(self.max_angle.max()),
                "projection_order_changed_fraction": float(self.order_changed.double().mean())}


def project_jets(jets: Tensor, sqrt_s: float) -> ProjectedJets:
    """Project massive jets (n, N, 4) (E, px, py, pz) onto massless CM phase space at ``sqrt_s``
    (module docstring). Raises ``ValueError`` naming the event for a jet with zero momentum."""
    check_events(jets, "jets", massless=False)
    jets = jets.to(torch.float64)
    norm = torch.linalg.vector_norm(jets[..., 1:], dim=-1)
    zero = norm == 0
    if zero.any():
        event, jet = (int(i) for i in torch.nonzero(zero)[0])
        raise ValueError(f"jets: event {event}, jet {jet} has zero 3-momentum; it has no massless projection")
    events = to_cm_frame(three_to_four(jets[..., 1:]), sqrt_s=sqrt_s)
    order = torch.argsort(events[..., 0], dim=1, descending=True, stable=True).unsqueeze(-1)
    events, massive = torch.take_along_dim(events, order, dim=1), torch.take_along_dim(jets, order, dim=1)
    fraction_after = events[..., 0] / events[..., 0].sum(dim=1, keepdim=True)
    fraction_before = massive[..., 0] / massive[..., 0].sum(dim=1, keepdim=True)
    change = (fraction_after / fraction_before - 1).abs().amax(dim=1)
    # the angle from the chord between unit vectors keeps its precision at small angles
    chord = torch.linalg.vector_norm(events[..., 1:] / events[..., :1]
                                     - massive[..., 1:] / torch.take_along_dim(norm, order[..., 0], dim=1)
                                     .unsqueeze(-1), dim=-1)
    angle = 2 * torch.asin((chord / 2).clamp(max=1)).amax(dim=1)
    massive_order = torch.argsort(jets[..., 0], dim=1, descending=True, stable=True)
    return ProjectedJets(events, massive, change, angle, (massive_order != order[..., 0]).any(dim=1))

"""Where a model lives and how its states become events.

A space encodes events (n, N, 4) into model coordinates x (n, N, 3) and decodes any x back into
events. q- and z-space decode through the RAMBO map (float64), so every decoded state is exactly
on phase space; p-space is the ambient baseline, decoded as massless particles with no
conservation. ``prior`` draws the noise end of the space's standard process.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..catalogue import Lift
from ..coordinates.qspace import prior_log_prob, sample_prior
from ..coordinates.rambo import lift_to_qspace, rambo_map
from ..coordinates.zspace import q_to_z, standard_normal_log_prob, z_to_q
from ..kinematics import three_to_four

__all__ = ["Space", "QSpace", "ZSpace", "PSpace", "make_space"]


@dataclass
class Space:
    """Base: ``sqrt_s`` and the lifting mode used to encode data (``exact`` or ``fixed``)."""

    n_particles: int
    sqrt_s: float = 1.0
    lift: Lift = "exact"

    exact = True  # decoded events conserve energy and momentum to rounding

    def encode(self, events: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def decode(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def prior(self, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
        return torch.randn((n, self.n_particles, 3), generator=generator, device=device)

    def prior_log_prob(self, x: Tensor) -> Tensor:
        """Log-density (n,) float64 of :meth:`prior` at states x (n, N, 3)."""
        return standard_normal_log_prob(x)

    def state(self) -> dict:
        """Data-dependent state to keep in checkpoints (none by default)."""
        return {}

    def load_state(self, state: dict) -> None:
        pass


class QSpace(Space):
    """RAMBO q-space; its natural prior is the RAMBO prior (uniform phase space)."""

    def encode(self, events: Tensor, generator: torch.Generator) -> Tensor:
        q = lift_to_qspace(events.to(torch.float64), self.lift, sqrt_s=self.sqrt_s, generator=generator)
        return q.float()

    def decode(self, x: Tensor) -> Tensor:
        return rambo_map(x.detach().to(torch.float64), sqrt_s=self.sqrt_s).p

    def prior(self, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
        return sample_prior(n, self.n_particles, generator=generator, dtype=torch.float32, device=device)

    def prior_log_prob(self, x: Tensor) -> Tensor:
        return prior_log_prob(x.double())


class ZSpace(Space):
    """z-space: the RAMBO prior is N(0, I), so a standard Gaussian noise end is uniform phase space."""

    def encode(self, events: Tensor, generator: torch.Generator) -> Tensor:
        q = lift_to_qspace(events.to(torch.float64), self.lift, sqrt_s=self.sqrt_s, generator=generator)
        return q_to_z(q).float()

    def decode(self, x: Tensor) -> Tensor:
        return rambo_map(z_to_q(x.detach().to(torch.float64)), sqrt_s=self.sqrt_s).p


class PSpace(Space):
    """Ambient baseline: 3-momenta divided by a scale fitted to the data (their RMS component)."""

    exact = False
    scale = 0.0

    def fit(self, events: Tensor) -> None:
        self.scale = float(events[..., 1:].to(torch.float64).square().mean().sqrt())

    def encode(self, events: Tensor, generator: torch.Generator) -> Tensor:
        if not self.scale > 0:
            raise RuntimeError("PSpace.fit must see the training data before encoding")
        return (events[..., 1:].to(torch.float64) / self.scale).float()

    def decode(self, x: Tensor) -> Tensor:
        return three_to_four(x.detach().to(torch.float64) * self.scale)

    def state(self) -> dict:
        return {"scale": self.scale}

    def load_state(self, state: dict) -> None:
        self.scale = float(state["scale"])


_SPACES = {"q": QSpace, "z": ZSpace, "p": PSpace}


def make_space(name: str, n_particles: int, sqrt_s: float, lift: Lift) -> Space:
    return _SPACES[name](n_particles=n_particles, sqrt_s=sqrt_s, lift=lift)

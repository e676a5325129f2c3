"""Muon decay at rest, mu- -> e- nu_mu anti-nu_e, massless or with the electron mass (docs/design.md, Targets)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from scipy.integrate import cumulative_trapezoid, quad
from torch import Tensor

from ..coordinates.massive import check_masses
from ..kinematics import minkowski_dot, two_body_momentum
from .base import Target, fill_by_rejection
from .three_body import dalitz_jacobian
from .uniform import Uniform

__all__ = ["MuonDecay"]


class MuonDecay(Target):
    """Particles (e-, nu_mu, anti-nu_e). Density on phase space ∝ ``(p_mu·p_3)(p_1·p_2)``.

    At rest ``p_mu = (sqrt_s, 0)``, so the weight is ``w = sqrt_s E_3 (p_1·p_2)``; with
    ``x_3 = 2 E_3 / sqrt_s`` and ``p_1·p_2 = s (1 - x_3) / 2``: ``w = s^2 x_3 (1 - x_3) / 4``.
    Bound (proof): ``x (1 - x) <= 1/4`` for all real x, so ``w <= s^2 / 16 = w_max``. Sampling is
    rejection from uniform phase space with probability ``w / w_max`` (efficiency 2/3, since
    ``x_3 ~ Beta(2, 1)`` under uniform phase space and ``E[x(1-x)] = 1/6``).

    With ``electron_mass`` m > 0 (in the unit of sqrt_s): ``p_1·p_2 = (A - 2 sqrt_s E_3) / 2``,
    ``A = s - m^2``, so ``w <= A^2 / 16``, and the proposal is uniform massive phase space
    (``lipsgen.coordinates.massive``). The normalisation is the 1-D quadrature of the closed-form
    inner integral over E_3 (``dPhi_3 = pi^2 dE_1 dE_3``), tested against the known
    ``1 - 8r + 8r^3 - r^4 - 12 r^2 ln r``, ``r = m^2 / s``.
    """

    name = "muon"
    particle_ids = (11, 14, -12)  # e-, nu_mu, anti-nu_e
    labelled = True
    density_normalised = True

    def __init__(self, *, sqrt_s: float = 1.0, electron_mass: float = 0.0) -> None:
        super().__init__(3, sqrt_s=sqrt_s)
        masses = check_masses([electron_mass, 0.0, 0.0], 3, self.sqrt_s, "muon: electron_mass")
        self.electron_mass = masses[0]
        self.masses = masses if self.electron_mass else None
        self._uniform = Uniform(3, sqrt_s=sqrt_s, masses=self.masses)
        self._w_max = (self.sqrt_s**2 - self.electron_mass**2) ** 2 / 16

    def parameters(self) -> dict:
        return {"sqrt_s": self.sqrt_s, **({"electron_mass": self.electron_mass} if self.electron_mass else {})}

    def electron_energy_density(self, energy: np.ndarray) -> np.ndarray:
        """Unnormalised density (len,) of the electron energy E_1: ``pi^2 ∫ w dE_3`` over
        ``E_3 in [c - p_1/2, c + p_1/2]``, ``c = (sqrt_s - E_1)/2``, in closed form."""
        root_s, m = self.sqrt_s, self.electron_mass
        p1 = np.sqrt(np.maximum(energy**2 - m * m, 0.0))
        centre = (root_s - energy) / 2
        return math.pi**2 * root_s / 2 * (p1 * centre * (root_s * energy - m * m) - root_s * p1**3 / 6)

    def _normalisation(self) -> float:
        """``∫ w dPhi_3``: massless, ``w_max (2/3) V_3``; massive, the quadrature of the electron's density."""
        if not self.electron_mass:
            return 2 / 3 * self._w_max * dalitz_jacobian(self.sqrt_s) / 2
        highest = (self.sqrt_s**2 + self.electron_mass**2) / (2 * self.sqrt_s)
        value, _ = quad(lambda e: float(self.electron_energy_density(np.array([e]))[0]), self.electron_mass,
                        highest, epsabs=0, epsrel=1e-12, limit=200)
        return value

    def spectra(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """Energy fractions x = 2E/sqrt_s: e- and nu_mu follow the Michel spectrum 2 x^2 (3 - 2x)
        (CDF 2x^3 - x^4), anti-nu_e follows 12 x^2 (1 - x) (Beta(3, 2)). With the electron mass, the
        electron's (massive Michel) spectrum only, from :meth:`electron_energy_density`."""
        if self.electron_mass:
            return {"x_1": self._massive_electron_cdf()}

        def michel(x: np.ndarray) -> np.ndarray:
            x = np.clip(x, 0.0, 1.0)
            return 2 * x**3 - x**4

        def anti_nu(x: np.ndarray) -> np.ndarray:
            x = np.clip(x, 0.0, 1.0)
            return 4 * x**3 - 3 * x**4

        return {"x_1": michel, "x_2": michel, "x_3": anti_nu}

    def _massive_electron_cdf(self) -> Callable[[np.ndarray], np.ndarray]:
        # the density has a square-root edge at E = m: a grid in p_1 keeps it smooth
        momentum = np.linspace(0.0, two_body_momentum(self.sqrt_s, self.electron_mass, 0.0), 100_001)
        energy = np.sqrt(momentum**2 + self.electron_mass**2)
        density = self.electron_energy_density(energy) * momentum / energy  # dE = p / E dp
        cumulative = cumulative_trapezoid(density, momentum, initial=0.0)
        cumulative /= cumulative[-1]
        fraction = 2 * energy / self.sqrt_s
        return lambda x: np.interp(x, fraction, cumulative, left=0.0, right=1.0)

    def weight(self, events: Tensor) -> Tensor:
        """Unnormalised weight ``w / w_max`` in [0, 1], shape (n,)."""
        w = self.sqrt_s * events[:, 2, 0] * minkowski_dot(events[:, 0], events[:, 1])
        return w / self._w_max

    def log_density(self, events: Tensor) -> Tensor:
        """Normalised log-density on phase space (measure of docs/design.md, Conventions), shape (n,).

        ``∫ w dPhi = w_max * E_uniform[w / w_max] * V_3 = w_max * (2/3) * V_3`` (massless).
        """
        return (torch.log(self.weight(self.check_shape(events))) + math.log(self._w_max)
                - math.log(self._normalisation()))

    def sample_chunk(self, n_events: int, generator: torch.Generator, dtype: torch.dtype,
                     device: torch.device) -> Tensor:
        def draw_accepted(size: int) -> Tensor:
            proposal = self._uniform.sample_chunk(size, generator, dtype, device)
            ratio = self.weight(proposal)
            if bool((ratio > 1 + 1e-12).any()):
                raise RuntimeError(f"muon: weight ratio {float(ratio.max())} exceeds its proven bound 1")
            keep = torch.rand(ratio.shape, generator=generator, dtype=dtype, device=device) < ratio
            return proposal[keep]

        return fill_by_rejection(n_events, draw_accepted, self.name, overdraw=1.6)

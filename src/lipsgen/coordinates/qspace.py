"""The RAMBO prior on q-space (docs/design.md, RAMBO map).

q-space holds N independent massless 3-vectors ``q_i`` (E_i = |q_i|): isotropic directions and
``|q_i| ~ Gamma(2, 1)``. Per particle the density on R^3 is ``exp(-|q|) / (4 pi |q|)``. Pushed
through the RAMBO map (:mod:`lipsgen.coordinates.rambo`) this prior gives exactly uniform phase space.

Tensors: ``q`` has shape (n_events, n_particles, 3), in arbitrary units (the map removes the scale).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..random import make_generator
from ..validation import check_nonzero_vectors, check_threevectors

_PRIOR_SINGULAR = "where the prior is singular"

__all__ = [
    "sample_prior",
    "prior_from_uniforms",
    "prior_log_prob",
    "prior_score",
    "regularised_drift",
    "sample_prior_components",
    "uniform_randoms",
]


def uniform_randoms(
    shape: tuple[int, ...],
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Uniforms in [0, 1) of ``shape``, reproducible through ``generator``.

    On the CPU in float64 the numbers come from NumPy's PCG64, seeded from ``generator``: about
    three times faster than ``torch.rand`` there, and random numbers dominate RAMBO's cost.
    """
    if torch.device(device).type == "cpu" and dtype == torch.float64:
        seed = int(torch.randint(0, 2**63 - 1, (), generator=generator, device="cpu"))
        return torch.from_numpy(np.random.default_rng(seed).random(shape))
    return torch.rand(shape, generator=generator, dtype=dtype, device=device)


def sample_prior_components(
    n_events: int,
    n_particles: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Prior samples as components ``(|q|, qx, qy, qz)``, each of shape (n, N).

    Four uniforms per particle: ``|q| = -ln((1 - u1)(1 - u2))`` (finite: ``1 - u`` is in (0, 1])
    and a direction uniform on the sphere, ``cos theta = 2 u3 - 1``, ``phi = 2 pi u4``.
    Components rather than (n, N, 3) because elementwise work on contiguous (n, N) planes is
    several times faster than on an interleaved last axis of size 3.
    """
    return prior_from_uniforms(uniform_randoms((4, n_events, n_particles), generator, dtype, device))


def prior_from_uniforms(u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The prior's components ``(|q|, qx, qy, qz)`` (each (n, N)) from uniforms u (4, n, N) in
    [0, 1) (overwritten): RAMBO's chart of the unit hypercube, whose image under the RAMBO map is
    uniform phase space with constant weight (the chart VEGAS-style integrators adapt on)."""
    magnitude = torch.log(torch.rsub(u[0], 1).mul_(torch.rsub(u[1], 1))).neg_()
    cos_theta = u[2].mul_(2).sub_(1)
    transverse = torch.rsub(cos_theta * cos_theta, 1).clamp_(min=0).sqrt_().mul_(magnitude)
    phi = u[3].mul_(2 * math.pi)
    qx = torch.cos(phi).mul_(transverse)
    qy = phi.sin_().mul_(transverse)
    return magnitude, qx, qy, cos_theta.mul_(magnitude)


def sample_prior(
    n_events: int,
    n_particles: int,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Draw q (n_events, n_particles, 3) from the RAMBO prior."""
    _check_sizes(n_events, n_particles)
    gen = make_generator(seed, generator, device)
    return torch.stack(sample_prior_components(n_events, n_particles, gen, dtype, device)[1:], dim=-1)


def prior_log_prob(q: Tensor) -> Tensor:
    """Log-density (n_events,) of q (n_events, n_particles, 3) under the prior, w.r.t. d^3q per particle.

    ``sum_i [-|q_i| - log(4 pi |q_i|)]``; ``-inf`` would need ``q_i = 0`` exactly, which is refused.
    """
    check_threevectors(q)
    r = check_nonzero_vectors(q, _PRIOR_SINGULAR)
    return (-r - torch.log(4 * math.pi * r)).sum(dim=-1)


def prior_score(q: Tensor, *, check: bool = True) -> Tensor:
    """Score ``grad_q log prior = -(1 + 1/|q|) q/|q|``, shape (n_events, n_particles, 3).

    ``check=False`` skips the input checks (finite, no zero vector): for inner loops over states
    lipsgen made itself, where each check would cost a pass and, on a GPU, a synchronisation."""
    if check:
        check_threevectors(q)
        r = check_nonzero_vectors(q, _PRIOR_SINGULAR).unsqueeze(-1)
    else:
        r = torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    return -(1 + 1 / r) * q / r


def regularised_drift(q: Tensor, eps: float = 0.2, *, check: bool = True) -> Tensor:
    """Bounded stand-in for the score near ``q = 0``: ``-q/|q| - q / (|q|^2 + eps^2)``.

    The exact score has a ``1/|q|`` pole that makes Euler steps of Langevin dynamics unstable for
    soft particles; the paper's singular-target runs use this drift with ``eps = 0.2``.
    At ``q = 0`` the unit vector is taken as 0 (the drift is then 0). ``check`` as in :func:`prior_score`.
    """
    if check:
        check_threevectors(q)
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    r2 = (q * q).sum(dim=-1, keepdim=True)
    r = torch.sqrt(r2)
    unit = q / torch.where(r > 0, r, torch.ones_like(r))
    return -unit - q / (r2 + eps * eps)


def _check_sizes(n_events: int, n_particles: int) -> None:
    if not isinstance(n_events, int) or n_events < 0:
        raise ValueError(f"n_events must be a non-negative integer, got {n_events!r}")
    if not isinstance(n_particles, int) or n_particles < 2:
        raise ValueError(f"n_particles must be an integer >= 2, got {n_particles!r}")

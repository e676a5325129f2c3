"""The RAMBO map from q-space onto massless phase space, its fibre and its inverse (docs/design.md, RAMBO map).

``q`` (n, N, 3) holds massless 3-vectors (``q0 = |q|``). With ``Q = sum_i q_i`` (four-vector),
``M = sqrt(Q^2)``, ``b = -Q_vec / M``, ``gamma = Q0 / M``, ``x = sqrt_s / M`` the map boosts every
``q_i`` into the rest frame of ``Q`` and rescales it by ``x``. The output conserves energy and
momentum to rounding for *any* input (not only prior samples), and ``(p, b, x) <-> q`` is a bijection.

Numerics: the plain formulas lose about ``eps * gamma^2`` of conservation (cancellation for particles
along ``Q_vec``). Events with ``gamma > 8`` are therefore recomputed with cancellation-free formulas
(pairwise invariant mass, ``1 - cos`` from differences of unit vectors) and then mapped once more,
which is a near-identity, well-conditioned step that restores conservation to rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..catalogue import Lift
from ..kinematics import boost
from ..random import make_generator
from ..validation import check_events, check_positive, check_threevectors

__all__ = [
    "RamboResult",
    "rambo_map",
    "rambo_map_components",
    "inverse_rambo_map",
    "sample_fibre",
    "lift_to_qspace",
    "fixed_embedding_x",
    "to_cm_frame",
]

# Above this gamma the plain formulas may cost more than ~1e-14 of conservation.
_WELL_CONDITIONED_GAMMA = 8.0
# Beyond this gamma (M / Q0 < 1e-15) the directions agree to within rounding: collinear.
_MAX_GAMMA = 1e15

# The reference code's fixed embedding (b = 0) used these scales.
_PAPER_FIXED_X = {3: 0.15, 10: 0.0846}


class RamboResult(NamedTuple):
    """Output of :func:`rambo_map`.

    p: (n, N, 4) events on phase space; b: (n, 3) boost (spatial four-velocity); x: (n,) scale.
    """

    p: Tensor
    b: Tensor
    x: Tensor


def _plain_map(
    r: Tensor, qx: Tensor, qy: Tensor, qz: Tensor, sqrt_s: float, out: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Plain RAMBO formulas on components (each (n, N)); writes p into ``out`` (n, N, 4).

    Returns (b, x, gamma); gamma is NaN where ``M^2 <= 0``. Fast, accurate while gamma is moderate.
    """
    q0, qx_sum, qy_sum, qz_sum = r.sum(dim=1), qx.sum(dim=1), qy.sum(dim=1), qz.sum(dim=1)
    inv_mass = torch.rsqrt(q0 * q0 - qx_sum * qx_sum - qy_sum * qy_sum - qz_sum * qz_sum)
    b = torch.stack([qx_sum, qy_sum, qz_sum], dim=-1) * -inv_mass.unsqueeze(-1)
    gamma = q0 * inv_mass
    x = sqrt_s * inv_mass
    xs, gs = x.unsqueeze(1), gamma.unsqueeze(1)
    bx, by, bz = (component.unsqueeze(1) for component in b.unbind(-1))
    bq = torch.addcmul(torch.addcmul(bx * qx, by, qy), bz, qz)
    along_b = torch.addcmul(r, bq, 1 / (1 + gs)) * xs  # x (q0 + a b.q)
    out[..., 0] = torch.addcmul(bq, gs, r) * xs  # x (gamma q0 + b.q)
    out[..., 1] = torch.addcmul(qx * xs, bx, along_b)
    out[..., 2] = torch.addcmul(qy * xs, by, along_b)
    out[..., 3] = torch.addcmul(qz * xs, bz, along_b)
    return b, x, gamma


def _stable_map(
    r: Tensor, q: Tensor, sqrt_s: float, event_index: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Cancellation-free RAMBO formulas for large gamma; returns (p, b, x).

    With ``n = Q_vec/|Q_vec|`` and ``1 - c_i = |q_i/|q_i| - n|^2 / 2``:
    ``E_i = x |q_i| (1/(gamma + |b|) + |b| (1 - c_i))``,
    ``p_i.n = x |q_i| (1/(gamma + |b|) - gamma (1 - c_i))``, transverse part ``x q_i_perp``.
    ``event_index`` (n,) numbers the events in the caller's batch, for error messages.
    """
    safe_r = torch.where(r > 0, r, torch.ones_like(r)).unsqueeze(-1)
    unit = torch.where(r.unsqueeze(-1) > 0, q / safe_r, torch.zeros_like(q))
    diff = unit.unsqueeze(2) - unit.unsqueeze(1)
    mass2 = 0.5 * torch.einsum("ni,nj,nij->n", r, r, (diff * diff).sum(dim=-1))
    _check_mass(mass2, r.sum(dim=1), event_index)
    mass = torch.sqrt(mass2)
    qvec = q.sum(dim=1)
    qnorm = torch.linalg.vector_norm(qvec, dim=-1)
    n = qvec / qnorm.unsqueeze(-1)
    b_abs = qnorm / mass
    gamma = r.sum(dim=1) / mass
    x = sqrt_s / mass
    one_minus_c = 0.5 * ((unit - n.unsqueeze(1)) ** 2).sum(dim=-1)
    inv_sum = (1 / (gamma + b_abs)).unsqueeze(1)
    xr = x.unsqueeze(1) * r
    energy = xr * (inv_sum + b_abs.unsqueeze(1) * one_minus_c)
    parallel = xr * (inv_sum - gamma.unsqueeze(1) * one_minus_c)
    q_par = torch.einsum("nik,nk->ni", q, n)
    perp = x.view(-1, 1, 1) * (q - q_par.unsqueeze(-1) * n.unsqueeze(1))
    vec = perp + parallel.unsqueeze(-1) * n.unsqueeze(1)
    return torch.cat([energy.unsqueeze(-1), vec], dim=-1), -b_abs.unsqueeze(-1) * n, x


def _check_mass(mass2: Tensor, q0: Tensor, event_index: Tensor) -> None:
    bad = ~(mass2 > (q0 / _MAX_GAMMA) ** 2)
    if bad.any():
        i = int(event_index[torch.nonzero(bad)[0, 0]])
        raise ValueError(
            f"q: the momenta of event {i} are collinear (or zero) to within rounding: their total "
            f"invariant mass vanishes and the RAMBO map is undefined"
        )


def _polish(
    r: Tensor, qx: Tensor, qy: Tensor, qz: Tensor, sqrt_s: float, event_index: Tensor
) -> Tensor:
    """Re-map nearly conserving massless events until they are well conditioned (at most 3 times)."""
    p = torch.empty((*r.shape, 4), dtype=r.dtype, device=r.device)
    for _ in range(3):
        gamma = _plain_map(r, qx, qy, qz, sqrt_s, p)[2]
        if bool((gamma <= _WELL_CONDITIONED_GAMMA).all()):
            return p
        vec = p[..., 1:].clone()
        r, (qx, qy, qz) = torch.linalg.vector_norm(vec, dim=-1), vec.unbind(-1)
    i = int(event_index[torch.nonzero(~(gamma <= _WELL_CONDITIONED_GAMMA))[0, 0]])
    raise ValueError(f"q: event {i} is too close to collinear for the RAMBO map in {r.dtype}")


def rambo_map_components(
    r: Tensor, qx: Tensor, qy: Tensor, qz: Tensor, sqrt_s: float = 1.0
) -> RamboResult:
    """RAMBO map of q given as components ``|q|, qx, qy, qz`` (each (n, N)); no input checks."""
    n, n_particles = r.shape
    p = torch.empty((n, n_particles, 4), dtype=r.dtype, device=r.device)
    b, x, gamma = _plain_map(r, qx, qy, qz, sqrt_s, p)
    ill = ~(gamma <= _WELL_CONDITIONED_GAMMA)  # also catches NaN from M^2 <= 0
    if ill.any():
        idx = torch.nonzero(ill).squeeze(-1)
        q = torch.stack([qx[idx], qy[idx], qz[idx]], dim=-1)
        p_ill, b_ill, x_ill = _stable_map(r[idx], q, sqrt_s, idx)
        # Map the (nearly CM, nearly sqrt_s) output once more: b ~ 0 and x ~ 1, well conditioned.
        vec = p_ill[..., 1:]
        vx, vy, vz = vec.unbind(-1)
        p_ill = _polish(torch.linalg.vector_norm(vec, dim=-1), vx, vy, vz, sqrt_s, idx)
        p, b, x = p.index_copy(0, idx, p_ill), b.index_copy(0, idx, b_ill), x.index_copy(0, idx, x_ill)
    return RamboResult(p, b, x)


def rambo_map(q: Tensor, *, sqrt_s: float = 1.0) -> RamboResult:
    """Map q (n, N, 3) onto massless phase space at ``sqrt_s``; returns ``(p, b, x)``.

    ``p`` (n, N, 4) satisfies ``sum_i p_i = (sqrt_s, 0, 0, 0)`` to rounding for any finite q that
    is not collinear; ``b`` (n, 3) and ``x`` (n,) are the fibre coordinates that
    :func:`inverse_rambo_map` needs to recover q. Differentiable.
    """
    check_threevectors(q)
    check_positive(sqrt_s, "sqrt_s")
    qx, qy, qz = q.unbind(-1)
    return rambo_map_components(torch.linalg.vector_norm(q, dim=-1), qx, qy, qz, sqrt_s)


def inverse_rambo_map(p: Tensor, b: Tensor, x: Tensor) -> Tensor:
    """q (n, N, 3) from events p (n, N, 4) and fibre (b (n, 3), x (n,)): ``q_i = boost(p_i, -b) / x``.

    ``p`` must be massless; it need not be at any particular sqrt_s (the fibre carries the scale).
    """
    check_events(p, "p")
    n = p.shape[0]
    if not isinstance(b, Tensor) or b.shape != (n, 3):
        raise ValueError(f"b: expected shape ({n}, 3), got {tuple(getattr(b, 'shape', ()))}")
    if not isinstance(x, Tensor) or x.shape != (n,):
        raise ValueError(f"x: expected shape ({n},), got {tuple(getattr(x, 'shape', ()))}")
    if not torch.isfinite(b).all():
        i = int(torch.nonzero(~torch.isfinite(b).all(dim=-1))[0, 0])
        raise ValueError(f"b: event {i} has a NaN or infinite component")
    check_positive(x, "x")
    return boost(p, -b)[..., 1:] / x.view(-1, 1, 1)


def _standard_gamma_integer(shape: int, size: tuple[int, ...], gen: torch.Generator,
                            dtype: torch.dtype, device: torch.device | str) -> Tensor:
    """Gamma(shape, 1) for integer ``shape`` as a sum of exponentials (generator-reproducible)."""
    u = torch.rand((shape, *size), generator=gen, dtype=dtype, device=device)
    return -torch.log1p(-u).sum(dim=0)


def sample_fibre(
    n_events: int,
    n_particles: int,
    sqrt_s: float = 1.0,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Draw the fibre ``(b (n, 3), x (n,))`` from its exact law under the prior.

    Under the prior, ``(b, M)`` has density ``∝ M^(2N-1) exp(-gamma M) dM d^3b / gamma`` and is
    independent of p. Sampled as ``t^2 ~ Beta(3/2, N-1)``, ``|b| = t / sqrt(1 - t^2)``, isotropic
    direction, ``M ~ Gamma(2N, rate=gamma)``, ``x = sqrt_s / M``. With ``t^2 = G1 / (G1 + G2)``,
    ``G1 ~ Gamma(3/2) = Exp + Z^2/2``, ``G2 ~ Gamma(N-1)``: ``|b| = sqrt(G1/G2)`` (no cancellation).
    """
    check_positive(sqrt_s, "sqrt_s")
    if not isinstance(n_particles, int) or n_particles < 2:
        raise ValueError(f"n_particles must be an integer >= 2, got {n_particles!r}")
    gen = make_generator(seed, generator, device)
    size = (n_events,)
    g1 = _standard_gamma_integer(1, size, gen, dtype, device)
    g1 = g1 + 0.5 * torch.randn(size, generator=gen, dtype=dtype, device=device) ** 2
    g2 = _standard_gamma_integer(n_particles - 1, size, gen, dtype, device)
    b_abs = torch.sqrt(g1 / g2)
    direction = torch.randn((n_events, 3), generator=gen, dtype=dtype, device=device)
    direction = direction / torch.linalg.vector_norm(direction, dim=-1, keepdim=True)
    gamma = torch.sqrt((g1 + g2) / g2)
    mass = _standard_gamma_integer(2 * n_particles, size, gen, dtype, device) / gamma
    return b_abs.unsqueeze(-1) * direction, sqrt_s / mass


def fixed_embedding_x(n_particles: int, *, sqrt_s: float = 1.0) -> float:
    """Scale of the reference code's fixed embedding (b = 0).

    The paper's values (0.15 for N = 3, 0.0846 for N = 10) at sqrt_s = 1; other N use
    ``sqrt_s / (2N)``, which makes the mean lifted ``|q_i|`` equal to the prior mean 2.
    """
    return sqrt_s * _PAPER_FIXED_X.get(n_particles, 1 / (2 * n_particles))


def lift_to_qspace(
    events: Tensor,
    mode: Lift = "exact",
    *,
    sqrt_s: float = 1.0,
    fixed_x: float | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Lift phase-space events (n, N, 4) to q-space (n, N, 3).

    ``exact`` draws ``(b, x)`` per event from the exact fibre law (call again for a fresh draw,
    e.g. every epoch): the lifted q-density is ``prior(q) f(p(q)) / u``, so uniform events lift to
    exactly the prior. ``fixed`` uses ``b = 0`` and ``x = fixed_x`` (default
    :func:`fixed_embedding_x`), the reference code's embedding.
    Events must be massless and in their CM frame at ``sqrt_s``.
    """
    check_events(events, sqrt_s=sqrt_s)
    n, n_particles = events.shape[:2]
    if mode == "exact":
        gen = make_generator(seed, generator, events.device)
        b, x = sample_fibre(n, n_particles, sqrt_s, generator=gen, dtype=events.dtype,
                            device=events.device)
        return inverse_rambo_map(events, b, x)
    if mode == "fixed":
        scale = fixed_embedding_x(n_particles, sqrt_s=sqrt_s) if fixed_x is None else fixed_x
        check_positive(scale, "fixed_x")
        return events[..., 1:] / scale
    raise ValueError(f"mode must be 'exact' or 'fixed', got {mode!r}")


def to_cm_frame(events: Tensor, *, sqrt_s: float = 1.0, mass_rtol: float | None = None) -> Tensor:
    """Boost massless events (n, N, 4) to their CM frame and rescale the total energy to ``sqrt_s``.

    Energies are reset to ``|p|`` first (within ``mass_rtol`` they already are). No rotation is
    applied. Raises if a particle is not massless or an event's total momentum is lightlike.
    """
    check_events(events, mass_rtol=mass_rtol)
    check_positive(sqrt_s, "sqrt_s")
    return rambo_map(events[..., 1:].contiguous(), sqrt_s=sqrt_s).p

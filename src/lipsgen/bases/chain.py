"""The chain base: massless phase space as a chain of two-body decays, with QCD's poles built in.

Particles in chain order 0..N-1 (``order`` puts chain position k at particle ``order[k]``);
``Q_k = p_0 + ... + p_k``, ``s_k = Q_k^2``, ``s_{N-1} = s``, ``s_0 = 0``. The measure factorises
exactly (docs/design.md, "Bases"):

    dPhi_N = prod_{k=1}^{N-2} ds_k  prod_{k=1}^{N-1} (s_k - s_{k-1}) / (8 s_k) dOmega_k,

where ``dOmega_k`` is the direction of p_k in the rest frame of Q_k (decay Q_k -> Q_{k-1} + p_k).
The ratios ``rho_k = s_k / s_{k+1}`` and ``v_k = (1 - cos theta_k) / 2``, theta_k measured from the
direction of the next particle p_{k+1} in that frame (the top decay, k = N-1, has no such partner
and is isotropic), are drawn with two-sided power maps: ``rho -> 0`` is the first k+1 particles
collapsing together, ``rho -> 1`` the emitted particle going soft, ``v -> 0, 1`` the emitted
particle collinear with its chain neighbour or back to back with it. These are the soft and
collinear limits of a colour-ordered chain, so a fitted chain base already carries the 1/y poles
that uniform phase space spreads thinly.

Direction: with ``fit_direction`` the fit also chooses, by likelihood, between the chain order and
its reverse (for energy-ordered particles: the hardest or the softest emitted last); the chosen order
is then a fitted parameter. Channels of a mixture keep theirs.

Cuts: with ``ycut > 0`` the support is a region that contains every event with
``min_ij y_ij > ycut``, and for N = 3 is exactly that. Along the chain, every pair invariant above
the cut bounds the chain's invariants: ``s_k = sum_{i<j<=k} s_ij > C(k+1, 2) ycut s`` and the gap
``s_{k+1} - s_k = sum_{i<=k} s_{i,k+1} > (k+1) ycut s``, so each ratio rho_k ranges over
``(C(k+1, 2) ycut s / s_{k+1}, 1 - (k+1) ycut s / s_{k+1})`` given the s_{k+1} above it: ranges
that factorise along the chain, so the density stays normalised on them. For N = 3 the angle's
range is also closed-form and the support is the cut region itself; for N > 3 the pairs that the
chain's invariants do not bound may still fall below the cut (a target density is zero there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from ..coordinates.rambo import rambo_map
from ..kinematics import boost, pair_invariants
from .power import MAX_POWER, PowerEnds, power_forward, power_inverse

__all__ = ["ChainMap"]

_LOG_4PI = math.log(4 * math.pi)  # dOmega = dc dphi = (2 dv) (2 pi du_phi): 4 pi dv/du per unit u


@dataclass
class _Coordinates:
    """The parameter-free coordinates of events (n events): rho_k and 1 - rho_k (n, N-2) for
    k = N-2 .. 1 (column i is k = N-2-i), v_k and 1 - v_k (n, N-2) for k = N-2 .. 1, the top
    decay's (cos-variable, azimuth) and every azimuth as u in [0, 1) (n, N-1), and s_k (n, N)."""

    rho: Tensor
    rho_c: Tensor
    v: Tensor
    v_c: Tensor
    top: Tensor
    phi_u: Tensor
    s: Tensor


def _unit(x: Tensor) -> Tensor:
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)


def _frame(d: Tensor) -> tuple[Tensor, Tensor]:
    """Two unit vectors (n, 3) orthogonal to the unit vectors d (n, 3) and to each other."""
    helper = torch.zeros_like(d)
    use_x = d[:, 2].abs() > 0.9
    helper[:, 2] = (~use_x).to(d.dtype)
    helper[:, 0] = use_x.to(d.dtype)
    e1 = _unit(helper - (helper * d).sum(-1, keepdim=True) * d)
    return e1, torch.linalg.cross(d, e1)


class ChainMap:
    """A chain of two-body decays with power-law poles; see the module docstring.

    ``invariant_powers`` (a0, a1) are the exponents of the poles of every rho_k at 0 and 1,
    ``angle_power`` b that of every v_k at both ends (0 everywhere: no poles). ``fit`` sets them by
    maximum likelihood. The map is exact in float64: the chain's momenta are finished with the
    RAMBO projection to the CM frame at ``sqrt_s`` (a change of 1 + O(1e-15) in the density).
    """

    def __init__(self, n_particles: int, sqrt_s: float = 1.0, *, ycut: float = 0.0,
                 order: list[int] | None = None, invariant_powers: tuple[float, float] = (0.0, 0.0),
                 angle_power: float = 0.0, fit_direction: bool = False) -> None:
        if not isinstance(n_particles, int) or n_particles < 3:
            raise ValueError(f"the chain base needs at least 3 particles, got {n_particles!r}")
        if not sqrt_s > 0:
            raise ValueError(f"sqrt_s must be positive, got {sqrt_s!r}")
        largest = min(0.25, 1 / math.comb(n_particles, 2))  # every pair above it must fit in s
        if not 0 <= ycut < largest:
            raise ValueError(f"ycut must lie in [0, {largest:.4g}) for {n_particles} particles, got {ycut!r}")
        order = list(range(n_particles)) if order is None else [int(i) for i in order]
        if sorted(order) != list(range(n_particles)):
            raise ValueError(f"order must be a permutation of 0..{n_particles - 1}, got {order}")
        self.n_particles, self.sqrt_s, self.ycut = n_particles, float(sqrt_s), float(ycut)
        self.fit_direction = fit_direction
        self._set_order(order)
        self.load_parameters({"invariant_powers": list(invariant_powers), "angle_power": angle_power})

    def _set_order(self, order: list[int]) -> None:
        self.order = order
        self._placement = [order.index(i) for i in range(self.n_particles)]  # the chain position of particle i

    @property
    def dim(self) -> int:
        return 3 * self.n_particles - 4

    def parameters(self) -> dict[str, Any]:
        return {"invariant_powers": [self.invariants.a0, self.invariants.a1], "angle_power": self.angles.a0,
                "ycut": self.ycut, "order": self.order}

    def load_parameters(self, values: dict[str, Any]) -> None:
        fixed = (("ycut", self.ycut),) if self.fit_direction else (("ycut", self.ycut), ("order", self.order))
        for name, mine in fixed:
            if name in values and values[name] != mine:
                raise ValueError(f"recorded chain base has {name} {values[name]!r}, this one {mine!r}")
        if "order" in values and values["order"] != self.order:  # a fitted direction
            order = [int(i) for i in values["order"]]
            if order not in (self.order, self.order[::-1]):
                raise ValueError(f"recorded chain base has order {order}, neither {self.order} nor its reverse")
            self._set_order(order)
        a0, a1 = values["invariant_powers"]
        self.invariants = PowerEnds(a0, a1)
        self.angles = PowerEnds(values["angle_power"], values["angle_power"])

    # --- ranges: where the cut is folded in ---------------------------------------------------
    def _rho_range(self, k: int, s_next: Tensor) -> tuple[Tensor, Tensor]:
        """The range of rho_k = s_k / s_{k+1} given s_{k+1} (n,) with every pair above the cut."""
        unit = self.ycut * self.sqrt_s**2 / s_next
        return math.comb(k + 1, 2) * unit, 1 - (k + 1) * unit

    def _v_range(self, gap_over_s: Tensor) -> tuple[Tensor, Tensor]:
        """The range of v_1 given (s - s_1)/s (N = 3): y_02, y_12 = (1 - y_01)(1 - v), (1 - y_01) v > ycut."""
        lo = self.ycut / gap_over_s
        return lo, 1 - lo

    # --- forward ------------------------------------------------------------------------------
    def forward(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """u (n, 3N-4) in (0, 1) -> events (n, N, 4) float64 and their log-density ``-log w`` (n,)
        (``w = dPhi/du``); see :class:`PhaseSpaceMap`."""
        u = u.to(torch.float64)
        if u.ndim != 2 or u.shape[1] != self.dim:
            raise ValueError(f"u must have shape (n, {self.dim}), got {tuple(u.shape)}")
        n, big_n = u.shape[0], self.n_particles
        total = self.sqrt_s**2
        # lists, not in-place writes: the map stays differentiable (event features of the backbones)
        s: dict[int, Tensor] = {big_n - 1: u.new_full((n,), total)}
        gap: dict[int, Tensor] = {}  # gap[k] = s_{k+1} - s_k
        log_w = u.new_zeros(n)
        full = (u.new_zeros(n), u.new_ones(n))
        for i in range(big_n - 2):
            k = big_n - 2 - i
            lo, hi = self._rho_range(k, s[k + 1]) if self.ycut > 0 else full
            rho, rho_c, log_jac = power_forward(u[:, i], lo, hi, self.invariants)
            s[k], gap[k] = rho * s[k + 1], rho_c * s[k + 1]
            log_w = log_w + log_jac + torch.log(s[k + 1])
        gap[0] = s[1]
        angles = u[:, big_n - 2:].reshape(n, big_n - 1, 2)
        chain: dict[int, Tensor] = {}
        q = torch.cat([u.new_full((n, 1), self.sqrt_s), u.new_zeros((n, 3))], dim=1)
        z_axis = torch.cat([u.new_zeros((n, 2)), u.new_ones((n, 1))], dim=1)
        for k in range(big_n - 1, 0, -1):
            mass = torch.sqrt(s[k])
            velocity = q[:, 1:] / mass.unsqueeze(-1)
            energy = (gap[k - 1] / (2 * mass)).unsqueeze(-1)
            phi = 2 * math.pi * angles[:, k - 1, 1]
            log_w = log_w + torch.log(gap[k - 1] / (8 * s[k])) + _LOG_4PI
            if k == big_n - 1:
                v, v_c, d = angles[:, k - 1, 0], 1 - angles[:, k - 1, 0], z_axis
            else:
                lo, hi = self._v_range(gap[k] / total) if self.ycut > 0 and big_n == 3 else full
                v, v_c, log_jac = power_forward(angles[:, k - 1, 0], lo, hi, self.angles)
                log_w = log_w + log_jac
                d = _unit(boost(chain[k + 1].unsqueeze(1), -velocity)[:, 0, 1:])
            e1, e2 = _frame(d)
            sin_theta = (2 * torch.sqrt(v * v_c)).unsqueeze(-1)
            direction = ((v_c - v).unsqueeze(-1) * d
                         + sin_theta * (torch.cos(phi).unsqueeze(-1) * e1 + torch.sin(phi).unsqueeze(-1) * e2))
            rest = torch.cat([energy, energy * direction], dim=-1)
            remainder = torch.cat([mass.unsqueeze(-1) - energy, -energy * direction], dim=-1)
            pair = boost(torch.stack([rest, remainder], dim=1), velocity)
            chain[k], q = pair[:, 0], pair[:, 1]
        chain[0] = q
        momenta = torch.stack([chain[k][:, 1:] for k in range(big_n)], dim=1)
        events = rambo_map(momenta[:, self._placement], sqrt_s=self.sqrt_s).p  # the exact projection
        return events, -log_w

    # --- inverse ------------------------------------------------------------------------------
    def coordinates(self, events: Tensor) -> _Coordinates:
        """The parameter-free chain coordinates of events (n, N, 4)."""
        chain = events.to(torch.float64)[:, self.order]
        n, big_n = chain.shape[:2]
        pairs = pair_invariants(chain)  # (n, N, N), accurate for collinear pairs
        # gap_k = s_{k+1} - s_k = sum_{i <= k} s_{i, k+1}: a sum of positive terms, no cancellation
        gaps = torch.stack([pairs[:, : k + 1, k + 1].sum(-1) for k in range(big_n - 1)], dim=1)
        s = torch.cat([chain.new_zeros((n, 1)), gaps.cumsum(1)], dim=1)
        rho = torch.stack([s[:, k] / s[:, k + 1] for k in range(big_n - 2, 0, -1)], dim=1)
        rho_c = torch.stack([gaps[:, k] / s[:, k + 1] for k in range(big_n - 2, 0, -1)], dim=1)
        cumulative = chain.cumsum(1)
        v, v_c, phi_u = [], [], []
        top = _unit(chain[:, -1, 1:])
        z = torch.zeros_like(top)
        z[:, 2] = 1.0
        top_v = (top - z).square().sum(-1) / 4
        for k in range(big_n - 1, 0, -1):
            if k == big_n - 1:
                d, n_hat = z, top
            else:
                # the mass from the pair invariants: E^2 - |p|^2 cancels for nearly lightlike Q_k
                velocity = cumulative[:, k, 1:] / torch.sqrt(s[:, k]).unsqueeze(-1)
                rest = boost(chain[:, k : k + 2], -velocity)
                n_hat, d = _unit(rest[:, 0, 1:]), _unit(rest[:, 1, 1:])
                v.append((n_hat - d).square().sum(-1) / 4)
                v_c.append((n_hat + d).square().sum(-1) / 4)
            e1, e2 = _frame(d)
            phi = torch.atan2((n_hat * e2).sum(-1), (n_hat * e1).sum(-1))
            phi_u.append(torch.remainder(phi / (2 * math.pi), 1.0))
        return _Coordinates(rho, rho_c, torch.stack(v, 1), torch.stack(v_c, 1), top_v, torch.stack(phi_u, 1), s)

    def _inverse_from(self, c: _Coordinates, invariants: PowerEnds, angles: PowerEnds) -> tuple[Tensor, Tensor]:
        n, big_n = c.s.shape
        total = self.sqrt_s**2
        log_w = c.s.new_zeros(n)
        u_rho = []
        for i in range(big_n - 2):
            k = big_n - 2 - i
            lo, hi = self._rho_range(k, c.s[:, k + 1]) if self.ycut > 0 else (c.s.new_zeros(n), c.s.new_ones(n))
            u_i, log_jac = power_inverse(c.rho[:, i], c.rho_c[:, i], lo, hi, invariants)
            u_rho.append(u_i)
            log_w = log_w + log_jac + torch.log(c.s[:, k + 1])
        u_angles = []
        for j, k in enumerate(range(big_n - 1, 0, -1)):
            gap = c.s[:, k] - c.s[:, k - 1] if k > 1 else c.s[:, 1]
            log_w = log_w + torch.log(gap / (8 * c.s[:, k]))
            log_w = log_w + _LOG_4PI
            if k == big_n - 1:
                u_v = c.top
            else:
                upper_gap = (c.rho_c[:, big_n - 2 - k] * c.s[:, k + 1]) / total
                lo, hi = (self._v_range(upper_gap) if self.ycut > 0 and big_n == 3
                          else (c.s.new_zeros(n), c.s.new_ones(n)))
                u_v, log_jac = power_inverse(c.v[:, j - 1], c.v_c[:, j - 1], lo, hi, angles)
                log_w = log_w + log_jac
            u_angles.append((k, u_v, c.phi_u[:, j]))
        u = c.s.new_empty((n, self.dim))
        if u_rho:
            u[:, : big_n - 2] = torch.stack(u_rho, 1)
        for k, u_v, u_phi in u_angles:
            u[:, big_n - 2 + 2 * (k - 1)] = u_v
            u[:, big_n - 2 + 2 * (k - 1) + 1] = u_phi
        outside = ~torch.isfinite(u).all(1) | ~torch.isfinite(log_w)
        return u.masked_fill(outside.unsqueeze(1), math.nan), log_w.masked_fill(outside, -math.inf)

    def inverse(self, events: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """events (n, N, 4) -> u (n, 3N-4) and the log-density ``-log w`` (n,); a bijection, so
        ``generator`` is not used; see :class:`PhaseSpaceMap`."""
        u, log_w = self._inverse_from(self.coordinates(events), self.invariants, self.angles)
        return u, torch.where(torch.isfinite(log_w), -log_w, -math.inf)  # no density outside the support

    # --- fit ----------------------------------------------------------------------------------
    def fit(self, events: Tensor, weights: Tensor | None = None) -> None:
        """Maximum likelihood of the three exponents on events (n, N, 4) (weighted by ``weights``
        (n,) if given): the density of the base at p is 1 / w(u(p)), so this minimises the mean
        log w. Events outside the support (below a folded cut) are ignored. With ``fit_direction``
        the same for the reversed order, keeping the likelier."""
        w = torch.ones(len(events), dtype=torch.float64) if weights is None else weights.to(torch.float64)
        orders = [self.order, self.order[::-1]] if self.fit_direction else [self.order]
        best: tuple[float, list[int], np.ndarray] | None = None
        for order in orders:
            self._set_order(order)
            value, theta = self._fit_exponents(self.coordinates(events), w)
            if best is None or value < best[0]:
                best = (value, order, theta)
        assert best is not None
        self._set_order(best[1])
        a0, a1, b = (float(x) for x in best[2])
        self.load_parameters({"invariant_powers": [a0, a1], "angle_power": b})

    def _fit_exponents(self, c: _Coordinates, w: Tensor) -> tuple[float, np.ndarray]:
        """(the smallest mean log w, the exponents (a0, a1, b) there) on the coordinates ``c``."""

        def mean_log_w(theta: np.ndarray) -> float:
            ends = PowerEnds(*theta[:2]), PowerEnds(theta[2], theta[2])
            log_w = self._inverse_from(c, *ends)[1]
            inside = torch.isfinite(log_w)
            return float((w[inside] * log_w[inside]).sum() / w[inside].sum())

        start = np.array([self.invariants.a0, self.invariants.a1, self.angles.a0])
        bound = MAX_POWER - 1e-3
        result = minimize(mean_log_w, start, method="Nelder-Mead", bounds=[(-bound, bound)] * 3,
                          options={"xatol": 1e-3, "fatol": 1e-5, "maxiter": 400})
        return float(result.fun), result.x

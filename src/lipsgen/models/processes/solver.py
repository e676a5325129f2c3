"""The one reverse-time solver: walk a time grid, apply a process's step, record states.

Every process (flow matching, VP diffusion, q-space Langevin) supplies only its time grid and a
``Step``; the walking and the trajectory recording live here, once (compare the path / solver split
of facebookresearch/flow_matching). lipsgen's time runs from the noise end ``t = 1`` to the data
end ``t = 0``; flow_matching's convention is the opposite (its ``x_0`` is noise).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["Step", "DensityStep", "Trajectory", "record_indices", "solve", "jacobian_step", "solve_with_log_det",
           "invert_with_log_det"]

# Rows (events x state dimension) of one Jacobian pass: bounds the memory of the copies.
JACOBIAN_ROWS = 1 << 15


class Step(Protocol):
    """One step of a reverse run: state x (n, N, 3) at time ``t`` to the state at ``t_next < t``;
    ``last`` is True for the final step of the grid (Langevin adds no noise there)."""

    def __call__(self, x: Tensor, t: float, t_next: float, last: bool) -> Tensor: ...


class DensityStep(Protocol):
    """A deterministic step that also returns ``log|det d x_next / d x|`` per event, shape (n,) float64."""

    def __call__(self, x: Tensor, t: float, t_next: float, last: bool) -> tuple[Tensor, Tensor]: ...


@dataclass
class Trajectory:
    """States recorded along a reverse run: ``times`` (K,) in [0, 1] (1 = noise end) and ``states``
    (K tensors of shape (n, N, 3)), noise end first."""

    times: list[float] = field(default_factory=list)
    states: list[Tensor] = field(default_factory=list)

    def add(self, t: float, x: Tensor) -> None:
        self.times.append(float(t))
        self.states.append(x.detach().clone())


def record_indices(n_steps: int, n_record: int) -> set[int]:
    """``n_record`` evenly spaced positions among the ``n_steps + 1`` states of a run (0 = start)."""
    if n_record <= 0:
        return set()
    if n_record == 1:
        return {n_steps}
    return {round(i * n_steps / (n_record - 1)) for i in range(n_record)}


def solve(step: Step, x: Tensor, times: Sequence[float], trajectory: int = 0) -> tuple[Tensor, Trajectory]:
    """Apply ``step`` along ``times`` (decreasing, K + 1 entries: K steps) from the state ``x`` at
    ``times[0]``; returns the final state and ``trajectory`` evenly spaced recorded states (the
    first and the last included when ``trajectory >= 2``)."""
    n_steps = len(times) - 1
    keep = record_indices(n_steps, trajectory)
    recorded = Trajectory()
    if 0 in keep:
        recorded.add(times[0], x)
    for i in range(n_steps):
        x = step(x, times[i], times[i + 1], i + 1 == n_steps)
        if i + 1 in keep:
            recorded.add(times[i + 1], x)
    return x, recorded


def step_jacobians(step: Step, x: Tensor, t: float, t_next: float, last: bool,
                   max_rows: int = JACOBIAN_ROWS) -> tuple[Tensor, Tensor]:
    """A deterministic step's output (n, N, 3) and its full Jacobian (n, D, D) float64 per event,
    ``[k, i, j] = d out_i / d x_j`` with D = 3N (no trace estimator).

    Events do not interact inside a step, so the Jacobian of the batch-summed output (D, n, D)
    holds every event's block: ``torch.func.jacrev`` gets it from D vectorised reverse passes after
    one forward pass (bench/library_pieces.py: 0.66-0.88x the time of copying each event D times).
    Done in blocks of at most ``max_rows`` event rows times D."""
    dim = x[0].numel()
    block = max(1, max_rows // dim)
    states, jacobians = [], []
    for part in x.detach().split(block):
        def summed(y: Tensor) -> tuple[Tensor, Tensor]:
            out = step(y, t, t_next, last)
            return out.sum(0), out.detach()

        jacobian, out = torch.func.jacrev(summed, has_aux=True)(part)  # jacobian (N, 3, m, N, 3)
        jacobians.append(jacobian.detach().reshape(dim, len(part), dim).transpose(0, 1).to(torch.float64))
        states.append(out)
    return torch.cat(states), torch.cat(jacobians)


FOLD_WARNING = ("a sampler step's Jacobian determinant changes sign between events: the step folds phase space "
                "there (it is not one-to-one), so the densities and weights of events near the fold are not exact; "
                "more steps keep every step closer to the identity")


def _log_abs_det(jacobian: Tensor, t: float) -> Tensor:
    sign, log_abs = torch.linalg.slogdet(jacobian)
    if bool((sign == 0).any()):
        raise FloatingPointError(f"a sampler step at t = {t:.4g} is singular (zero Jacobian "
                                 f"determinant): the model's density is not defined there")
    if bool((sign < 0).any()) and bool((sign > 0).any()):
        # one orientation everywhere is a bijection (a reflection); both orientations mean a fold
        warnings.warn(FOLD_WARNING, stacklevel=2)
    return log_abs


def jacobian_step(step: Step, max_rows: int = JACOBIAN_ROWS) -> DensityStep:
    """Wrap a deterministic ``step`` so that it also returns the exact log-determinant of its
    Jacobian per event (:func:`step_jacobians`)."""

    def step_with_log_det(x: Tensor, t: float, t_next: float, last: bool) -> tuple[Tensor, Tensor]:
        out, jacobian = step_jacobians(step, x, t, t_next, last, max_rows)
        return out, _log_abs_det(jacobian, t)

    return step_with_log_det


def solve_with_log_det(step: DensityStep, x: Tensor, times: Sequence[float]) -> tuple[Tensor, Tensor]:
    """Apply a density step along ``times`` like :func:`solve`; returns the final state and
    ``sum_k log|det d x_{k+1} / d x_k|`` (n,) float64, so that
    ``log g(x_final) = log g_start(x) - sum``."""
    total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    n_steps = len(times) - 1
    for i in range(n_steps):
        x, log_det = step(x, times[i], times[i + 1], i + 1 == n_steps)
        total = total + log_det
    return x, total


# Inverting a step: fixed-point sweeps x <- x - (step(x) - y), which converge as fast as |dt| times
# the velocity's Lipschitz constant, keeping each event's best point; then damped Newton with the
# exact Jacobian (which the density needs at the solution anyway) to the states' rounding.
FIXED_POINT_SWEEPS = 30
NEWTON_ITERATIONS = 8
NEWTON_HALVINGS = 6


def _residual(step: Step, x: Tensor, y: Tensor, t: float, t_next: float, last: bool) -> tuple[Tensor, Tensor]:
    residual = step(x, t, t_next, last) - y
    return residual, residual.flatten(1).abs().amax(dim=1)


def _invert_step(step: Step, y: Tensor, t: float, t_next: float, last: bool) -> tuple[Tensor, Tensor]:
    """The state x with ``step(x, t, t_next, last) = y`` (n, N, 3), and ``log|det d y / d x|`` (n,)."""
    # the networks compute in float32 whatever the states: a few of its roundings
    tolerance = 64 * torch.finfo(torch.float32).eps * (1.0 + y.flatten(1).abs().amax(dim=1))  # (n,)
    x, best = y.clone(), y.clone()
    best_error = torch.full_like(tolerance, torch.inf)
    for _ in range(FIXED_POINT_SWEEPS):
        residual, error = _residual(step, x, y, t, t_next, last)
        improved = error < best_error
        best[improved], best_error[improved] = x[improved], error[improved]
        if bool((best_error <= tolerance).all()):
            break
        x = x - residual
    x = best
    for _ in range(NEWTON_ITERATIONS + 1):
        out, jacobian = step_jacobians(step, x, t, t_next, last)
        error = (out - y).flatten(1).abs().amax(dim=1)
        if bool((error <= tolerance).all()):
            return x, _log_abs_det(jacobian, t)
        delta = torch.linalg.solve(jacobian, (out - y).flatten(1).to(torch.float64)).to(x.dtype).view_as(x)
        scale = torch.ones_like(error)
        for _ in range(NEWTON_HALVINGS):  # halve the step of events it would take further away
            trial = x - scale.view(-1, 1, 1) * delta
            worse = (_residual(step, trial, y, t, t_next, last)[1] > error) & (error > tolerance)
            if not bool(worse.any()):
                break
            scale[worse] /= 2
        x = trial
    worst = int(error.argmax())
    raise FloatingPointError(f"the sampler's step from t = {t:.4g} to {t_next:.4g} could not be inverted for "
                             f"{int((error > tolerance).sum())} of {len(y)} events (residual {float(error[worst]):.2g}"
                             f" at event {worst}): the step is not invertible there at this step size; use more steps")


def invert_with_log_det(step: Step, y: Tensor, times: Sequence[float]) -> tuple[Tensor, Tensor]:
    """Walk a deterministic ``step`` backwards: the states x at ``times[0]`` (n, N, 3) from which
    :func:`solve` along ``times`` ends at ``y``, and the same ``sum_k log|det d x_{k+1} / d x_k|``
    (n,) float64 as :func:`solve_with_log_det`, so that ``log g(y) = log g_start(x) - sum``.
    Each step is solved to the states' rounding (:func:`_invert_step`); an event whose step
    cannot be inverted raises ``FloatingPointError``."""
    total = torch.zeros(y.shape[0], dtype=torch.float64, device=y.device)
    n_steps = len(times) - 1
    for i in reversed(range(n_steps)):
        y, log_det = _invert_step(step, y, times[i], times[i + 1], i + 1 == n_steps)
        total = total + log_det
    return y, total

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lipsgen
from lipsgen.coordinates import inverse_rambo_map, rambo_map, sample_prior, to_cm_frame

P_TOL = 1e-12


def conservation_error(p: torch.Tensor, sqrt_s: float = 1.0) -> float:
    total = p.sum(dim=1)
    return max(float((total[:, 0] - sqrt_s).abs().max()), float(total[:, 1:].abs().max())) / sqrt_s


def mass_error(p: torch.Tensor) -> float:
    return float(((p[..., 0] - p[..., 1:].norm(dim=-1)).abs() / p[..., 0].clamp(min=1e-300)).max())


@pytest.mark.parametrize("n_particles", list(range(2, 31)))
def test_conservation_on_prior_samples(n_particles, generator):
    q = sample_prior(2000, n_particles, generator=generator)
    p, b, x = rambo_map(q, sqrt_s=3.0)
    assert conservation_error(p, 3.0) <= P_TOL
    assert mass_error(p) <= 1e-12
    assert (p[..., 0] >= 0).all()


def extreme_q(generator: torch.Generator, n_events: int, n_particles: int, spread: float) -> torch.Tensor:
    """Magnitudes log-uniform in [1e-9, 1e3]; directions bunched within ``spread`` radians."""
    log_r = torch.empty(n_events, n_particles, dtype=torch.float64).uniform_(
        math.log(1e-9), math.log(1e3), generator=generator)
    axis = torch.randn(n_events, 1, 3, generator=generator, dtype=torch.float64)
    jitter = torch.randn(n_events, n_particles, 3, generator=generator, dtype=torch.float64) * spread
    direction = axis / axis.norm(dim=-1, keepdim=True) + jitter
    direction = direction / direction.norm(dim=-1, keepdim=True)
    return direction * log_r.exp().unsqueeze(-1)


@pytest.mark.parametrize("spread", [1.0, 1e-2, 1e-4, 1e-6, 1e-8])
@pytest.mark.parametrize("n_particles", [2, 3, 10, 30])
def test_conservation_on_extreme_inputs(n_particles, spread, generator):
    q = extreme_q(generator, 500, n_particles, spread)
    p = rambo_map(q).p
    assert conservation_error(p) <= P_TOL
    assert mass_error(p) <= 1e-12


vectors = st.lists(
    st.tuples(
        st.floats(-9, 3),  # log10 |q|
        st.floats(-1, 1),  # cos theta
        st.floats(0, 2 * math.pi),  # phi
    ),
    min_size=2, max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(vectors)
def test_conservation_property(components):
    r = torch.tensor([10.0**c[0] for c in components], dtype=torch.float64)
    cos = torch.tensor([c[1] for c in components], dtype=torch.float64)
    phi = torch.tensor([c[2] for c in components], dtype=torch.float64)
    sin = torch.sqrt(1 - cos * cos)
    q = (r.unsqueeze(-1) * torch.stack([sin * phi.cos(), sin * phi.sin(), cos], -1)).unsqueeze(0)
    try:
        p = rambo_map(q).p
    except ValueError as err:  # only exactly collinear sets may be refused
        assert "collinear" in str(err)
        unit = q[0] / q[0].norm(dim=-1, keepdim=True)
        assert float((unit - unit[0]).norm(dim=-1).max()) < 1e-6
        return
    assert conservation_error(p) <= P_TOL


def test_round_trip_q_to_p_to_q(generator):
    for n_particles in (2, 3, 10, 30):
        q = sample_prior(5000, n_particles, generator=generator)
        p, b, x = rambo_map(q)
        back = inverse_rambo_map(p, b, x)
        rel = (back - q).norm(dim=-1) / q.norm(dim=-1)
        assert float(rel.max()) <= 1e-10


def test_round_trip_p_b_x_to_q_to_p(generator):
    p = lipsgen.uniform_phase_space(3000, 6, generator=generator)
    b, x = lipsgen.sample_fibre(3000, 6, generator=generator)
    q = inverse_rambo_map(p, b, x)
    p2, b2, x2 = rambo_map(q)
    torch.testing.assert_close(p2, p, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(b2, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x2, x, rtol=1e-10, atol=0)


def test_fibre_matches_definition(generator):
    q = sample_prior(100, 4, generator=generator)
    p, b, x = rambo_map(q, sqrt_s=2.0)
    r = q.norm(dim=-1)
    total = torch.cat([r.sum(1, keepdim=True), q.sum(1)], dim=-1)
    mass = torch.sqrt(total[:, 0] ** 2 - total[:, 1:].pow(2).sum(-1))
    torch.testing.assert_close(b, -total[:, 1:] / mass.unsqueeze(-1))
    torch.testing.assert_close(x, 2.0 / mass)


def test_map_is_differentiable(generator):
    q = sample_prior(20, 5, generator=generator).requires_grad_(True)
    p = rambo_map(q).p
    (p[..., 0] ** 2).sum().backward()
    assert torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0


def test_float32_is_supported(generator):
    q = sample_prior(1000, 5, generator=generator).float()
    p = rambo_map(q).p
    assert p.dtype == torch.float32
    assert conservation_error(p) <= 1e-5


def test_collinear_and_zero_inputs_are_refused():
    q = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 2.0], [0.0, 0.0, 0.5]]], dtype=torch.float64)
    q = torch.cat([sample_prior(3, 3, seed=1), q])
    with pytest.raises(ValueError, match="event 3 are collinear"):
        rambo_map(q)
    with pytest.raises(ValueError, match="event 0 are collinear"):
        rambo_map(torch.zeros(1, 3, 3, dtype=torch.float64))


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.ones(3, 4), r"shape \(n_events, n_particles, 3\)"),
        (torch.ones(3, 4, 4), r"shape \(n_events, n_particles, 3\)"),
        (torch.ones(3, 1, 3), "at least 2 particles"),
        (torch.ones(3, 4, 3, dtype=torch.int64), "floating-point"),
    ],
)
def test_bad_shapes_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        rambo_map(bad)


def test_nan_is_refused_naming_the_event():
    q = sample_prior(5, 3, seed=0)
    q[2, 1, 0] = float("nan")
    with pytest.raises(ValueError, match="event 2, particle 1 has a NaN"):
        rambo_map(q)
    q[2, 1, 0] = float("inf")
    with pytest.raises(ValueError, match="event 2, particle 1 has a NaN or infinite"):
        rambo_map(q)


def test_bad_sqrt_s_is_refused():
    q = sample_prior(5, 3, seed=0)
    for value in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sqrt_s"):
            rambo_map(q, sqrt_s=value)


def test_inverse_checks_its_inputs():
    p = lipsgen.uniform_phase_space(4, 3, seed=0)
    b, x = lipsgen.sample_fibre(4, 3, seed=0)
    with pytest.raises(ValueError, match="x must be finite and > 0 at event 1"):
        inverse_rambo_map(p, b, torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"b: expected shape \(4, 3\)"):
        inverse_rambo_map(p, b[:2], x)
    massive = p.clone()
    massive[3, 2, 0] *= 1.01
    with pytest.raises(ValueError, match="event 3, particle 2 is not massless"):
        inverse_rambo_map(massive, b, x)
    negative = p.clone()
    negative[1, 0] *= -1
    with pytest.raises(ValueError, match="event 1, particle 0 has negative energy"):
        inverse_rambo_map(negative, b, x)


def test_to_cm_frame_boosts_and_rescales(generator):
    p = lipsgen.uniform_phase_space(500, 5, sqrt_s=1.0, generator=generator)
    b = torch.randn(500, 3, generator=generator, dtype=torch.float64) * 2
    moving = lipsgen.kinematics.boost(p, b) * 91.2
    back = to_cm_frame(moving, sqrt_s=1.0)
    torch.testing.assert_close(back, p, rtol=1e-9, atol=1e-12)
    assert conservation_error(to_cm_frame(moving, sqrt_s=13.0), 13.0) <= P_TOL


def test_to_cm_frame_refuses_massive_particles():
    p = lipsgen.uniform_phase_space(3, 4, seed=0)
    p[1, 3, 0] += 0.1
    with pytest.raises(ValueError, match="event 1, particle 3 is not massless"):
        to_cm_frame(p)


def test_events_in_cm_check_names_event():
    from lipsgen.validation import check_events

    p = lipsgen.uniform_phase_space(6, 4, seed=0)
    check_events(p, sqrt_s=1.0)
    with pytest.raises(ValueError, match="event 0 is not in its centre-of-momentum frame at sqrt_s = 2"):
        check_events(p, sqrt_s=2.0)
    shifted = lipsgen.kinematics.boost(p, torch.tensor([[0.0, 0.0, 0.1]] * 6, dtype=torch.float64))
    shifted = torch.cat([p[:4], shifted[4:]])
    with pytest.raises(ValueError, match="event 4 is not in its centre-of-momentum frame"):
        check_events(shifted, sqrt_s=1.0)

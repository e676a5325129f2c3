import math

import pytest
import torch

import lipsgen
from lipsgen.kinematics import boost, mass_squared, minkowski_dot, pair_invariants


def test_volume_two_body_by_direct_integration():
    # dPhi_2 = d^3p/(4E^2) delta(sqrt_s - 2E) = 4 pi E^2 dE / (4 E^2) delta(...) = pi/2.
    assert lipsgen.phase_space_volume(2) == pytest.approx(math.pi / 2, rel=1e-15)
    assert lipsgen.phase_space_volume(2, sqrt_s=7.0) == pytest.approx(math.pi / 2, rel=1e-15)


def test_volume_three_body_literature_value():
    # Massless 3-body phase space is s / (256 pi^3) with (2 pi)^(4 - 3N) factors, i.e.
    # V_3 = (2 pi)^5 s / (256 pi^3) = pi^2 s / 8 without them.
    assert lipsgen.phase_space_volume(3, sqrt_s=2.0) == pytest.approx(math.pi**2 * 4 / 8, rel=1e-14)


def test_volume_recursion_from_energy_integral():
    # V_{N+1}(s) = int d^3k/(2|k|) V_N((P - k)^2); in the CM frame (P-k)^2 = s - 2 sqrt_s |k|,
    # V_N(s') ∝ s'^(N-2):  V_{N+1}/V_N = 2 pi int_0^{sqrt_s/2} k (1 - 2k/sqrt_s)^(N-2) dk
    #                                  = 2 pi s / (4 N (N-1)) at sqrt_s = 1 scaled by s.
    for n in range(2, 12):
        ratio = lipsgen.phase_space_volume(n + 1) / lipsgen.phase_space_volume(n)
        assert ratio == pytest.approx(2 * math.pi / (4 * n * (n - 1)), rel=1e-13)


def test_volume_rejects_bad_n():
    with pytest.raises(ValueError, match="n_particles"):
        lipsgen.phase_space_volume(1)


def test_pair_invariants_match_minkowski_products(generator):
    events = lipsgen.uniform_phase_space(100, 5, generator=generator)
    s = pair_invariants(events)
    direct = 2 * minkowski_dot(events.unsqueeze(2), events.unsqueeze(1))
    off_diagonal = ~torch.eye(5, dtype=torch.bool)
    torch.testing.assert_close(s[:, off_diagonal], direct[:, off_diagonal], rtol=1e-10, atol=1e-14)
    assert (s.diagonal(dim1=1, dim2=2) == 0).all()
    # sum_{i<j} s_ij = s for massless particles at sqrt_s = 1.
    torch.testing.assert_close(s.sum(dim=(1, 2)) / 2, torch.ones(100, dtype=torch.float64))


def test_three_body_y_equals_one_minus_x(generator):
    events = lipsgen.uniform_phase_space(1000, 3, generator=generator)
    y = lipsgen.scaled_pair_invariants(events)
    x = 2 * events[..., 0]
    torch.testing.assert_close(y[:, 0, 1], 1 - x[:, 2], rtol=0, atol=1e-13)
    torch.testing.assert_close(y[:, 1, 2], 1 - x[:, 0], rtol=0, atol=1e-13)


def test_collinear_invariant_keeps_relative_precision():
    theta = 1e-9
    p1 = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    p2 = torch.tensor([1.0, math.sin(theta), 0.0, math.cos(theta)], dtype=torch.float64)
    s = pair_invariants(torch.stack([p1, p2]).unsqueeze(0))[0, 0, 1]
    assert float(s) == pytest.approx(theta**2, rel=1e-6)  # naive 2 p1.p2 gives 0 here


def test_boost_inverts_and_preserves_mass(generator):
    p = torch.randn(50, 4, 4, generator=generator, dtype=torch.float64)
    b = torch.randn(50, 3, generator=generator, dtype=torch.float64) * 3
    boosted = boost(p, b)
    torch.testing.assert_close(boost(boosted, -b), p, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(mass_squared(boosted), mass_squared(p), rtol=1e-9, atol=1e-9)


def test_three_four_vector_conversion(generator):
    vec = torch.randn(10, 3, 3, generator=generator, dtype=torch.float64)
    four = lipsgen.three_to_four(vec)
    torch.testing.assert_close(lipsgen.four_to_three(four), vec)
    torch.testing.assert_close(mass_squared(four), torch.zeros(10, 3, dtype=torch.float64), atol=1e-14, rtol=0)
    assert torch.equal(lipsgen.energies(four), four[..., 0])


@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
def test_min_pair_invariant_is_the_smallest_of_every_pair(sqrt_s):
    import itertools

    from lipsgen.kinematics import min_pair_invariant, minkowski_dot

    events = lipsgen.uniform_phase_space(500, 5, seed=3, sqrt_s=sqrt_s)
    expected = torch.stack([2 * minkowski_dot(events[:, i], events[:, j]) / sqrt_s**2
                            for i, j in itertools.combinations(range(5), 2)], dim=1).min(dim=1).values
    got = min_pair_invariant(events, sqrt_s)
    assert torch.allclose(got, expected, rtol=1e-10, atol=0)
    # every pair is the smallest somewhere: no pair may be skipped
    y = torch.stack([2 * minkowski_dot(events[:, i], events[:, j]) for i, j in itertools.combinations(range(5), 2)], 1)
    assert set(y.argmin(dim=1).tolist()) == set(range(10))

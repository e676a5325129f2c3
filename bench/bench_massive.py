"""Massive phase space: lipsgen's massive RAMBO (map, and uniform events by rejection) against a plain
numpy massive RAMBO written here as the reference (massless RAMBO, then Newton for the scale xi,
the Kleiss-Stirling-Ellis weight, the same rejection), in one process on the same machine.

With madspace installed (``pip install madspace==0.2.1``; not a lipsgen dependency) it also checks
lipsgen's massive volumes against madspace's massive RAMBO mapping: the mean of its weight dPhi/du over
uniform u, times (2 pi)^(3N-4) (madspace's convention), estimates V_m.

Usage: python bench/bench_massive.py [--events N] [--repeats R]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402

import lipsgen  # noqa: E402
from common import interleaved_medians, machine  # noqa: E402
from lipsgen.coordinates.massive import massive_from_massless  # noqa: E402


def numpy_massless_rambo(n: int, n_particles: int, sqrt_s: float, rng: np.random.Generator) -> np.ndarray:
    """Massless RAMBO in numpy: isotropic q with |q| ~ Gamma(2), boosted and scaled to the CM frame."""
    cos_theta = 2 * rng.random((n, n_particles)) - 1
    phi = 2 * np.pi * rng.random((n, n_particles))
    energy = -np.log(rng.random((n, n_particles)) * rng.random((n, n_particles)))
    sin_theta = np.sqrt(1 - cos_theta**2)
    q = np.stack([energy, energy * sin_theta * np.cos(phi), energy * sin_theta * np.sin(phi), energy * cos_theta], -1)
    total = q.sum(axis=1)
    mass = np.sqrt(total[:, 0] ** 2 - (total[:, 1:] ** 2).sum(-1))
    b = -total[:, 1:] / mass[:, None]
    gamma = total[:, 0] / mass
    a = 1 / (1 + gamma)
    x = sqrt_s / mass
    bq = (b[:, None, :] * q[..., 1:]).sum(-1)
    p0 = x[:, None] * (gamma[:, None] * q[..., 0] + bq)
    p_vec = x[:, None, None] * (q[..., 1:] + b[:, None, :] * q[..., :1] + (a[:, None] * bq)[..., None] * b[:, None, :])
    return np.concatenate([p0[..., None], p_vec], axis=-1)


def numpy_massive(k: np.ndarray, masses: np.ndarray, sqrt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Massive events and their weight W from massless ones (Newton for xi, fixed 12 steps)."""
    k_abs = np.linalg.norm(k[..., 1:], axis=-1)
    xi = np.full(len(k), np.sqrt(1 - (masses.sum() / sqrt_s) ** 2))
    for _ in range(12):
        energy = np.sqrt(masses**2 + (xi[:, None] * k_abs) ** 2)
        xi = xi - (energy.sum(1) - sqrt_s) / (xi * (k_abs**2 / energy).sum(1))
    p_vec = xi[:, None, None] * k[..., 1:]
    p_abs = xi[:, None] * k_abs
    energy = np.sqrt(masses**2 + p_abs**2)
    n_particles = k.shape[1]
    weight = xi ** (2 * n_particles - 3) * np.prod(p_abs / energy, axis=1) * sqrt_s / (p_abs**2 / energy).sum(1)
    return np.concatenate([energy[..., None], p_vec], axis=-1), weight


def numpy_uniform_massive(n: int, masses: np.ndarray, sqrt_s: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kept: list[np.ndarray] = []
    have = 0
    while have < n:
        events, weight = numpy_massive(numpy_massless_rambo(int(1.2 * (n - have)) + 16, len(masses), sqrt_s, rng),
                                       masses, sqrt_s)
        kept.append(events[rng.random(len(weight)) < weight][: n - have])
        have += len(kept[-1])
    return np.concatenate(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"events per call: {args.events}, median of {args.repeats} interleaved runs, float64, sqrt_s = 91.19\n")
    print("| N | masses | what | lipsgen (events/s) | numpy (events/s) | lipsgen / numpy |")
    print("|---:|---|---|---:|---:|---:|")
    cases = {3: [4.8, 0.0, 0.0], 4: [4.8, 4.8, 0.0, 0.0], 10: [4.8] * 4 + [0.0] * 6}
    for n_particles, masses in cases.items():
        run_case(args.events, n_particles, masses, args.repeats)
    check_volumes_against_madspace()


def check_volumes_against_madspace(n: int = 400_000) -> None:
    try:
        import madspace
    except ImportError:
        print("\n(madspace not installed: volume cross-check skipped)")
        return
    print("\n| masses | sqrt_s | madspace V_m / lipsgen V_m | MC error |")
    print("|---|---:|---:|---:|")
    for masses, sqrt_s in (([4.8, 0.0, 0.0], 172.5), ([20.0, 10.0, 5.0], 91.19), ([0.2, 0.1, 0.05, 0.0, 0.15], 1.0)):
        mapping = madspace.PhaseSpaceMapping([0.0, 0.0, *masses], sqrt_s, leptonic=True)  # beams first
        u = np.random.default_rng(0).random((n, mapping.random_dim()))
        weight = np.asarray(mapping.map_forward([u])[3]) * (2 * np.pi) ** (3 * len(masses) - 4)
        ratio = weight.mean() / lipsgen.phase_space_volume(len(masses), sqrt_s, masses)
        error = weight.std() / np.sqrt(n) / lipsgen.phase_space_volume(len(masses), sqrt_s, masses)
        print(f"| {','.join(f'{m:g}' for m in masses)} | {sqrt_s:g} | {ratio:.5f} | {error:.5f} |")


def run_case(n: int, n_particles: int, masses: list[float], repeats: int, sqrt_s: float = 91.19) -> None:
    mass_array = np.array(masses)
    massless = lipsgen.uniform_phase_space(n, n_particles, sqrt_s=sqrt_s, seed=1)
    massless_np = massless.numpy()
    medians = interleaved_medians({
        "map": lambda: massive_from_massless(massless, masses, sqrt_s),
        "map_np": lambda: numpy_massive(massless_np, mass_array, sqrt_s),
        "uniform": lambda: lipsgen.uniform_phase_space(n, n_particles, sqrt_s=sqrt_s, masses=masses, seed=2),
        "uniform_np": lambda: numpy_uniform_massive(n, mass_array, sqrt_s, seed=2),
    }, repeats)
    label = ",".join(f"{m:g}" for m in masses)
    for what, ours, theirs in (("map only", "map", "map_np"), ("uniform events", "uniform", "uniform_np")):
        a, b = n / medians[ours], n / medians[theirs]
        print(f"| {n_particles} | {label} | {what} | {a:,.0f} | {b:,.0f} | {a / b:.2f} |")
    # the numpy reference agrees with lipsgen on the map (same massless input)
    reference, _ = numpy_massive(massless_np, mass_array, sqrt_s)
    assert np.abs(reference - massive_from_massless(massless, masses, sqrt_s).events.numpy()).max() < 1e-10 * sqrt_s

if __name__ == "__main__":
    main()

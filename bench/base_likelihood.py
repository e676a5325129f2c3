"""How well one chain base describes SARGE events in a given particle order: its fitted mean log-density.

Fits the chain base's exponents (maximum likelihood, ``ChainMap.fit``) on 10k SARGE events (N = 10)
in each ordering and prints the mean log g on 10k further events: higher is a better description.
Orderings: as generated (random), decreasing energy, increasing energy, and a greedy nearest-
neighbour path (from the hardest particle, each next one the smallest y_ij away: a colour-like chain).

Usage: python bench/base_likelihood.py [--events 20000] [--seed 1]
"""

from __future__ import annotations

import argparse

import torch

from lipsgen.bases import ChainMap
from lipsgen.kinematics import scaled_pair_invariants, sorted_by_energy
from lipsgen.targets.sarge import Sarge


def greedy_path(events: torch.Tensor) -> torch.Tensor:
    """Events (n, N, 4) reordered along a nearest-neighbour path in y_ij from the hardest particle."""
    y = scaled_pair_invariants(events)
    n, n_particles = events.shape[:2]
    rows = torch.arange(n)
    current = events[..., 0].argmax(1)
    visited = torch.zeros(n, n_particles, dtype=torch.bool)
    visited[rows, current] = True
    order = [current]
    for _ in range(n_particles - 1):
        current = y[rows, current].masked_fill(visited, float("inf")).argmin(1)
        visited[rows, current] = True
        order.append(current)
    return torch.take_along_dim(events, torch.stack(order, 1).unsqueeze(-1), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(args.seed)
    events = Sarge(10).sample_chunk(args.events, generator, torch.float64, torch.device("cpu"))
    half = args.events // 2
    ordered = sorted_by_energy(events)
    print("| ordering | fitted order | mean log g |\n|---|---|---:|")
    for name, data, choose in (("random", events, False), ("decreasing energy", ordered, False),
                               ("increasing energy", ordered.flip(1), False),
                               ("decreasing energy, direction fitted", ordered, True),
                               ("greedy nearest-neighbour path, direction fitted", greedy_path(events), True)):
        base = ChainMap(10, 1.0, fit_direction=choose)
        base.fit(data[:half])
        log_g = base.inverse(data[half:], generator)[1]
        print(f"| {name} | {base.order} | {float(log_g.mean()):.1f} |", flush=True)


if __name__ == "__main__":
    main()

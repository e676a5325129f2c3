"""Cost of the Langevin model's forward-chain cache: simulation against training, per state kept.

Each epoch simulates every training event's chain once (K steps) and keeps ``states_per_chain``
states per chain; the epoch then takes ``states_per_chain * n / batch`` optimiser steps. Reports
the simulation time, the training time of one such epoch and the share of the simulation, at the
cpu preset (muon decay, MLP 3 x 128, batch 256, smooth schedule of 500 steps).

Usage: python bench/bench_langevin_cache.py [--events N] [--steps S] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

from common import machine  # noqa: E402
from lipsgen.models import GenerativeModel, ModelConfig  # noqa: E402
from lipsgen.targets import MuonDecay  # noqa: E402
from lipsgen.training import derived_generator, resolve_preset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=20, help="optimiser steps timed per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    events = MuonDecay().sample(args.events, seed=1)
    config, train_config = resolve_preset("cpu", ModelConfig("langevin", 3, target="muon"))
    batch = train_config.batch_size
    print(f"machine: {machine()}")
    print(f"muon, {args.events} events, MLP {config.width} x {config.depth}, batch {batch}, "
          f"{GenerativeModel(config).process.n_steps} chain steps; medians of {args.repeats}\n")
    print("| states per chain | simulation (s) | optimiser steps per epoch | training per epoch (s) | "
          "simulation share |")
    print("|---:|---:|---:|---:|---:|")
    # the optimiser step costs the same whatever the cache: measure it once, interleaved with the
    # simulations, and take medians of both
    simulate: dict[int, list[float]] = {1: [], 4: [], 8: []}
    per_step: list[float] = []
    torch.manual_seed(0)
    model = GenerativeModel(config)
    optimizer = torch.optim.AdamW(model.net.parameters(), lr=1e-4)
    gen = derived_generator(0, "epoch")
    encoded = model.space.encode(events, gen)
    for _ in range(args.repeats):
        for states in simulate:
            model.process.items_per_event = states
            start = time.perf_counter()
            data = model.process.prepare_epoch(encoded, gen)
            simulate[states].append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(args.steps):
            index = torch.randint(0, len(data["k"]), (batch,), generator=gen)
            loss = model.process.loss(model.net, {k: v[index] for k, v in data.items()}, gen)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        per_step.append((time.perf_counter() - start) / args.steps)
    step = statistics.median(per_step)
    for states, times in simulate.items():
        steps = states * args.events // batch
        sim, train = statistics.median(times), step * steps
        print(f"| {states} | {sim:.1f} | {steps} | {train:.1f} | {sim / (sim + train):.0%} |")


if __name__ == "__main__":
    main()

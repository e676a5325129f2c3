"""Training and sampling throughput of every model on 2 CPU cores.

Training: events/s over timed optimiser steps (after warm-up) at the cpu preset's batch size and
network; sampling: events/s at the model's default step count. Also the ratio of per-step cost of
Langevin implicit score matching to z-space denoising score matching at the same network.

Usage: python bench/bench_models.py [--target muon|sarge] [--steps S] [--repeats R] [--models M ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

from common import machine  # noqa: E402
from lipsgen.models import MODEL_KINDS, GenerativeModel, ModelConfig  # noqa: E402
from lipsgen.targets import MuonDecay, Sarge  # noqa: E402
from lipsgen.training import derived_generator, resolve_preset  # noqa: E402


def time_training(model: GenerativeModel, events: torch.Tensor, batch_size: int, steps: int, repeats: int) -> float:
    """Median seconds per optimiser step (epoch preparation included, amortised)."""
    optimizer = torch.optim.AdamW(model.net.parameters(), lr=1e-4)
    model.fit_data(events, derived_generator(0, "fit"))
    gen = derived_generator(0, "epoch")
    start = time.perf_counter()
    data = model.process.prepare_epoch(model.space.encode(events, gen), gen)
    prepare = time.perf_counter() - start
    per_step = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            index = torch.randint(0, len(data["k" if "k" in data else "x0"]), (batch_size,), generator=gen)
            loss = model.process.loss(model.net, {k: v[index] for k, v in data.items()}, gen)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        per_step.append((time.perf_counter() - start) / steps)
    # one epoch preparation is shared by items_per_event * len(events) / batch_size steps
    return statistics.median(per_step) + prepare * batch_size / (len(events) * model.process.items_per_event)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=["muon", "sarge"], default="muon")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample-events", type=int, default=2000)
    parser.add_argument("--models", nargs="+", default=list(MODEL_KINDS), choices=list(MODEL_KINDS))
    args = parser.parse_args()
    target = MuonDecay() if args.target == "muon" else Sarge(10, 30.0)
    events = target.sample(20_000, seed=1)
    backbone = "mlp" if args.target == "muon" else "transformer"
    print(f"machine: {machine()}")
    print(f"target {args.target} ({target.n_particles} particles), backbone {backbone}, cpu preset; "
          f"median of {args.repeats} x {args.steps} steps\n")
    print("| model | batch | training (events/s) | s/step | cpu preset (min) | sampling steps | sampling (events/s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    per_step: dict[str, float] = {}
    for name in args.models:
        base = ModelConfig(model=name, n_particles=target.n_particles, target=args.target, backbone=backbone)
        config, train_config = resolve_preset("cpu", base)
        torch.manual_seed(0)
        model = GenerativeModel(config)
        seconds = time_training(model, events, train_config.batch_size, args.steps, args.repeats)
        per_step[name] = seconds
        steps = model.process.default_steps
        start = time.perf_counter()
        model.sample(args.sample_events, generator=derived_generator(0, "sample"))
        rate = args.sample_events / (time.perf_counter() - start)
        print(f"| {name} | {train_config.batch_size} | {train_config.batch_size / seconds:,.0f} | "
              f"{seconds:.4f} | {train_config.steps * seconds / 60:.1f} | {steps} | {rate:,.0f} |")
    if not {"langevin", "zdiff"} <= set(args.models):
        return
    # Same network and batch for both losses: the langevin preset's network, batch 256.
    langevin_config, langevin_train = resolve_preset(
        "cpu", ModelConfig(model="langevin", n_particles=target.n_particles, target=args.target, backbone=backbone))
    same = {}
    for name in ("langevin", "zdiff"):
        torch.manual_seed(0)
        model = GenerativeModel(replace(langevin_config, model=name))
        same[name] = time_training(model, events, langevin_train.batch_size, args.steps, args.repeats)
    print(f"\nsame network ({langevin_config.width} x {langevin_config.depth}, divergence "
          f"{langevin_config.divergence}) and batch {langevin_train.batch_size}: Langevin ISM "
          f"{same['langevin'] * 1e3:.1f} ms/step, z-space DSM {same['zdiff'] * 1e3:.1f} ms/step, "
          f"ratio {same['langevin'] / same['zdiff']:.1f}")


if __name__ == "__main__":
    main()

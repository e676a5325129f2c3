"""Where a spline flow's training step goes: zuko's NSF against lipsgen's SplineFlow, both directions.

Times, interleaved in one process (median of --repeats rounds of --steps optimiser steps each, at
the cpu preset's nf size and batch): maximum likelihood (``log_prob`` of data, the ``nf`` model's
step) and regression through the map from noise (the distilled ``flow`` student's step), for zuko's
own NSF, lipsgen's flow built with its cheap direction on densities (``nf``) and on sampling (the
student), and torch's softmax over 8 bins against exp / sum and against softmax over 16 bins.

Usage: python bench/flow_speed.py [--particles 3] [--steps 20] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import zuko

sys.path.insert(0, str(Path(__file__).parent))

from common import machine  # noqa: E402
from lipsgen.models.flows import SplineFlow  # noqa: E402


class ZukoNSF(torch.nn.Module):
    """zuko's NSF with the same size and identity start as SplineFlow(direction="density")."""

    def __init__(self, n_particles: int) -> None:
        super().__init__()
        self.flow = zuko.flows.NSF(3 * n_particles, transforms=6, bins=8, passes=2, randperm=True,
                                   hidden_features=[128] * 2)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.flow().log_prob(x.flatten(1))

    def from_noise(self, z: torch.Tensor) -> torch.Tensor:
        return self.flow().transform.inv(z.flatten(1)).view_as(z)


def step_time(loss: Callable[[], torch.Tensor], params: list[torch.nn.Parameter], steps: int) -> float:
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=3)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n = args.particles
    x = torch.randn(args.batch, n, 3)
    target = torch.randn(args.batch, n, 3)
    zuko_nsf, density, sampling = ZukoNSF(n), SplineFlow(n), SplineFlow(n, direction="sampling")
    logits = torch.randn(args.batch * 3 * n, 8, requires_grad=True)
    logits16 = torch.randn(args.batch * 3 * n, 16, requires_grad=True)

    def exp_sum() -> torch.Tensor:
        weights = (logits - logits.amax(-1, keepdim=True).detach()).exp()
        return weights / weights.sum(-1, keepdim=True)

    cases: dict[str, tuple[Callable[[], torch.Tensor], list[torch.nn.Parameter]]] = {
        "ML step, zuko NSF": (lambda: -zuko_nsf.log_prob(x).mean(), list(zuko_nsf.parameters())),
        "ML step, lipsgen nf (density direction)": (lambda: -density.log_prob(x).mean(), list(density.parameters())),
        "regression step, lipsgen flow, density direction": (
            lambda: (density(x, from_noise=True) - target).square().mean(), list(density.parameters())),
        "regression step, zuko NSF (its inverse)": (
            lambda: (zuko_nsf.from_noise(x) - target).square().mean(), list(zuko_nsf.parameters())),
        "regression step, lipsgen student (sampling direction)": (
            lambda: (sampling(x, from_noise=True) - target).square().mean(), list(sampling.parameters())),
        "softmax over 8 bins (fwd + bwd of one call; a step makes 12)": (
            lambda: torch.softmax(logits, -1).square().sum(), [logits]),
        "exp / sum over 8 bins (fwd + bwd of one call; a step makes 12)": (lambda: exp_sum().square().sum(), [logits]),
        "softmax over 16 bins (fwd + bwd of one call)": (lambda: torch.softmax(logits16, -1).square().sum(),
                                                         [logits16]),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):  # interleaved: the machine's noise hits every case alike
        for name, (loss, params) in cases.items():
            times[name].append(step_time(loss, params, args.steps))
    print(f"Machine: {machine()}; {n} particles, batch {args.batch}, median of {args.repeats} x {args.steps} steps\n")
    reference = statistics.median(times["ML step, zuko NSF"])
    print("| case | ms / step | ratio to zuko's NSF ML step |")
    print("|---|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median * 1e3:.2f} | {median / reference:.2f} |")


if __name__ == "__main__":
    main()

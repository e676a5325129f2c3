"""A base alone as the sampler of a target density: does fitting it in rounds on its own weighted draws help?

``lipsgen train --target ... --base B`` fits the base by maximum likelihood on uniform phase-space events
weighted by the density (``GenerativeModel.fit_target``). At high multiplicity few of those events carry
the weight, so this bench refits the base in rounds on events drawn from the base itself, weighted by
f / g (adaptive importance sampling), and reports after each fit the base's own weights on fresh draws:
integral, ESS per event, unweighting efficiency (bootstrap-median and raw maximum) and the fraction of
draws outside the target's support. Prints a Markdown table.

Usage: python bench/base_fit_rounds.py [--particles 5] [--ycut 1e-3] [--base chain] [--rounds 3]
       [--fit-events 50000] [--events 20000] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from bases_study import draw_from_base, weight_cells  # noqa: E402
from common import machine  # noqa: E402
from lipsgen.bases import make_base  # noqa: E402
from lipsgen.coordinates.qspace import sample_prior  # noqa: E402
from lipsgen.coordinates.rambo import rambo_map  # noqa: E402
from lipsgen.targets import make_target  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=5)
    parser.add_argument("--ycut", type=float, default=1e-3)
    parser.add_argument("--base", default="chain")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fit-events", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=20_000, help="draws the weights are measured on")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    target = make_target("antenna", n_particles=args.particles, ycut=args.ycut)
    base = make_base(args.base, args.particles, target.sqrt_s, ycut=args.ycut)
    generator = torch.Generator().manual_seed(args.seed)
    print(f"Machine: {machine()}\n\nantenna N = {args.particles}, ycut {args.ycut}, base {args.base}\n")
    print("| fit | fit (s) | integral | ESS / event | unweighting eff. (bootstrap) | unweighting eff. (raw max) "
          "| unweighted ev/s | outside support |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    # round 0: what lipsgen train does, uniform phase-space events weighted by the density
    events = rambo_map(sample_prior(args.fit_events, args.particles, generator=generator), sqrt_s=target.sqrt_s).p
    log_w = target.log_density(events).nan_to_num(nan=-math.inf)
    for fit in range(args.rounds + 1):
        start = time.perf_counter()
        base.fit(events, torch.softmax(log_w, dim=0))
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        _, log_w_test = draw_from_base(base, target, args.events, generator)
        weights = log_w_test.nan_to_num(nan=-math.inf).exp().numpy()
        label = "uniform events (lipsgen train)" if fit == 0 else f"round {fit}: the base's own draws"
        print("| " + " | ".join([label, f"{fit_s:.0f}", *weight_cells(weights, time.perf_counter() - start),
                                 f"{np.mean(weights == 0):.2f}"]) + " |", flush=True)
        events, log_w = draw_from_base(base, target, args.fit_events, generator)
        log_w = log_w.nan_to_num(nan=-math.inf)


if __name__ == "__main__":
    main()

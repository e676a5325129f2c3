"""Cost of exact densities: sampling with and without the per-step Jacobians, per model.

For each exact model (untrained networks of the cpu preset's size: the cost does not depend on the
weights), events/s of ``model.sample(n)`` and of ``model.sample(n, density=True)`` at the same
solver and step count, timed interleaved (medians), and their ratio. ``nf`` has its density in
one pass; the others pay about D = 3N forward and backward passes per step.

Usage: python bench/bench_density.py [--particles 3 10] [--events 2000] [--steps 25] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

from common import interleaved_medians, machine  # noqa: E402
from lipsgen.models.model import GenerativeModel, ModelConfig  # noqa: E402
from lipsgen.training import resolve_preset  # noqa: E402

MODELS = {"fm-z": "euler", "fm-q": "euler", "zdiff": "heun", "langevin": "ode", "nf": "flow"}


def _sampler(model: GenerativeModel, n: int, steps: int, solver: str, density: bool) -> Callable[[], object]:
    return lambda: model.sample(n, seed=0, steps=steps, solver=solver, density=density)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=25, help="ODE steps (Langevin: linear schedule of this many)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    print("| N | model | solver | steps | plain (ev/s) | with density (ev/s) | cost ratio |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for n_particles in args.particles:
        backbone = "mlp" if n_particles == 3 else "transformer"
        for kind, solver in MODELS.items():
            extra = {"schedule": f"linear:0.002:0.01:{args.steps}"} if kind == "langevin" else {}
            config, _ = resolve_preset("cpu", ModelConfig(kind, n_particles, backbone=backbone, **extra))
            torch.manual_seed(0)
            model = GenerativeModel(config)
            steps = 1 if kind == "nf" else args.steps
            times = interleaved_medians({name: _sampler(model, args.events, steps, solver, name == "density")
                                         for name in ("plain", "density")}, args.repeats)
            plain, weighted = args.events / times["plain"], args.events / times["density"]
            print(f"| {n_particles} | {kind} | {solver} | {steps} | {plain:.0f} | {weighted:.0f} | "
                  f"{plain / weighted:.1f} |", flush=True)


if __name__ == "__main__":
    main()

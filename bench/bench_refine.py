"""Cost of learnt density ratios: fitting (lipsgen refine) and weighting (lipsgen reweight).

In one process, interleaved, median of ``--repeats``: fitting a ratio on n data and n model events
for ``--steps`` classifier steps, and weighting n events, for N = 3 (n = ``--events``) and N = 10
(n = ``--events`` / 10: its transformer samples 10-20x slower); the reference is
drawing the same n events from an fm-z model at its default 100 Euler steps (an untrained one costs
the same as a trained one; the cpu preset's network), i.e. the fitting sample the ratio needs anyway.

Usage: python bench/bench_refine.py [--events 50000] [--steps 1000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import interleaved_medians, machine  # noqa: E402
from lipsgen import uniform_phase_space  # noqa: E402
from lipsgen.models import GenerativeModel, ModelConfig  # noqa: E402
from lipsgen.refinement import RatioConfig, fit_density_ratio  # noqa: E402
from lipsgen.sampling import sample_to_file  # noqa: E402
from lipsgen.training import resolve_preset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    jobs, folder = {}, Path(tempfile.mkdtemp())
    for particles in (3, 10):
        n = args.events if particles == 3 else args.events // 10
        data, samples = uniform_phase_space(n, particles, seed=1), uniform_phase_space(n, particles, seed=2)
        config = RatioConfig(particles, labelled=False, steps=args.steps)
        ratio, _ = fit_density_ratio(data, samples, config, progress=False)
        preset, _ = resolve_preset("cpu", ModelConfig("fm-z", particles,
                                                      backbone="mlp" if particles == 3 else "transformer"))
        model = GenerativeModel(preset)
        out = folder / f"sample{particles}.h5"

        def sample(model: GenerativeModel = model, out: Path = out, n: int = n) -> None:
            out.unlink(missing_ok=True)
            sample_to_file(model, n, out, seed=3, progress=False)

        jobs[f"N={particles}: sample {n} events (fm-z, 100 Euler steps)"] = sample
        jobs[f"N={particles}: fit ratio ({n} + {n} events, {args.steps} steps)"] = (
            lambda d=data, s=samples, c=config: fit_density_ratio(d, s, c, progress=False))
        jobs[f"N={particles}: weight {n} events"] = lambda r=ratio, s=samples: r.weights(s)
    medians = interleaved_medians(jobs, args.repeats)
    print(f"Machine: {machine()}\n")
    print("| job | median (s) | / sampling the same events |")
    print("|---|---:|---:|")
    for name, seconds in medians.items():
        particles = name.split(":")[0]
        reference = next(v for k, v in medians.items() if k.startswith(particles) and "sample" in k)
        print(f"| {name} | {seconds:.1f} | {seconds / reference:.2f}x |")


if __name__ == "__main__":
    main()

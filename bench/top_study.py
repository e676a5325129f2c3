"""Top decay: what a model's samples (plain or weighted) give for the W line shape and helicity fractions.

For each event file (a truth sample, a model's plain sample, or its exact-weighted sample): the W
helicity fractions from the first two moments of c = cos theta* (``F_0 = 2 - 5 <c^2>``,
``F_R - F_L = 2 <c>``; weighted moments for weighted files) with bootstrap errors, beside the closed
forms of ``TopDecay.helicity_fractions``; the chi2/ndf of the m_enu line shape (50 bins over M_W +- 3
Gamma_W) and of cos theta* against the closed-form CDFs (bin variances from the weights).

Usage: python bench/top_study.py FILE [FILE ...] [--bootstrap B]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402

from lipsgen.evaluation.tails import chi2_per_ndf  # noqa: E402
from lipsgen.io import read_events, read_weights  # noqa: E402
from lipsgen.targets import TopDecay, target_from_attributes, top_observables  # noqa: E402


def fractions(c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(F_0, F_L, F_R) from weighted moments of c."""
    mean, second = np.average(c, weights=w), np.average(c * c, weights=w)
    f0 = 2 - 5 * second
    return np.array([f0, (1 - f0 - 2 * mean) / 2, (1 - f0 + 2 * mean) / 2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    print("| file | events | weighted | F_0 | F_L | F_R | chi2/ndf m_enu | chi2/ndf cos theta* |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    truth_printed = False
    for path in args.files:
        events, attributes = read_events(path)
        target = target_from_attributes(attributes)
        assert isinstance(target, TopDecay), f"{path}: not a top-decay file"
        if not truth_printed:
            exact = target.helicity_fractions()
            print(f"| closed form | | | {exact['F_0']:.4f} | {exact['F_L']:.4f} | {exact['F_R']:.4f} | | |")
            truth_printed = True
        weights = read_weights(path)
        w = np.ones(len(events)) if weights is None else weights.numpy()
        observables = {k: v.numpy() for k, v in top_observables(events).items()}
        c = observables["cos_theta_star"]
        central = fractions(c, w)
        replicas = []
        for _ in range(args.bootstrap):
            pick = rng.integers(0, len(c), len(c))
            replicas.append(fractions(c[pick], w[pick]))
        error = np.std(replicas, axis=0)
        spectra = target.spectra()
        chi2 = {}
        for name in ("m_enu", "cos_theta_star"):
            spectrum = spectra[name]
            chi2[name] = chi2_per_ndf(observables[name], spectrum, spectrum.low, spectrum.high, n_bins=50,
                                      weights=None if weights is None else w)[0]
        cells = " | ".join(f"{v:.4f} ± {e:.4f}" for v, e in zip(central, error, strict=True))
        print(f"| {path.name} | {len(c)} | {'yes' if weights is not None else 'no'} | {cells} | "
              f"{chi2['m_enu']:.2f} | {chi2['cos_theta_star']:.2f} |")


if __name__ == "__main__":
    main()

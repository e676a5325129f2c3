"""The emergence-times table of docs/results.md from ``lipsgen emergence`` folders.

    python bench/emergence_table.py muon/fm-z-emergence qqg/fm-z-emergence ...

One row per folder: the t at which each structure's U-turn keep probability is half-way between 1 and
its independent-events value, and each selected observable's rank correlation half-way to 0 (value
and half the 68% bootstrap interval), then the speciation estimate of the leading direction with its
eigenvalue. Larger t: decided earlier in the reverse run (which runs from t = 1 to t = 0).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lipsgen.catalogue import EMERGENCE_STRUCTURES
from lipsgen.evaluation.speciation import Speciation

STRUCTURES = tuple(EMERGENCE_STRUCTURES)
# observables shown (the first present of each group: labelled or sorted names)
OBSERVABLES = (("x_1", "x_sorted_1"), ("log10_min_y",), ("thrust",))


def _entry(crossing: list | None, speciation: Speciation, first: float = 0.0) -> str:
    """t ± half the 68% interval, and [log10 of the forward process's SNR at t: the common clock]; a
    crossing before the first U-turn time ``first`` is only bounded: "< first"."""
    if not crossing or crossing[0] is None:
        return "-"
    t, low, high = crossing
    if t < first:
        return f"< {first:g} [> {speciation.log_snr_at(first):+.2f}]"
    clock = f" [{speciation.log_snr_at(t):+.2f}]"
    return (f"{t:.3f}" if low is None else f"{t:.3f} ± {(high - low) / 2:.3f}") + clock


def departure(metrics: dict, name: str = "log10_min_y") -> str:
    """The largest recorded t of the reverse run at which its marginal of ``name`` is measurably off
    the forward process's: the lower band of W1(reverse, forward) above the upper band of the floor
    (independent data run forward). "-": nowhere."""
    reverse = metrics["reverse"]
    w1, floor = reverse["w1"][name], reverse["w1_floor"][name]
    off = [t for t, low, high in zip(reverse["t"], w1["low"], floor["high"]) if low > high]
    return f"{max(off):.1f}" if off else "-"


def row(folder: Path) -> str:
    metrics = json.loads((folder / "metrics.json").read_text())
    speciation = Speciation.from_dict(metrics["speciation"])
    keep = metrics["uturn"]["keep"]
    correlation = metrics["uturn"]["correlation"]
    solver = metrics["settings"].get("solver")
    cells = [metrics["target"], metrics["model"] + (f" ({solver})" if solver else "")]
    first = min(metrics["settings"]["times"])
    cells += [_entry(keep[name]["crossing"], speciation, first) + f" ({keep[name]['limit']:.2f})"
              for name in STRUCTURES]
    for group in OBSERVABLES:
        name = next((n for n in group if n in correlation), None)
        cells.append("-" if name is None else _entry(correlation[name]["crossing"], speciation, first))
    t_s = [speciation.times[0], speciation.times_low[0], speciation.times_high[0]]
    cells.append(_entry(t_s, speciation).replace(" [", f" (λ {speciation.eigenvalues[0]:.2f}) [")
                 if np.isfinite(t_s[0]) else f"- (λ {speciation.eigenvalues[0]:.2f})")
    cells.append(departure(metrics))
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", help="lipsgen emergence output folders")
    args = parser.parse_args()
    header = (["target", "model"] + [f"keep {s} (indep.)" for s in STRUCTURES]
              + ["corr x_1 (sorted)", "corr log10 min y", "corr thrust", "speciation t_S1",
                 "reverse run off (log10 min y) below t"])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * 2 + "---:|" * (len(header) - 2))
    for folder in args.folders:
        print(row(folder))


if __name__ == "__main__":
    main()

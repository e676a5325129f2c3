"""``evaluate``: samples against truth -> metrics.json, PNG plots and a Markdown/HTML report."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ..catalogue import EVALUATED_EVENTS
from ..conservation import conservation_metric, event_violations, mass_shell_violations
from ..errors import raise_if_terminated
from ..io.atomic import atomic_output, remove_stale_temporaries, temporary_prefix
from ..io.errors import EventFileError
from ..io.formats import FILE_RTOL, file_attributes, recorded_masses
from ..io.subsample import read_subsample
from ..targets import target_from_attributes
from ..validation import check_events
from ..weights import summarise_weights
from .comparisons import Comparison, compare, finite_values, spectra_chi2
from .inputs import EvaluationInputs, describe_truth, observables_of, read_sample
from .metrics import classifier_auc, feature_matrix, wasserstein_batches
from .observables import Observable, eec_pairs
from .plots import conservation_along_trajectory, conservation_histograms, histogram_with_ratio, trajectory_histograms
from .render import write_reports

__all__ = ["evaluate", "EvaluationInputs"]



def _as_numpy(pair: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    return pair[0].numpy(), pair[1].numpy()


# the EEC's W1 from histograms of cos chi: 10^5 bins, so within 2e-5 of the exact value (measured
# distances are 1e-3 and up) in memory O(bins) for the tens of millions of pairs of a large sample
EEC_GRID = (-1.0, 1.0, 100_000)

def _plot_selection(observables: list[Observable], labelled: bool) -> list[Observable]:
    if labelled:
        return observables
    last = sum(o.name.startswith("x_sorted") for o in observables)
    keep = {"x_sorted_1", "x_sorted_2", "x_sorted_3", f"x_sorted_{last}",
            "y_sorted_1", f"y_sorted_{sum(o.name.startswith('y_sorted') for o in observables)}",
            "log10_min_y", "thrust", "c_parameter", "log10_y23", "log10_y34", "cos_12", "cos_13"}
    return [o for o in observables if o.name in keep]


def _target_spectra(attributes: dict[str, Any]) -> dict:
    """The truth target's analytic spectra (none for unknown targets or permuted events)."""
    try:
        target = target_from_attributes(attributes)
    except ValueError:
        return {}
    return {} if attributes.get("permuted") else target.spectra()


def _weighted_eec(events: torch.Tensor, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """EEC pairs of events, each pair's weight times its event's weight."""
    cosines, pair_weights = eec_pairs(events)
    if weights is None:
        return cosines, pair_weights
    return cosines, pair_weights * np.repeat(weights, len(pair_weights) // len(weights))


# the files of a report written before reports listed theirs (metrics.json, "report_files")
_OLD_REPORT_FILES = ("metrics.json", "report.md", "report.html", "conservation.png", "hist_*.png", "trajectory_*.png")


def evaluate(
    inputs: EvaluationInputs,
    out_dir: str | os.PathLike[str],
    *,
    n_batches: int = 5,
    seed: int = 0,
    max_events: int | None = EVALUATED_EVENTS,
) -> dict[str, Any]:
    """Compare sample files (and/or a trajectory) with truth; write metrics.json, plots, report.md
    and report.html into ``out_dir``; return the metrics.

    Files larger than ``max_events`` (the truth: twice that; None: no limit) are evaluated on a
    uniform random subsample (``seed``) read chunk by chunk, so memory stays bounded whatever their
    size; the conservation metric and the physics checks stream over every event
    (:func:`lipsgen.io.subsample.read_subsample`). ``n_events`` and ``n_evaluated`` say which.

    The report is made in a temporary folder inside ``out_dir`` and moved in only when complete:
    an interrupted or failed evaluation leaves ``out_dir`` as it was. An earlier report there is
    replaced: the files it listed go, a user's other files stay."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out, "lipsgen-evaluate")
    work = Path(tempfile.mkdtemp(prefix=temporary_prefix("lipsgen-evaluate"), suffix=".tmp", dir=out))
    try:
        metrics = _evaluate_into(inputs, work, n_batches=n_batches, seed=seed, max_events=max_events)
        raise_if_terminated()
        _publish_report(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return metrics


def _publish_report(work: Path, out: Path) -> None:
    """Replace the report in ``out`` (the files its metrics.json lists) by the one made in ``work``."""
    try:
        previous = set(json.loads((out / "metrics.json").read_text())["report_files"])
    except (OSError, ValueError, KeyError, TypeError):
        previous = {p.name for pattern in _OLD_REPORT_FILES for p in out.glob(pattern)}
    made = sorted(p.name for p in work.iterdir())
    for name in previous - set(made):
        (out / name).unlink(missing_ok=True)  # an earlier report's pictures must not outlive it
    for name in sorted(made, key=lambda n: n == "metrics.json"):  # metrics.json, the report's mark, last
        os.replace(work / name, out / name)


def _evaluate_into(inputs: EvaluationInputs, out: Path, *, n_batches: int, seed: int,
                   max_events: int | None) -> dict[str, Any]:
    masses = recorded_masses(file_attributes(inputs.truth))
    t_read = read_subsample(inputs.truth, None if max_events is None else 2 * max_events, seed=seed,
                            check=lambda events, name, energy: check_events(events, name, sqrt_s=energy, masses=masses,
                                                                            cm_rtol=FILE_RTOL, mass_rtol=FILE_RTOL))
    truth, t_attrs = t_read.events, t_read.attributes
    sqrt_s = float(t_attrs.get("sqrt_s", 1.0))
    n_particles = truth.shape[1]
    target, labelled, names = describe_truth(t_attrs, n_particles)
    half = len(truth) // 2
    if half < 20:
        raise EventFileError(f"{inputs.truth}: need at least 40 truth events, got {len(truth)}")
    reference, independent = truth[:half], truth[half:2 * half]
    ref_obs = observables_of(reference, target, labelled, names, t_attrs)
    ind_obs = observables_of(independent, target, labelled, names, t_attrs)
    ref_features = feature_matrix(ref_obs)
    metrics: dict[str, Any] = {
        "truth": str(inputs.truth), "target": target, "n_particles": n_particles, "labelled": labelled,
        "n_truth": t_read.n_events, "n_truth_evaluated": int(len(truth)), "batches": n_batches,
        "floor_auc": classifier_auc(feature_matrix(ind_obs), ref_features, seed),
        "truth_conservation": t_read.conservation.as_dict(),
        "samples": {},
    }
    plots: list[str] = []
    spectra = _target_spectra(t_attrs)
    metrics["truth_spectra"] = spectra_chi2(spectra, ref_obs)
    sample_obs: dict[str, list[Observable]] = {}
    sample_events: dict[str, torch.Tensor] = {}
    sample_weights: dict[str, np.ndarray | None] = {}
    for path in inputs.samples:
        read = read_sample(path, n_particles, target, sqrt_s, max_events, seed, masses)
        events, attributes = read.events, read.attributes
        weights = None if read.weights is None else read.weights.numpy()
        name = path.name.removesuffix(".h5").removesuffix(".hdf5").removesuffix(".npz").removesuffix(".lhe")
        if name in sample_obs:
            name = f"{name} ({len(sample_obs)})"
        observables = observables_of(events, target, labelled, names, t_attrs)
        sample_obs[name], sample_events[name], sample_weights[name] = observables, events, weights
        metrics["samples"][name] = {
            "path": str(path), "n_events": read.n_events, "n_evaluated": int(len(events)),
            "model": attributes.get("model"), "exact": bool(attributes.get("exact", True)),
            "weights": None if read.all_weights is None else summarise_weights(read.all_weights).as_dict(),
            "conservation": read.conservation.as_dict(),
            **({"mass_shell": mass_shell_violations(events, masses)} if masses else {}),
            **compare(Comparison(ref_obs, observables, weights, ref_features, spectra, seed, n_batches)),
        }
    if sample_obs:
        violations = {name: _as_numpy(event_violations(ev, sqrt_s=sqrt_s)) for name, ev in sample_events.items()}
        conservation_histograms(_as_numpy(event_violations(reference, sqrt_s=sqrt_s)), violations,
                                out / "conservation.png")
        plots.append("conservation.png")
        t_cos, t_w = eec_pairs(reference)
        eec = {name: _weighted_eec(ev, sample_weights[name]) for name, ev in sample_events.items()}
        for name, (cos, w) in eec.items():
            metrics["samples"][name]["wasserstein"]["eec"] = wasserstein_batches(t_cos, cos, 1, t_w, w, grid=EEC_GRID)
        for r in _plot_selection(ref_obs, labelled):
            index = [o.name for o in ref_obs].index(r.name)
            values = {name: obs[index].values for name, obs in sample_obs.items()}
            finite = r.values[np.isfinite(r.values)]
            file = f"hist_{r.name}.png"
            shown = {n: finite_values(v, sample_weights[n]) for n, v in values.items()}
            histogram_with_ratio(finite, {n: v for n, (v, _) in shown.items()}, r.label, out / file, log=r.log,
                                 sample_weights={n: w for n, (_, w) in shown.items() if w is not None})
            plots.append(file)
        histogram_with_ratio(t_cos, {n: c for n, (c, _) in eec.items()}, "cos chi (EEC, weight E_i E_j / s)",
                             out / "hist_eec.png", truth_weights=t_w,
                             sample_weights={n: w for n, (_, w) in eec.items()})
        plots.append("hist_eec.png")
    trajectory_plots: list[str] = []
    if inputs.trajectory is not None:
        metrics["trajectory"], trajectory_plots = _evaluate_trajectory(
            inputs.trajectory, out, reference, ref_obs, target, labelled, names, t_attrs, max_events)
    metrics["report_files"] = ["metrics.json", "report.md", "report.html", *plots, *trajectory_plots]
    with atomic_output(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    write_reports(out, metrics, plots, trajectory_plots)
    return metrics


def _evaluate_trajectory(path: Path, out: Path, reference: torch.Tensor, ref_obs: list[Observable], target: str,
                         labelled: bool, names: tuple[str, ...] | None, t_attrs: dict[str, Any],
                         max_events: int | None) -> tuple[dict[str, Any], list[str]]:
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such trajectory file")
    with h5py.File(path, "r") as f:
        if "trajectory" not in f or "trajectory_times" not in f:
            raise EventFileError(f"{path}: no 'trajectory' dataset; sample with a trajectory "
                                 f"(lipsgen sample --trajectory K)")
        states = torch.from_numpy(f["trajectory"][:, : max_events or None])
        times = np.asarray(f["trajectory_times"][...], dtype=np.float64)
        recorded = f.attrs.get("sqrt_s")
    truth_energy = float(t_attrs.get("sqrt_s", 1.0))
    if recorded is not None and not abs(float(recorded) - truth_energy) <= 1e-9 * truth_energy:
        raise EventFileError(f"{path}: trajectory at sqrt_s = {float(recorded):.10g}, the truth is at "
                             f"{truth_energy:.10g}")
    if states.ndim != 4 or states.shape[2] != reference.shape[1]:
        raise EventFileError(f"{path}: trajectory of shape {tuple(states.shape)} does not fit "
                             f"{reference.shape[1]} particles")
    per_state = [observables_of(s, target, labelled, names, t_attrs) for s in states]
    sqrt_s = float(t_attrs.get("sqrt_s", 1.0))
    result = {
        "path": str(path), "times": times.tolist(),
        "conservation": [conservation_metric(s, sqrt_s=sqrt_s).as_dict() for s in states],
        "wasserstein": {o.name: [wasserstein_batches(o.values[np.isfinite(o.values)],
                                                      obs[k].values[np.isfinite(obs[k].values)], 1)[0]
                                 for obs in per_state]
                        for k, o in enumerate(ref_obs)},
    }
    conservation_along_trajectory(times, np.array([c["energy"] for c in result["conservation"]]),
                                  np.array([c["momentum"] for c in result["conservation"]]),
                                  out / "trajectory_conservation.png")
    plots = ["trajectory_conservation.png"]
    for r in _plot_selection(ref_obs, labelled):
        k = [o.name for o in ref_obs].index(r.name)
        file = f"trajectory_{r.name}.png"
        trajectory_histograms([obs[k].values[np.isfinite(obs[k].values)] for obs in per_state], times, r.label,
                              out / file, truth=r.values[np.isfinite(r.values)], log=r.log)
        plots.append(file)
    return result, plots

"""``evaluate``: samples against truth -> metrics.json, PNG plots and a Markdown/HTML report."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ..catalogue import EVALUATED_EVENTS
from ..conservation import conservation_metric, event_violations
from ..errors import raise_if_terminated
from ..io.atomic import atomic_output
from ..io.errors import EventFileError
from ..io.formats import FILE_RTOL
from ..io.subsample import FileSubsample, read_subsample
from ..targets import target_from_attributes
from ..targets.facts import facts_from_attributes
from ..validation import check_events
from ..weights import summarise_weights
from .metrics import classifier_auc, feature_matrix, wasserstein_batches
from .observables import Observable, eec_pairs, event_observables, jet_observables
from .plots import conservation_along_trajectory, conservation_histograms, histogram_with_ratio, trajectory_histograms
from .tails import chi2_per_ndf, max_log_ratio, w1_tails

__all__ = ["evaluate", "EvaluationInputs"]



@dataclass
class EvaluationInputs:
    """The files to evaluate (paths or strings): a truth file, sample files and a trajectory file."""

    truth: Path
    samples: list[Path] = field(default_factory=list)
    trajectory: Path | None = None

    def __post_init__(self) -> None:
        self.truth = Path(self.truth)
        self.samples = [Path(p) for p in self.samples]
        self.trajectory = None if self.trajectory is None else Path(self.trajectory)


def _describe_truth(attributes: dict[str, Any], n_particles: int) -> tuple[str, bool, tuple[str, ...] | None]:
    facts = facts_from_attributes(attributes, n_particles)
    return facts.name, facts.labelled, facts.particle_names if facts.labelled else None


def _density_observable(target: str, attributes: dict[str, Any], events: torch.Tensor) -> Observable | None:
    """The target's own log-density (its matrix element) as an observable, where known in closed
    form and not trivially flat (uniform phase space)."""
    facts = facts_from_attributes(attributes, events.shape[1])
    if not facts.has_density or facts.name == "uniform":
        return None
    model = target_from_attributes(attributes)
    total = events[..., 0].sum(dim=1, keepdim=True)
    scaled = events * (model.sqrt_s / total).unsqueeze(-1)  # baselines: measure on the same scale
    with np.errstate(divide="ignore"):
        values = model.log_density(scaled).numpy()
    return Observable("log_density", f"log |M|^2 ({target}, normalised)", values)


def _as_numpy(pair: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    return pair[0].numpy(), pair[1].numpy()


# the EEC's W1 from histograms of cos chi: 10^5 bins, so within 2e-5 of the exact value (measured
# distances are 1e-3 and up) in memory O(bins) for the tens of millions of pairs of a large sample
EEC_GRID = (-1.0, 1.0, 100_000)

# events per pass through the observables: their intermediates (pair invariants, sorts, hemisphere
# splits) take about 4 kB per event at N = 10, the results 0.5 kB
_OBSERVABLE_CHUNK = 1 << 15


def _observables(events: torch.Tensor, target: str, labelled: bool, names: tuple[str, ...] | None,
                 attributes: dict[str, Any]) -> list[Observable]:
    parts = [_observables_of(events[start:start + _OBSERVABLE_CHUNK], target, labelled, names, attributes)
             for start in range(0, max(len(events), 1), _OBSERVABLE_CHUNK)]
    return [replace(first, values=np.concatenate([part[i].values for part in parts]))
            for i, first in enumerate(parts[0])]


def _observables_of(events: torch.Tensor, target: str, labelled: bool, names: tuple[str, ...] | None,
                    attributes: dict[str, Any]) -> list[Observable]:
    result = event_observables(events, labelled=labelled, names=names)
    if "n_jets" in attributes:  # clustered jets (lipsgen data pythia, convert --jets)
        result += jet_observables(events)
    density = _density_observable(target, attributes, events)
    return result + ([density] if density is not None else [])


def _inside_support(observables: list[Observable]) -> np.ndarray | None:
    """Mask (n,) of events where the target's density is non-zero (e.g. qqg events above ycut), or
    None where the density is not known; a smooth model leaks across a hard cut."""
    density = next((o for o in observables if o.name == "log_density"), None)
    return None if density is None else ~np.isneginf(density.values)


def _support_metrics(features: np.ndarray, inside: np.ndarray | None, auc: float,
                     ref_features: np.ndarray, seed: int, weights: np.ndarray | None) -> dict[str, float | None]:
    """Fraction of events (of the weight, for weighted events) outside the target's support, and the
    classifier AUC of the events inside it: what the model scores once the target's own cut is
    applied to its samples. The classifier sees a leak across a hard cut at once; this separates the
    leak from the shape inside the cut."""
    if inside is None:
        return {"outside_support": None, "auc_in_support": None}
    w = np.ones(len(inside)) if weights is None else weights
    outside = float(w[~inside].sum() / w.sum())
    in_support: float | None = auc
    if outside > 0:
        n_inside = int(inside.sum())
        in_support = (classifier_auc(features[inside], ref_features, seed,
                                     None if weights is None else weights[inside]) if n_inside >= 20 else None)
    return {"outside_support": outside, "auc_in_support": in_support}


def _plot_selection(observables: list[Observable], labelled: bool) -> list[Observable]:
    if labelled:
        return observables
    last = sum(o.name.startswith("x_sorted") for o in observables)
    keep = {"x_sorted_1", "x_sorted_2", "x_sorted_3", f"x_sorted_{last}",
            "y_sorted_1", f"y_sorted_{sum(o.name.startswith('y_sorted') for o in observables)}",
            "log10_min_y", "thrust", "c_parameter", "log10_y23", "log10_y34", "cos_12", "cos_13"}
    return [o for o in observables if o.name in keep]


def _finite(values: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The finite values of an observable, with their events' weights."""
    keep = np.isfinite(values)
    return values[keep], None if weights is None else weights[keep]


def _w1(truth: np.ndarray, sample: np.ndarray, weights: np.ndarray | None, n_batches: int) -> tuple[float, float]:
    values, w = _finite(sample, weights)
    return wasserstein_batches(truth[np.isfinite(truth)], values, n_batches, sample_weights=w)


def _tail_metrics(truth: np.ndarray, sample: np.ndarray, weights: np.ndarray | None) -> dict[str, float]:
    truth = truth[np.isfinite(truth)]
    sample, weights = _finite(sample, weights)
    if len(truth) < 2 or len(sample) < 2:
        return {"max_log_ratio": float("nan"), "w1_tails": float("nan")}
    return {"max_log_ratio": max_log_ratio(truth, sample, sample_weights=weights),
            "w1_tails": w1_tails(truth, sample, sample_weights=weights)}


def _target_spectra(attributes: dict[str, Any]) -> dict:
    """The truth target's analytic spectra (none for unknown targets or permuted events)."""
    try:
        target = target_from_attributes(attributes)
    except ValueError:
        return {}
    return {} if attributes.get("permuted") else target.spectra()


def _spectra_chi2(spectra: dict, observables: list[Observable],
                  weights: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """chi^2/ndf of each observable that has an analytic spectrum (40 bins on [0, 1])."""
    result = {}
    for o in observables:
        if o.name in spectra:
            values, w = _finite(o.values, weights)
            value, ndf = chi2_per_ndf(values, spectra[o.name], weights=w)
            result[o.name] = {"chi2_ndf": value, "ndf": ndf}
    return result


def _weighted_eec(events: torch.Tensor, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """EEC pairs of events, each pair's weight times its event's weight."""
    cosines, pair_weights = eec_pairs(events)
    if weights is None:
        return cosines, pair_weights
    return cosines, pair_weights * np.repeat(weights, len(pair_weights) // len(weights))


def _read_checked(path: Path, n_particles: int, target: str, sqrt_s: float, max_events: int | None,
                  seed: int) -> FileSubsample:
    def massless(events: torch.Tensor, name: str, energy: float) -> None:
        check_events(events, name, mass_rtol=FILE_RTOL)  # massless at the files' precision

    read = read_subsample(path, max_events, seed=seed, sqrt_s=sqrt_s, check=massless)
    events, attributes = read.events, read.attributes
    recorded = attributes.get("sqrt_s")
    # without the attribute, the events' own total energy (the baselines conserve it only roughly)
    energy = float(recorded) if recorded is not None else float(events[..., 0].sum(1).median())
    if not abs(energy - sqrt_s) <= (1e-9 if recorded is not None else 0.1) * sqrt_s:
        raise EventFileError(f"{path}: events at sqrt_s = {energy:.10g}, the truth is at {sqrt_s:.10g}; rescale one "
                             f"of them (lipsgen convert --to-cm --sqrt-s)")
    if events.shape[1] != n_particles:
        raise EventFileError(f"{path}: {events.shape[1]} particles, the truth has {n_particles}")
    if len(events) < 2:
        raise EventFileError(f"{path}: {len(events)} events; need at least 2 to compare with the truth")
    other = attributes.get("target")
    if other is not None and target != "unknown" and other != target:
        # e.g. uniform phase space (the noise end) against the data: a comparison users want
        warnings.warn(f"{path}: target {other!r}, the truth is {target!r}; comparing anyway", stacklevel=3)
    if read.all_weights is not None:
        w = read.all_weights
        if not bool((torch.isfinite(w) & (w >= 0)).all()):
            bad = int(torch.nonzero(~(torch.isfinite(w) & (w >= 0)))[0])
            raise EventFileError(f"{path}: event {bad} has weight {float(w[bad])!r}; histograms, W1 and the "
                                 f"classifier need finite non-negative weights (unweight the events first, or "
                                 f"split a sample with negative weights into its positive and negative parts)")
    return read


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
    work = Path(tempfile.mkdtemp(prefix=".lipsgen-evaluate.", suffix=".tmp", dir=out))
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
    t_read = read_subsample(inputs.truth, None if max_events is None else 2 * max_events, seed=seed,
                            check=lambda events, name, energy: check_events(events, name, sqrt_s=energy,
                                                                            cm_rtol=FILE_RTOL, mass_rtol=FILE_RTOL))
    truth, t_attrs = t_read.events, t_read.attributes
    sqrt_s = float(t_attrs.get("sqrt_s", 1.0))
    n_particles = truth.shape[1]
    target, labelled, names = _describe_truth(t_attrs, n_particles)
    half = len(truth) // 2
    if half < 20:
        raise EventFileError(f"{inputs.truth}: need at least 40 truth events, got {len(truth)}")
    reference, independent = truth[:half], truth[half:2 * half]
    ref_obs = _observables(reference, target, labelled, names, t_attrs)
    ind_obs = _observables(independent, target, labelled, names, t_attrs)
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
    metrics["truth_spectra"] = _spectra_chi2(spectra, ref_obs)
    sample_obs: dict[str, list[Observable]] = {}
    sample_events: dict[str, torch.Tensor] = {}
    sample_weights: dict[str, np.ndarray | None] = {}
    for path in inputs.samples:
        read = _read_checked(path, n_particles, target, sqrt_s, max_events, seed)
        events, attributes = read.events, read.attributes
        weights = None if read.weights is None else read.weights.numpy()
        name = path.name.removesuffix(".h5").removesuffix(".hdf5").removesuffix(".npz").removesuffix(".lhe")
        if name in sample_obs:
            name = f"{name} ({len(sample_obs)})"
        observables = _observables(events, target, labelled, names, t_attrs)
        sample_obs[name], sample_events[name], sample_weights[name] = observables, events, weights
        features = feature_matrix(observables)
        auc = classifier_auc(features, ref_features, seed, weights)
        metrics["samples"][name] = {
            "path": str(path), "n_events": read.n_events, "n_evaluated": int(len(events)),
            "model": attributes.get("model"), "exact": bool(attributes.get("exact", True)),
            "weights": None if read.all_weights is None else summarise_weights(read.all_weights).as_dict(),
            "auc": auc,
            "conservation": read.conservation.as_dict(),
            **_support_metrics(features, _inside_support(observables), auc, ref_features, seed, weights),
            "wasserstein": {o.name: _w1(r.values, o.values, weights, n_batches) for r, o in zip(ref_obs, observables)},
            "tails": {o.name: _tail_metrics(r.values, o.values, weights) for r, o in zip(ref_obs, observables)},
            "spectra": _spectra_chi2(spectra, observables, weights),
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
            shown = {n: _finite(v, sample_weights[n]) for n, v in values.items()}
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
    _write_reports(out, metrics, plots, trajectory_plots)
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
    per_state = [_observables(s, target, labelled, names, t_attrs) for s in states]
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


def _summary_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    samples = metrics["samples"]
    key_observables = list(next(iter(samples.values()))["wasserstein"])[:4] if samples else []
    support = any(m["outside_support"] is not None for m in metrics["samples"].values())
    leak = any(m["outside_support"] for m in metrics["samples"].values())  # else AUC in support = AUC
    weighted = any(m.get("weights") for m in samples.values())
    header = (["sample", "model", "exact", "AUC", "mean |ΣE−√s|/med E", "mean |Σp|/med E"]
              + (["outside support"] if support else []) + (["AUC in support"] if leak else [])
              + (["integral (weights)", "ESS / event", "unweighting eff."] if weighted else [])
              + [f"W1 {k}" for k in key_observables]
              + [f"chi2/ndf {k} (truth {v['chi2_ndf']:.2f})" for k, v in metrics.get("truth_spectra", {}).items()]
              + [f"max |ln ratio| {k}" for k in key_observables])
    rows = []
    for name, m in metrics["samples"].items():
        model = "-" if m["model"] is None else str(m["model"])
        rows.append([name, model, "yes" if m["exact"] else "no", f"{m['auc']:.3f}",
                     f"{m['conservation']['energy']:.2e}", f"{m['conservation']['momentum']:.2e}"]
                    + ([_format(m["outside_support"], ".2%")] if support else [])
                    + ([_format(m["auc_in_support"], ".3f")] if leak else [])
                    + (_weight_cells(m.get("weights")) if weighted else [])
                    + [f"{m['wasserstein'][k][0]:.4f} ± {m['wasserstein'][k][1]:.4f}" for k in key_observables]
                    + [f"{v['chi2_ndf']:.2f}" for v in m["spectra"].values()]
                    + [f"{m['tails'][k]['max_log_ratio']:.2f}" for k in key_observables])
    return header, rows


def _weight_cells(weights: dict[str, float] | None) -> list[str]:
    if weights is None:
        return ["unweighted"] * 3
    return [f"{weights['integral']:.4g} ± {weights['integral_error']:.2g}", f"{weights['ess_per_event']:.3f}",
            f"{weights['unweighting_efficiency']:.3g}"]


def _format(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _md_cell(text: str) -> str:
    """A Markdown table cell: a literal | would end the cell."""
    return text.replace("|", "\\|")


def _html_text(text: str) -> str:
    """Escaped HTML, with Markdown `code` spans as <code>."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


def _write_reports(out: Path, metrics: dict[str, Any], plots: list[str], trajectory_plots: list[str]) -> None:
    header, rows = _summary_rows(metrics)
    intro = (f"Truth: `{metrics['truth']}` ({metrics['n_truth']} events of {metrics['n_particles']} particles, "
             f"target {metrics['target']}). Classifier floor (truth against independent truth): "
             f"AUC {metrics['floor_auc']:.3f}. Wasserstein-1 distances are mean ± spread over "
             f"{metrics['batches']} batches; all distances per observable are in metrics.json.")
    # (heading, text, images): the same sections in Markdown and HTML
    sections: list[tuple[str, str, list[str]]] = []
    if rows:
        conservation = [p for p in plots if p == "conservation.png"]
        sections += [
            ("Energy-momentum conservation", "Violation per event: exact models sit at float64 rounding "
             "(or exactly zero), at every step of their trajectories; the p-space baselines do not.", conservation),
            ("Observables", "Normalised histograms with model / truth ratio panels; the grey band is the "
             "truth's statistical error.", [p for p in plots if p not in conservation]),
        ]
    if trajectory_plots:
        sections.append(("Along the reverse trajectory", "Each curve is one recorded state, from the noise end "
                         "(t = 1, uniform phase space) to the data end; dashed black is the truth.", trajectory_plots))
    md = ["# lipsgen evaluation report", "", intro, ""]
    if rows:
        md += ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
        md += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    for heading, text, images in sections:
        md += ["", f"## {heading}", "", text, ""] + [f"![{p}]({p})" for p in images]
    with atomic_output(out / "report.md") as tmp:
        tmp.write_text("\n".join(md) + "\n")
    body = [f"<h1>lipsgen evaluation report</h1><p>{_html_text(intro)}</p>"]
    if rows:
        body.append("<table border='1' cellpadding='4'><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header)
                    + "</tr>"
                    + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
                    + "</table>")
    for heading, text, images in sections:
        body.append(f"<h2>{html.escape(heading)}</h2><p>{_html_text(text)}</p>")
        body += [f"<img src='{p}' width='{960 if p == 'conservation.png' else 480}'>" for p in images]
    with atomic_output(out / "report.html") as tmp:
        tmp.write_text("<!doctype html><html><head><meta charset='utf-8'><title>lipsgen report</title></head><body>"
                       + "\n".join(body) + "</body></html>\n")

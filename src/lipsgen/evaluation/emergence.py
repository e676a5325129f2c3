"""How the data's correlations emerge along a model's reverse process (``lipsgen emergence``).

Three views, on a trained exact model and events of its training target:

- **U-turns** (:mod:`.uturn`): data noised exactly to t and denoised by the model; per t the
  probability that each discrete structure (:mod:`.structures`) is kept, the correlation of each
  observable before and after, and the W1 of the results' marginals to independent data. The time at
  which a structure is decided is where its keep probability is half-way between 1 (t -> 0) and its
  value for independent events (t = 1).
- **Speciation estimate** (:mod:`.speciation`): the times predicted from the data's covariance
  spectrum in the model's coordinates.
- **The unconditional reverse run** against the exact forward process at the same t: the W1 of each
  observable's marginal, and the pairwise correlations of the observables.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor

from ..catalogue import EMERGENCE_DEFAULTS, EMERGENCE_TIMES
from ..io.atomic import atomic_output
from ..models.model import GenerativeModel
from ..progress import progress_bar
from .emergence_plots import correlation_pairs_plot, curves_plot, speciation_plot
from .observables import event_observables
from .speciation import Speciation, speciation_estimate
from .structures import STRUCTURES, event_structures
from .uturn import (
    Curve,
    bootstrap_band,
    correlation_curve,
    distance_curve,
    json_list,
    keep_curve,
    rank_correlation,
    uturn_events,
)

__all__ = ["EmergenceSettings", "emergence_observables", "analyse_emergence", "write_emergence",
           "check_emergence_model", "DEFAULT_TIMES", "EMERGENCE_FILES"]

DEFAULT_TIMES = EMERGENCE_TIMES
EMERGENCE_FILES = ("metrics.json", "emergence_times.csv", "uturn_keep.png", "uturn_correlation.png",
                   "uturn_w1.png", "reverse_w1.png", "reverse_correlations.png", "speciation.png")
_SHOWN_PAIRS = 6  # observable pairs whose correlation along the reverse run is plotted


@dataclass(frozen=True)
class EmergenceSettings:
    """``events`` originals (U-turns, and the unconditional run's size); ``times`` of the U-turns, in
    (0, 1] (1 is always added: the model's independent samples); ``trajectory`` states recorded along the
    unconditional run; ``replicas`` of the bootstrap; ``jet_ycut`` of the jet multiplicity;
    ``directions`` of the speciation estimate; sampler ``steps`` and ``solver`` (default the model's)."""

    events: int = EMERGENCE_DEFAULTS["events"]
    times: tuple[float, ...] = DEFAULT_TIMES
    trajectory: int = EMERGENCE_DEFAULTS["trajectory"]
    replicas: int = EMERGENCE_DEFAULTS["replicas"]
    jet_ycut: float = EMERGENCE_DEFAULTS["jet_ycut"]
    directions: int = EMERGENCE_DEFAULTS["directions"]
    steps: int | None = None
    solver: str | None = None
    seed: int = 0
    batch_size: int = EMERGENCE_DEFAULTS["batch_size"]
    progress: bool | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        times = sorted(set(float(t) for t in self.times) | {1.0})
        if not all(0 < t <= 1 for t in times):
            raise ValueError(f"U-turn times must lie in (0, 1], got {self.times}")
        object.__setattr__(self, "times", tuple(times))
        for name in ("events", "replicas", "directions", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.events < 20:
            raise ValueError(f"need at least 20 events for the statistics, got {self.events}")
        if self.trajectory < 2:
            raise ValueError(f"trajectory needs at least 2 states (both ends), got {self.trajectory}")
        if not self.jet_ycut > 0:
            raise ValueError(f"jet_ycut must be positive, got {self.jet_ycut}")


def emergence_observables(events: Tensor, *, labelled: bool) -> dict[str, np.ndarray]:
    """The observables followed along t, each (n,): energy fractions, log10 y_ij (per label or pair;
    unlabelled: the three largest of each), log10 min y_ij, thrust and the C-parameter."""
    out = {}
    for o in event_observables(events, labelled=labelled):
        name = o.name
        if not labelled and name.startswith(("x_sorted_", "y_sorted_")) and int(name.rsplit("_", 1)[1]) > 3:
            continue
        if name.startswith("y_"):
            out[f"log10_{name}"] = np.log10(np.clip(o.values, 1e-300, None))
        else:
            out[name] = o.values
    return out


def check_emergence_model(model: GenerativeModel) -> None:
    """Refuse, saying why, a model whose states are not events or that has no forward (noising) process."""
    if not model.space.exact:
        raise ValueError(f"model {model.config.model} works on momenta directly: its states are not events, so "
                         f"there is nothing to watch emerge on phase space; use an exact model")
    try:
        model.process.noise(model.space.prior(2, torch.Generator().manual_seed(0), torch.device("cpu")), 0.5,
                            torch.Generator().manual_seed(0))
    except ValueError as err:
        raise ValueError(f"model {model.config.model}: {err}") from None


def _correlation_matrix(values: dict[str, np.ndarray]) -> np.ndarray:
    matrix = np.column_stack(list(values.values()))
    matrix = matrix[np.all(np.isfinite(matrix), axis=1)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.atleast_2d(spearmanr(matrix).statistic)


def _pair_curve(series: list[dict[str, np.ndarray]], a: str, b: str, times: np.ndarray, replicas: int,
                rng: np.random.Generator) -> Curve:
    """Correlation of observables a and b at each t, with a bootstrap band (events resampled per t)."""
    value = np.array([rank_correlation(s[a], s[b]) for s in series])
    draws = np.empty((replicas, len(series)))
    for k, s in enumerate(series):
        n = len(s[a])
        for r in range(replicas):
            index = rng.integers(0, n, n)
            draws[r, k] = rank_correlation(s[a][index], s[b][index])
    low, high = bootstrap_band(draws)
    return Curve(times, value, low, high)


def _forward_events(model: GenerativeModel, states: Tensor, t: float, generator: torch.Generator) -> Tensor:
    """Encoded data states (n, N, 3) run forward to t exactly and decoded."""
    x = states if t == 0 else model.process.noise(states, t, generator)
    return model.space.decode(x.to(states.dtype)).cpu()


@torch.no_grad()
def analyse_emergence(model: GenerativeModel, originals: Tensor, reference: Tensor, *, labelled: bool,
                      settings: EmergenceSettings) -> dict[str, Any]:
    """Every measurement of the module on ``originals`` (n, N, 4), with ``reference`` (m, N, 4)
    independent events of the same target for the marginals' distances. Returns the metrics (JSON-able)."""
    check_emergence_model(model)
    device = next(model.net.parameters()).device
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    uturn = _uturn_metrics(model, originals, reference, labelled, settings, generator, rng)
    states = model.space.encode(originals.to(torch.float64), generator).to(device)
    noise = model.noise_prior(max(len(originals), 20000), generator, device)
    # the U-turn times on the grid, so that each decision's SNR is read where it was measured
    grid = np.union1d(np.linspace(0.0, 1.0, 101), settings.times)
    speciation = speciation_estimate(model.process, states, noise, generator, directions=settings.directions,
                                     grid=grid, replicas=settings.replicas, rng=rng)
    reverse = _reverse_metrics(model, states, reference, labelled, settings, generator, rng)
    rows = [{"quantity": f"{kind} {name}", "t": c["crossing"][0], "low": c["crossing"][1], "high": c["crossing"][2],
             "limit": c["limit"]} for kind, section in (("keep", uturn["keep"]), ("correlation", uturn["correlation"]))
            for name, c in section.items() if c["crossing"] is not None]
    rows += [{"quantity": f"speciation {k + 1} (lambda {speciation.eigenvalues[k]:.3g})", "t": t,
              "low": low, "high": high, "limit": None}
             for k, (t, low, high) in enumerate(zip(*(json_list(v) for v in (speciation.times, speciation.times_low,
                                                                              speciation.times_high))))]
    for row in rows:  # the common clock: the forward process's signal-to-noise ratio at t
        row["log10_snr"] = json_list([speciation.log_snr_at(np.nan if row["t"] is None else row["t"])])[0]
    return {"model": model.config.model, "target": model.config.target, "n_particles": model.config.n_particles,
            "settings": {k: v for k, v in asdict(settings).items() if k != "progress"},
            "uturn": uturn, "speciation": speciation.to_dict(), "reverse": reverse, "emergence_times": rows}


def _uturn_metrics(model: GenerativeModel, originals: Tensor, reference: Tensor, labelled: bool,
                   settings: EmergenceSettings, generator: torch.Generator, rng: np.random.Generator) -> dict:
    """Keep probabilities, correlations and marginal distances of U-turns from ``originals``."""
    times, replicas = np.array(settings.times), settings.replicas
    results = uturn_events(model, originals, settings.times, generator, steps=settings.steps,
                           solver=settings.solver, batch_size=settings.batch_size, progress=settings.progress)
    before = event_structures(originals, jet_ycut=settings.jet_ycut)
    after = [event_structures(r, jet_ycut=settings.jet_ycut) for r in results]
    keep = {name: keep_curve(before[name], [s[name] for s in after], times, independent=after[-1][name],
                             replicas=replicas, rng=rng) for name in STRUCTURES}
    observed = emergence_observables(originals, labelled=labelled)
    observed_after = [emergence_observables(r, labelled=labelled) for r in results]
    observed_reference = emergence_observables(reference, labelled=labelled)
    correlation = {name: correlation_curve(observed[name], [o[name] for o in observed_after], times,
                                           replicas=replicas, rng=rng) for name in observed}
    w1 = {name: distance_curve(observed_reference[name], [o[name] for o in observed_after], times,
                               replicas=replicas, rng=rng) for name in observed}
    return {"keep": {k: c.to_dict() for k, c in keep.items()},
            "correlation": {k: c.to_dict() for k, c in correlation.items()},
            "w1": {k: c.to_dict() for k, c in w1.items()}}


def _reverse_metrics(model: GenerativeModel, states: Tensor, reference: Tensor, labelled: bool,
                     settings: EmergenceSettings, generator: torch.Generator, rng: np.random.Generator) -> dict:
    """The unconditional reverse run against the data ``states`` (n, N, 3) run forward to the same t;
    the independent ``reference`` events run forward give the statistical floor of the comparison."""
    replicas = settings.replicas
    with progress_bar(total=1, unit="run", desc="reverse run", enable=settings.progress) as bar:
        run = model.sample(len(states), generator=generator, steps=settings.steps, solver=settings.solver,
                           trajectory=settings.trajectory)
        bar.update(1)
    assert run.trajectory is not None and run.times is not None
    run_times = run.times.numpy()[::-1].copy()  # increasing, data end first
    reverse_obs = [emergence_observables(run.trajectory[k].cpu(), labelled=labelled)
                   for k in range(len(run_times))][::-1]
    forward_obs = [emergence_observables(_forward_events(model, states, float(t), generator), labelled=labelled)
                   for t in run_times]
    names = list(forward_obs[0])

    def distances(series: list[dict[str, np.ndarray]]) -> dict[str, dict]:
        return {name: distance_curve(np.empty(0), [o[name] for o in series], run_times, replicas=replicas, rng=rng,
                                     references=[o[name] for o in forward_obs]).to_dict() for name in names}

    reverse_w1 = distances(reverse_obs)
    reference_states = model.space.encode(reference.to(torch.float64), generator).to(states.device)
    floor_w1 = distances([emergence_observables(_forward_events(model, reference_states, float(t), generator),
                                                labelled=labelled) for t in run_times])
    reverse_matrices = [_correlation_matrix(o) for o in reverse_obs]
    forward_matrices = [_correlation_matrix(o) for o in forward_obs]
    pairs = list(itertools.combinations(range(len(names)), 2))
    # the pairs the data correlate most differently from the noise end
    contrast = [abs(forward_matrices[0][a, b] - forward_matrices[-1][a, b]) for a, b in pairs]
    shown = [pairs[i] for i in np.argsort(np.nan_to_num(contrast, nan=-1.0))[::-1][:_SHOWN_PAIRS]]
    pair_curves = {f"{names[a]} / {names[b]}": {
        "reverse": _pair_curve(reverse_obs, names[a], names[b], run_times, replicas, rng).to_dict(),
        "forward": _pair_curve(forward_obs, names[a], names[b], run_times, replicas, rng).to_dict()}
        for a, b in shown}
    return {"t": run_times.tolist(), "w1": reverse_w1, "w1_floor": floor_w1, "observables": names,
            "correlation_reverse": [np.nan_to_num(m).tolist() for m in reverse_matrices],
            "correlation_forward": [np.nan_to_num(m).tolist() for m in forward_matrices],
            "largest_correlation_gap": [float(np.nanmax(np.abs(r - f)))
                                        for r, f in zip(reverse_matrices, forward_matrices)],
            "pairs": pair_curves}


def _curves(section: dict[str, dict]) -> dict[str, Curve]:
    return {name: Curve.from_dict(c) for name, c in section.items()}


def write_emergence(metrics: dict[str, Any], out: str | os.PathLike[str]) -> list[Path]:
    """Write ``metrics`` (from :func:`analyse_emergence`) as metrics.json, emergence_times.csv and the
    PNG plots into the folder ``out``, each file atomically. Returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with atomic_output(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=1))
    written.append(out / "metrics.json")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["quantity", "t", "low", "high", "limit", "log10_snr"])
    writer.writeheader()
    writer.writerows(metrics["emergence_times"])
    with atomic_output(out / "emergence_times.csv") as tmp:
        tmp.write_text(buffer.getvalue())
    written.append(out / "emergence_times.csv")
    speciation = Speciation.from_dict(metrics["speciation"])
    marks = {f"t_S{k + 1}": float(t) for k, t in enumerate(speciation.times) if np.isfinite(t)}
    title = f"{metrics['model']} on {metrics['target']}"
    uturn = metrics["uturn"]
    written.append(curves_plot(_curves(uturn["keep"]), out / "uturn_keep.png", ylabel="P(structure kept)",
                               title=f"U-turns, {title}: structures kept", marks=marks, limits=True))
    written.append(curves_plot(_curves(uturn["correlation"]), out / "uturn_correlation.png",
                               ylabel="corr(original, result)", title=f"U-turns, {title}: correlation", marks=marks))
    written.append(curves_plot(_curves(uturn["w1"]), out / "uturn_w1.png", ylabel="W1(result, data)",
                               title=f"U-turns, {title}: marginals", marks=marks, log=True))
    reverse = metrics["reverse"]
    written.append(curves_plot(_curves(reverse["w1"]), out / "reverse_w1.png", ylabel="W1(reverse run, forward)",
                               title=f"reverse run vs forward process, {title} (dotted: independent data, forward)",
                               log=True, floors=_curves(reverse["w1_floor"])))
    pairs = {name: (_curves(sides)["reverse"], _curves(sides)["forward"]) for name, sides in reverse["pairs"].items()}
    written.append(correlation_pairs_plot(pairs, out / "reverse_correlations.png", title=title))
    written.append(speciation_plot(speciation, out / "speciation.png", title=title))
    return written

"""Integrate and unweight target densities on phase space, side by side, in one run.

Methods, all on the same densities (lipsgen's closed forms, log m on phase space):
- ``flat``: uniform phase space (RAMBO), weight m V_N;
- ``vegas``: the ``vegas`` package adapting its grid on RAMBO's chart of the unit hypercube (4N
  uniforms -> q -> p, constant Jacobian V_N), then sampling from the adapted map;
- ``madspace``: madspace's leptonic phase-space map (invariants as 1/s^0.8) with a VEGAS grid on its
  random numbers;
- ``madnis``: MadNIS (neural importance sampling, its default flow and loss) on the same chart;
- ``nf``: lipsgen's spline flow in z-space trained from the density alone (no events);
- ``fm-z``: lipsgen's z-space flow matching trained on events (targets with an event sampler only),
  weighted through its exact ODE density.

Per method: integral +- MC error, relative weight std, ESS per event, unweighting efficiency
(mean w / max w, and with the maximum reduced to leave 1e-3 of the weight in overweights, as
generators do), unweighted events per second of sampling (weights included), wall time including
adaptation or training. Results to docs/benchmarks.md by hand; the JSON is written to --out.

Usage: python bench/integration.py [--targets qqg,muon,antenna5,antenna10] [--methods ...]
       [--events N] [--nf-steps S] [--madnis-steps S] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import machine  # noqa: E402
from lipsgen.coordinates.qspace import prior_from_uniforms  # noqa: E402
from lipsgen.coordinates.rambo import rambo_map, rambo_map_components  # noqa: E402
from lipsgen.models.model import ModelConfig  # noqa: E402
from lipsgen.targets import Target, make_target  # noqa: E402
from lipsgen.training import load_model, resolve_preset, train  # noqa: E402
from lipsgen.weights import log_event_weights, reduced_maximum, summarise_weights  # noqa: E402

TARGETS: dict[str, Callable[[], Target]] = {
    "qqg": lambda: make_target("qqg", ycut=1e-3),
    "muon": lambda: make_target("muon"),
    "antenna5": lambda: make_target("antenna", n_particles=5, ycut=1e-3),
    "antenna10": lambda: make_target("antenna", n_particles=10, ycut=1e-4),
}


def chart_weights(target: Target, u: np.ndarray) -> np.ndarray:
    """m(p(u)) V_N for points u (n, 4N) of the unit hypercube (RAMBO's chart)."""
    n, n_particles = u.shape[0], target.n_particles
    planes = torch.from_numpy(np.ascontiguousarray(u, dtype=np.float64)).view(n, 4, n_particles).permute(1, 0, 2)
    events = rambo_map_components(*prior_from_uniforms(planes.clone()), target.sqrt_s).p
    log_w = log_event_weights(target.log_density(events), torch.zeros(n), n_particles=n_particles,
                              sqrt_s=target.sqrt_s)
    return log_w.exp().numpy()


def summary(weights: np.ndarray, sample_seconds: float, total_seconds: float) -> dict[str, float]:
    w = torch.from_numpy(np.asarray(weights, dtype=np.float64))
    s = summarise_weights(w).as_dict()
    reduced = reduced_maximum(w, 1e-3)
    s["unweighting_efficiency_reduced"] = float(w.mean()) / reduced
    s["unweighted_per_second"] = len(w) * s["unweighting_efficiency_reduced"] / sample_seconds
    s["sample_seconds"], s["total_seconds"] = sample_seconds, total_seconds
    return s


def flat_weights(target: Target, n: int, args: argparse.Namespace) -> tuple[np.ndarray, float, float]:
    """Weights (n,) of uniform phase space, seconds of sampling and in total (no adaptation)."""
    start = time.perf_counter()
    rng = np.random.default_rng(1)
    weights = chart_weights(target, rng.random((n, 4 * target.n_particles)))
    elapsed = time.perf_counter() - start
    return weights, elapsed, elapsed


def _vegas(dim: int, weights_at: Callable[[np.ndarray], np.ndarray], n: int,
           args: argparse.Namespace) -> tuple[np.ndarray, float, float]:
    """VEGAS (the ``vegas`` package) adapted on a chart ``weights_at`` of the unit hypercube of ``dim``
    dimensions (points (m, dim) -> weights (m,) of the uniform chart), then one pass of about n points
    drawn from its map: weights (n,), seconds of that pass and in total."""
    import vegas

    start = time.perf_counter()
    integrator = vegas.Integrator(dim * [[0.0, 1.0]])
    integrator(vegas.lbatchintegrand(weights_at), nitn=args.vegas_iterations, neval=args.vegas_evaluations)
    adapted = time.perf_counter()
    integrator.set(neval=n)
    points, jacobians = [], []
    for u, jacobian in integrator.random_batch():
        points.append(np.array(u))
        jacobians.append(np.array(jacobian))
    u, jac = np.concatenate(points), np.concatenate(jacobians)
    # over one pass sum(jacobian * f) estimates the integral: per event f * jacobian * (points in the pass)
    weights = weights_at(u) * jac * len(u)
    done = time.perf_counter()
    return weights, done - adapted, done - start


def vegas_weights(target: Target, n: int, args: argparse.Namespace) -> tuple[np.ndarray, float, float]:
    """VEGAS adapted on RAMBO's chart (4N uniforms -> q -> p, constant Jacobian V_N)."""
    return _vegas(4 * target.n_particles, lambda u: chart_weights(target, u), n, args)


def madspace_weights(target: Target, n: int, args: argparse.Namespace) -> tuple[np.ndarray, float, float]:
    """madspace's leptonic phase-space map (time-like invariants as 1/s^p, p = --madspace-power) as the
    chart, a VEGAS grid adapted on its random numbers."""
    import madspace

    mapping = madspace.PhaseSpaceMapping([0.0] * (target.n_particles + 2), target.sqrt_s, leptonic=True,
                                         invariant_power=args.madspace_power,
                                         mode=madspace.PhaseSpaceMapping.TChannelMode.propagator)
    to_lipsgen = (2 * math.pi) ** (3 * target.n_particles - 4)  # madspace's dPhi carries (2 pi)^(4 - 3N)

    def weights_at(u: np.ndarray) -> np.ndarray:
        momenta, _, _, jacobian = (np.asarray(a) for a in mapping.map_forward([np.ascontiguousarray(u)]))
        events = torch.from_numpy(np.ascontiguousarray(momenta[:, 2:]))  # beams first
        # madspace conserves to ~1e-12: lipsgen's exact projection, a change of 1 + O(1e-12) in the density
        events = rambo_map(events[..., 1:], sqrt_s=target.sqrt_s).p
        return target.log_density(events).exp().numpy() * jacobian * to_lipsgen

    return _vegas(mapping.random_dim(), weights_at, n, args)


def madnis_weights(target: Target, n: int, args: argparse.Namespace) -> tuple[np.ndarray, float, float]:
    """MadNIS (the ``madnis`` package, its default flow and loss) trained on RAMBO's chart."""
    from madnis.integrator import Integrator

    start = time.perf_counter()
    torch.manual_seed(0)

    def integrand(u: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(chart_weights(target, u.detach().double().cpu().numpy())).to(u)

    integrator = Integrator(integrand, dims=4 * target.n_particles, batch_size=1024)
    for _ in range(args.madnis_steps):
        integrator.train_step()
    trained = time.perf_counter()
    with torch.no_grad():
        batch = integrator.sample(n)
    weights = batch.weights.double().numpy()
    done = time.perf_counter()
    return weights, done - trained, done - start


PEERS: dict[str, Callable[[Target, int, argparse.Namespace], tuple[np.ndarray, float, float]]] = {
    "flat": flat_weights, "vegas": vegas_weights, "madspace": madspace_weights, "madnis": madnis_weights}


def add_peer_options(parser: argparse.ArgumentParser) -> None:
    """The peers' settings, shared with bench/bases_study.py."""
    parser.add_argument("--vegas-iterations", type=int, default=10)
    parser.add_argument("--vegas-evaluations", type=int, default=100_000)
    parser.add_argument("--madnis-steps", type=int, default=1000)
    parser.add_argument("--madspace-power", type=float, default=0.8,
                        help="madspace's invariant power p (1/s^p; its default 0.8)")


def _sample_weights(model_path: Path, target: Target, n: int, steps: int | None) -> tuple[np.ndarray, float]:
    model, _ = load_model(model_path)
    start = time.perf_counter()
    parts = []
    for i in range(math.ceil(n / 10_000)):
        out = model.sample(min(10_000, n - 10_000 * i), seed=100 + i, steps=steps, density=True)
        log_w = log_event_weights(target.log_density(out.events), out.log_density, n_particles=target.n_particles,
                                  sqrt_s=target.sqrt_s)
        parts.append(log_w.exp().numpy())
    return np.concatenate(parts), time.perf_counter() - start


def run_nf(target: Target, n: int, args: argparse.Namespace) -> dict[str, float]:
    start = time.perf_counter()
    config, settings = resolve_preset("cpu", ModelConfig("nf", target.n_particles, target=target.name))
    settings.steps, settings.batch_size = args.nf_steps, args.nf_batch
    settings.warmup_steps = min(settings.warmup_steps, args.nf_steps // 10)
    with tempfile.TemporaryDirectory() as work:
        result = train(None, config, settings, work, density=target, progress=False,
                       data_attributes={"target": target.name, **target.parameters()})
        weights, seconds = _sample_weights(result.model_path, target, n, None)
    return summary(weights, seconds, time.perf_counter() - start)


def run_fm_z(target: Target, n: int, args: argparse.Namespace) -> dict[str, float]:
    start = time.perf_counter()
    events = target.sample(args.fm_events, seed=3)
    config, settings = resolve_preset("cpu", ModelConfig("fm-z", target.n_particles, target=target.name))
    settings.steps = min(settings.steps, args.fm_steps)
    with tempfile.TemporaryDirectory() as work:
        result = train(events, config, settings, work, progress=False)
        weights, seconds = _sample_weights(result.model_path, target, min(n, args.fm_samples), args.fm_ode_steps)
    return summary(weights, seconds, time.perf_counter() - start)


def run_peer(name: str) -> Callable[[Target, int, argparse.Namespace], dict[str, float]]:
    def run(target: Target, n: int, args: argparse.Namespace) -> dict[str, float]:
        return summary(*PEERS[name](target, n, args))

    return run


METHODS = {**{name: run_peer(name) for name in PEERS}, "nf": run_nf, "fm-z": run_fm_z}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="qqg,muon,antenna5,antenna10")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--events", type=int, default=100_000, help="weighted events per method")
    add_peer_options(parser)
    parser.add_argument("--nf-steps", type=int, default=2000)
    parser.add_argument("--nf-batch", type=int, default=1024)
    parser.add_argument("--fm-events", type=int, default=100_000)
    parser.add_argument("--fm-steps", type=int, default=15_000)
    parser.add_argument("--fm-samples", type=int, default=20_000)
    parser.add_argument("--fm-ode-steps", type=int, default=25)
    parser.add_argument("--out", type=Path, default=Path("integration.json"))
    parser.add_argument("--table-only", action="store_true", help="print the Markdown table of --out and stop")
    args = parser.parse_args()
    if args.table_only:
        print_table(json.loads(args.out.read_text())["results"])
        return
    results: dict[str, dict[str, dict[str, float] | str]] = {}
    if args.out.exists():
        results = json.loads(args.out.read_text()).get("results", {})
    print(machine(), flush=True)
    for name in args.targets.split(","):
        target = TARGETS[name]()
        results.setdefault(name, {})
        for method in args.methods.split(","):
            if method == "fm-z" and name.startswith("antenna"):
                results[name][method] = "no event sampler for this target: fm-z trains on events"
                continue
            row = METHODS[method](target, args.events, args)
            results[name][method] = row
            print(f"{name:10s} {method:7s} integral {row['integral']:.5g} +- {row['integral_error']:.2g}  "
                  f"rel std {row['relative_std']:.3g}  ESS/ev {row['ess_per_event']:.3g}  "
                  f"eff {row['unweighting_efficiency']:.3g} (reduced {row['unweighting_efficiency_reduced']:.3g})  "
                  f"unweighted/s {row['unweighted_per_second']:.3g}  total {row['total_seconds']:.0f} s", flush=True)
            args.out.write_text(json.dumps({"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()},
                                            "results": results}, indent=2))


def print_table(results: dict[str, dict[str, dict[str, float] | str]]) -> None:
    print("| target | method | integral | rel. std | ESS / event | unweighting eff. (max; reduced) "
          "| unweighted ev/s | total (s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for target, rows in results.items():
        for method, row in rows.items():
            if isinstance(row, str):
                print(f"| {target} | {method} | {row} |  |  |  |  |  |")
                continue
            print(f"| {target} | {method} | {row['integral']:.4g} ± {row['integral_error']:.2g} | "
                  f"{row['relative_std']:.3g} | {row['ess_per_event']:.3g} | {row['unweighting_efficiency']:.3g}; "
                  f"{row['unweighting_efficiency_reduced']:.3g} | {row['unweighted_per_second']:.3g} | "
                  f"{row['total_seconds']:.0f} |")


if __name__ == "__main__":
    main()

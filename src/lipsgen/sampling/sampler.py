"""Sampling a trained model into an event file, with trajectories and partial (noise-then-denoise) runs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import torch

from .._version import __version__
from ..conservation import conservation_metric
from ..distributed import SINGLE_PROCESS, World, gather_to_main
from ..errors import CutsNotLearnedError
from ..io.atomic import atomic_output
from ..io.errors import EventFileError
from ..io.formats import event_format, load_events
from ..models.model import GenerativeModel
from ..progress import progress_bar
from ..random import derived_generator
from ..targets.density import Density, checked_log_density
from ..weights import log_event_weights, summarise_weights

__all__ = ["sample_to_file", "partial_start", "load_partial_data"]


def load_partial_data(model: GenerativeModel, data_path: str | os.PathLike[str], n_events: int) -> torch.Tensor:
    """The first ``n_events`` events (n, N, 4) of a data file, checked against the model."""
    config = model.config
    events, attributes = load_events(data_path, sqrt_s=config.sqrt_s)
    if events.shape[1] != config.n_particles:
        raise EventFileError(f"{data_path}: {events.shape[1]} particles, the model has {config.n_particles}")
    target = attributes.get("target")
    if target not in (None, config.target):
        raise EventFileError(f"{data_path}: target {target!r}, the model was trained on {config.target!r}")
    if len(events) < n_events:
        raise EventFileError(f"{data_path}: has {len(events)} events, {n_events} requested")
    return events[:n_events]


def partial_start(model: GenerativeModel, events: torch.Tensor, t: float, generator: torch.Generator) -> torch.Tensor:
    """Encode events (n, N, 4) into the model's space and noise them to time ``t`` in (0, 1]."""
    if not 0 < t <= 1:
        raise ValueError(f"t must be in (0, 1], got {t}")
    device = next(model.net.parameters()).device
    return model.process.noise(model.space.encode(events, generator).to(device), t, generator)


def sample_to_file(
    model: GenerativeModel,
    n_events: int,
    out: str | os.PathLike[str],
    *,
    steps: int | None = None,
    solver: str | None = None,
    seed: int = 0,
    trajectory: int = 0,
    from_data: str | os.PathLike[str] | None = None,
    t: float | None = None,
    batch_size: int = 10_000,
    attributes: dict[str, Any] | None = None,
    progress: bool | None = None,
    support: Callable[[torch.Tensor], torch.Tensor] | None = None,
    density: Density | None = None,
    world: World = SINGLE_PROCESS,
    symmetry: str | None = None,
) -> Path:
    """Sample ``n_events`` events into an HDF5 file laid out like ``lipsgen data`` output; with
    ``trajectory = K`` also datasets ``trajectory`` (K, events, particles, 4) and
    ``trajectory_times`` (K,), noise end first. ``from_data`` and ``t``: noise the file's first
    events to time t, then denoise (partial run). The conservation metric of the samples is stored
    in the attributes ``conservation_energy``, ``conservation_momentum`` (means, in units of the
    median energy) and ``conservation_max_energy``, ``conservation_max_momentum`` (in sqrt_s).

    ``support`` (e.g. ``target.in_support``) maps events (n, N, 4) to a mask (n,): runs ending
    outside it are rejected and replaced, as a generator applies its generation cuts; the accepted
    fraction is stored as the attribute ``support_acceptance``.

    ``density`` (a target's, or :func:`lipsgen.targets.density.load_density`) makes the events
    weighted: datasets ``weights`` (n,), ``log_model_density`` (``log(g / rho_0)``, see
    :class:`lipsgen.models.SampleOutput`) and ``log_target_density`` (n,), and the weight summary
    in attributes ``weight_*`` (:class:`lipsgen.weights.WeightSummary`).

    ``world`` (torchrun): batch i of ``batch_size`` events is drawn by rank i mod K from the
    generator of (seed, i), exactly as one process draws it, and rank 0 writes the batches in order:
    the file is bit for bit the one-process file. Other ranks write nothing.

    ``symmetry``: draw from the model symmetrised over that relabelling group
    (:mod:`lipsgen.models.symmetry`; default the model's own; attribute ``symmetry``)."""
    if event_format(out) != "hdf5":
        raise ValueError(f"{out}: sample_to_file writes HDF5 (.h5); convert with lipsgen.io.write_events")
    if (from_data is None) != (t is None):
        raise ValueError("a partial run needs both from_data and t")
    if support is not None and from_data is not None:
        raise ValueError("a partial run (from_data) denoises given events one to one; it cannot reject any "
                         "(no support cuts)")
    if from_data is not None and symmetry not in (None, "none"):
        raise ValueError("a partial run (from_data) denoises given events one to one; it cannot relabel them "
                         "(no symmetry)")
    symmetry = "none" if from_data is not None else model.config.symmetry if symmetry is None else symmetry
    if density is not None:
        model.check_density()
        if support is not None or from_data is not None or trajectory:
            raise ValueError("weighted sampling runs full reverse runs without trajectories or cuts (events "
                             "outside the target's support get weight 0)")
    config = model.config
    steps = model.default_steps if steps is None else steps
    if solver is None:
        solver = model.default_solver(density is not None)
    model.process.check_solver(solver)
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    device = next(model.net.parameters()).device
    n_particles = config.n_particles
    meta = {
        "target": config.target, "n_particles": n_particles, "sqrt_s": config.sqrt_s, "model": config.model,
        "steps": steps, "solver": solver, "seed": seed, "exact": model.space.exact,
        "base": config.base, "symmetry": symmetry, "lipsgen_version": __version__, **(attributes or {}),
    }
    if config.masses:
        meta["masses"] = list(config.masses)
    if config.base != "uniform":
        meta["base_parameters"] = json.dumps(model.space.state()["base"])
    if density is not None:
        meta.update(weighted=True, density=density.name, density_normalised=bool(density.density_normalised))
    data = None
    if from_data is not None and t is not None:
        if not 0 < t <= 1:
            raise ValueError(f"t must be in (0, 1], got {t}")
        data = load_partial_data(model, from_data, n_events)
        meta.update(from_data=str(from_data), t=float(t))
    n_batches = -(-n_events // batch_size)
    if world.distributed and support is not None:
        raise ValueError("sampling with cuts (--apply-cuts) draws batches whose sizes follow the acceptance seen "
                         "so far; run it in one process, without torchrun")
    if world.size > n_batches:
        raise ValueError(f"{world.size} ranks but only {n_batches} batch(es) of {batch_size} events: every rank "
                         f"needs a batch; use fewer ranks or a smaller --batch-size")

    def draw(index: int, done: int, size: int) -> dict[str, Any]:
        """Batch ``index``: ``size`` events from the generator of (seed, index), as numpy arrays."""
        gen = derived_generator(seed, "sample", index, device)
        start = None if data is None or t is None else partial_start(model, data[done:done + size], t, gen)
        result = model.sample(size, generator=gen, steps=steps, solver=solver, trajectory=trajectory,
                              start=start, t_start=1.0 if t is None else t, density=density is not None,
                              symmetry=symmetry)
        arrays: dict[str, Any] = {"events": result.events, "trajectory": result.trajectory, "times": result.times}
        if density is not None and result.log_density is not None:
            log_target = model.space.represented_log_density(checked_log_density(density, result.events),
                                                             result.events)
            log_w = log_event_weights(log_target, result.log_density, n_particles=n_particles, sqrt_s=config.sqrt_s,
                                      masses=config.masses)
            arrays.update(weights=log_w.exp(), log_model_density=result.log_density, log_target_density=log_target)
        return {k: None if v is None else v.detach().cpu() for k, v in arrays.items()}

    if not world.is_main:  # compute this rank's batches; rank 0 gathers and writes them
        for _ in _batches_in_order(draw, n_events, batch_size, world):
            pass
        return Path(out)
    path = Path(out)
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        momenta = f.create_dataset("momenta", (n_events, n_particles, 4), dtype="f8")
        states = None
        weighted = {key: f.create_dataset(key, (n_events,), dtype="f8")
                    for key in ("weights", "log_model_density", "log_target_density")} if density else {}
        for key, value in meta.items():
            f.attrs[key] = value
        cut_batches = None if support is None else _CutBatches(draw, n_events, batch_size, support)
        batches = cut_batches or _batches_in_order(draw, n_events, batch_size, world)
        with progress_bar(total=n_events, unit="ev", desc=f"sample {config.model}", enable=progress) as bar:
            for done, arrays in batches:
                events, path_states = arrays["events"], arrays["trajectory"]
                kept = len(events)
                momenta[done:done + kept] = events.numpy()
                for key, dataset in weighted.items():
                    dataset[done:done + kept] = arrays[key].numpy()
                if path_states is not None and arrays["times"] is not None:
                    if states is None:
                        states = f.create_dataset("trajectory", (path_states.shape[0], n_events, n_particles, 4),
                                                  dtype="f8")
                        f.create_dataset("trajectory_times", data=arrays["times"].numpy())
                    states[:, done:done + kept] = path_states.numpy()
                bar.update(kept)
        if cut_batches is not None:
            f.attrs["support_acceptance"] = cut_batches.acceptance
        if density is not None:
            weights = torch.from_numpy(weighted["weights"][...])
            if not bool(torch.isfinite(weights).all()):
                raise FloatingPointError("infinite event weights: the model's density vanishes where the "
                                         "target's does not (its support does not cover the target)")
            for key, value in summarise_weights(weights).as_dict().items():
                f.attrs[f"weight_{key}"] = value
        metric = conservation_metric(torch.from_numpy(momenta[...]), sqrt_s=config.sqrt_s)
        for key, value in metric.as_dict().items():
            f.attrs[f"conservation_{key}"] = value
    return path


Draw = Callable[[int, int, int], dict[str, Any]]


def _batches_in_order(draw: Draw, n_events: int, batch_size: int, world: World) -> Iterator[tuple[int, dict]]:
    """(first event, arrays) of every batch, in order, on rank 0; the batches are drawn round-robin
    by the ranks, K at a time, and gathered. Other ranks draw theirs and yield nothing."""
    offsets = range(0, n_events, batch_size)  # a range, not a list: any number of events
    for first in range(0, len(offsets), world.size):
        mine = first + world.rank
        value = draw(mine, offsets[mine], min(batch_size, n_events - offsets[mine])) if mine < len(offsets) else None
        gathered = gather_to_main(world, value)
        for index, arrays in enumerate(gathered or []):
            if arrays is not None:
                yield offsets[first + index], arrays


class _CutBatches:
    """Batches whose events outside ``support`` are rejected and replaced (one process): each batch
    over-draws by the inverse acceptance seen so far. ``acceptance`` once exhausted."""

    def __init__(self, draw: Draw, n_events: int, batch_size: int,
                 support: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.draw, self.n_events, self.batch_size, self.support = draw, n_events, batch_size, support
        self.acceptance = float("nan")

    def __iter__(self) -> Iterator[tuple[int, dict]]:
        done, index, proposed, passed = 0, 0, 0, 0
        while done < self.n_events:
            inverse = proposed / passed if passed else 2.0 ** min(index + 1, 20)
            size = min(self.batch_size, int(1.1 * inverse * (self.n_events - done)) + 16)
            arrays = self.draw(index, done, size)
            keep = self.support(arrays["events"])
            proposed, passed = proposed + size, passed + int(keep.sum())
            if passed < 1e-3 * proposed and proposed >= 10_000:
                raise CutsNotLearnedError(f"fewer than 1 in 1000 sampled events pass the target's cuts "
                                          f"({passed} of {proposed}); the model has not learned them")
            accepted = keep.nonzero()[:, 0][: self.n_events - done]
            arrays = {k: v if v is None or k == "times" else (v[:, accepted] if k == "trajectory" else v[accepted])
                      for k, v in arrays.items()}
            yield done, arrays
            done, index = done + len(accepted), index + 1
        self.acceptance = passed / proposed

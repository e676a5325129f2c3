"""Reading event files in bounded memory: a uniform subsample, while every event is checked and counted."""

from __future__ import annotations

import math

import pytest
import torch

import lipsgen
from lipsgen.conservation import conservation_metric
from lipsgen.evaluation import EvaluationInputs, evaluate
from lipsgen.io import subsample as module
from lipsgen.io import write_events
from lipsgen.io.subsample import read_subsample
from lipsgen.targets import MuonDecay


def _smeared(n: int, sqrt_s: float) -> torch.Tensor:
    """Events sorted by the first particle's energy (so the file's first events are not typical),
    with a small violation of momentum conservation that differs from event to event."""
    events = MuonDecay(sqrt_s=sqrt_s).sample(n, seed=1)
    kick = 1e-6 * sqrt_s * torch.rand((n, 1), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    events[:, 0, 1:2] += kick
    events[:, 0, 0] = torch.linalg.vector_norm(events[:, 0, 1:], dim=-1)  # still massless
    return events[torch.argsort(events[:, 0, 0])].contiguous()


@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_subsample_is_uniform_and_the_metric_sees_every_event(tmp_path, monkeypatch, suffix, sqrt_s):
    monkeypatch.setattr(module, "READ_CHUNK_EVENTS", 700)  # many chunks
    events = _smeared(20_000, sqrt_s)
    weights = 1 + events[:, 1, 0] / sqrt_s  # a weight that belongs to its event
    path = tmp_path / f"e{suffix}"
    write_events(path, events, {"sqrt_s": sqrt_s}, weights=weights)
    seen: list[int] = []
    read = read_subsample(path, 4000, seed=3, check=lambda e, name, energy: seen.append(len(e)))
    assert sum(seen) == 20_000 and read.n_events == 20_000 and len(read.events) == 4000
    assert read.weights is not None and torch.allclose(read.weights, 1 + read.events[:, 1, 0] / sqrt_s, rtol=0)
    # the kept events are file events, distinct, in file order
    energy = events[:, 0, 0].contiguous()
    index = torch.searchsorted(energy, read.events[:, 0, 0].contiguous())
    assert torch.equal(events[index], read.events) and bool((index[1:] > index[:-1]).all())
    # uniform: the mean of the sorted-on energy matches the file's (the first 4000 would be far below)
    x = energy / sqrt_s
    error = float(x.std()) / math.sqrt(4000)
    assert abs(float(read.events[:, 0, 0].mean() / sqrt_s - x.mean())) < 4 * error
    assert float(x[:4000].mean()) < float(x.mean()) - 10 * error
    full = conservation_metric(events, sqrt_s=sqrt_s)
    assert read.conservation.momentum == pytest.approx(full.momentum, rel=1e-12)
    assert read.conservation.max_momentum == pytest.approx(full.max_momentum, rel=1e-12)
    assert read.conservation.energy == pytest.approx(full.energy, rel=1e-9, abs=1e-15)
    again = read_subsample(path, 4000, seed=3)
    assert torch.equal(again.events, read.events)
    everything = read_subsample(path, None)
    assert torch.equal(everything.events, events) and torch.equal(everything.weights, weights)


def test_evaluate_subsamples_large_files_but_checks_every_event(tmp_path, monkeypatch):
    monkeypatch.setattr(module, "READ_CHUNK_EVENTS", 1000)
    truth, sample = tmp_path / "truth.h5", tmp_path / "s.h5"
    write_events(truth, MuonDecay().sample(3000, seed=1), {"target": "muon", "sqrt_s": 1.0})
    events = MuonDecay().sample(6000, seed=2)
    write_events(sample, events, {"target": "muon", "sqrt_s": 1.0})
    metrics = evaluate(EvaluationInputs(truth, [sample]), tmp_path / "o", max_events=1000)
    m = metrics["samples"]["s"]
    assert (m["n_events"], m["n_evaluated"], metrics["n_truth"], metrics["n_truth_evaluated"]) == (6000, 1000, 3000,
                                                                                                    2000)
    assert abs(m["auc"] - 0.5) < 0.1
    bad = events.clone()
    bad[5500, 0, 0] *= 1.01  # a massive particle, far from any subsample of 1000
    write_events(tmp_path / "bad.h5", bad, {"target": "muon", "sqrt_s": 1.0})
    with pytest.raises(ValueError, match=r"bad.h5 \(events 5000..5999\)"):
        evaluate(EvaluationInputs(truth, [tmp_path / "bad.h5"]), tmp_path / "p", max_events=1000)
    assert lipsgen  # the package imports cleanly alongside

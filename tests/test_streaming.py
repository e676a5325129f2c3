"""Training on data streamed from HDF5 in windows of blocks (issue 12): bounded memory, exact
equality with in-memory training when one window holds the file, and the stated difference
otherwise."""

from __future__ import annotations

import h5py
import pytest
import torch

from conftest import run_cli
from lipsgen import write_events
from lipsgen.io.errors import EventFileError
from lipsgen.models.model import ModelConfig
from lipsgen.targets import MuonDecay
from lipsgen.training import TrainConfig, read_checkpoint, train
from lipsgen.training.streaming import BLOCK_EVENTS, StreamedEvents
from lipsgen.training.trainer import _window_schedule

N_EVENTS = 2 * BLOCK_EVENTS + 5000  # three blocks, the last one short


@pytest.fixture(scope="module")
def muon_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "muon.h5"
    events = MuonDecay().sample(N_EVENTS, seed=5)
    write_events(path, events, {"target": "muon", "sqrt_s": 1.0})
    return path, events


def _net(run) -> dict[str, torch.Tensor]:
    return read_checkpoint(run / "model.pt")["net"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("model", ["zdiff", "langevin"])
def test_one_window_trains_exactly_as_in_memory(tmp_path, muon_file, model):
    path, events = muon_file
    config = ModelConfig(model=model, n_particles=3, target="muon", width=32, depth=2)
    memory = TrainConfig(steps=6, batch_size=256, checkpoint_every=6, warmup_steps=2)
    train(events, config, memory, tmp_path / "memory", progress=False)
    streamed = TrainConfig(steps=6, batch_size=256, checkpoint_every=6, warmup_steps=2, window_events=N_EVENTS)
    train(StreamedEvents(path), config, streamed, tmp_path / "streamed", progress=False)
    assert _same(_net(tmp_path / "memory"), _net(tmp_path / "streamed"))


def test_windows_cover_every_event_once_per_epoch_and_bound_memory(tmp_path, muon_file, monkeypatch):
    path, _ = muon_file
    source = StreamedEvents(path)
    assert source.block_sizes == [BLOCK_EVENTS, BLOCK_EVENTS, 5000]
    config = TrainConfig(steps=10, batch_size=1000, window_events=BLOCK_EVENTS)  # one block per window
    schedule = _window_schedule(source, config, items_per_event=1, batch_size=1000, first_step=0)
    per_epoch: dict[int, dict[int, list[int]]] = {}
    for _ in range(3 * (16 + 16 + 5)):  # three epochs of 16 + 16 + 5 batches
        epoch, window, n_windows, blocks, offset = next(schedule)
        assert n_windows == 3 and len(blocks) == 1
        per_epoch.setdefault(epoch, {}).setdefault(blocks[0], []).append(offset)
    assert sorted(per_epoch) == [0, 1, 2]
    for epoch, blocks in per_epoch.items():
        assert sorted(blocks) == [0, 1, 2], f"epoch {epoch} visits every block once"
        assert {b: len(o) for b, o in blocks.items()} == {0: 16, 1: 16, 2: 5}  # items // batch per window
    assert len({tuple(per_epoch[e]) for e in per_epoch}) > 1, "the block order changes between epochs"
    # resuming mid-epoch continues the same schedule
    again = _window_schedule(source, config, items_per_event=1, batch_size=1000, first_step=20)
    replay = _window_schedule(source, config, items_per_event=1, batch_size=1000, first_step=0)
    for _ in range(20):
        next(replay)
    assert [next(again) for _ in range(30)] == [next(replay) for _ in range(30)]

    # training reads one window at a time
    largest = []
    read = StreamedEvents.read

    def spy(self, blocks):
        events = read(self, blocks)
        largest.append(len(events))
        return events

    monkeypatch.setattr(StreamedEvents, "read", spy)
    model = ModelConfig(model="fm-z", n_particles=3, target="muon", width=32, depth=2)
    train(source, model, TrainConfig(steps=40, batch_size=1000, window_events=BLOCK_EVENTS, checkpoint_every=40),
          tmp_path / "run", progress=False)
    assert max(largest) == BLOCK_EVENTS and len(largest) >= 2


def test_streamed_resume_equals_the_uninterrupted_run(tmp_path, muon_file):
    path, _ = muon_file
    model = ModelConfig(model="fm-z", n_particles=3, target="muon", width=32, depth=2)
    config = TrainConfig(steps=40, batch_size=1000, window_events=BLOCK_EVENTS, checkpoint_every=40)
    train(StreamedEvents(path), model, config, tmp_path / "whole", progress=False)
    train(StreamedEvents(path), model, config, tmp_path / "cut", progress=False, stop_after=23)
    train(StreamedEvents(path), model, config, tmp_path / "cut", progress=False, resume=True)
    assert _same(_net(tmp_path / "whole"), _net(tmp_path / "cut"))
    in_memory = TrainConfig(steps=40, batch_size=1000, checkpoint_every=40)
    train(StreamedEvents(path), model, in_memory, tmp_path / "memory", progress=False)
    assert not _same(_net(tmp_path / "whole"), _net(tmp_path / "memory")), "several windows: a different order"


def test_streaming_from_the_command_line_and_bad_input(tmp_path, muon_file):
    path, events = muon_file
    result = run_cli("train", "--data", str(path), "--model", "fm-z", "--out", str(tmp_path / "r"), "--max-steps", "3",
                     "--window-events", "20000")
    assert result.returncode == 0 and "streamed in windows of 20000" in result.stderr, result.stderr
    result = run_cli("train", "--data", str(path), "--model", "fm-z", "--out", str(tmp_path / "s"),
                     "--window-events", "100", "--batch-size", "50000")
    assert result.returncode == 1 and "smaller than a batch" in result.stderr
    npz = tmp_path / "muon.npz"
    write_events(npz, events[:100], {"target": "muon", "sqrt_s": 1.0})
    result = run_cli("train", "--data", str(npz), "--model", "fm-z", "--out", str(tmp_path / "t"),
                     "--window-events", "10")
    assert result.returncode == 1 and "streaming reads HDF5" in result.stderr
    result = run_cli("train", "--target", "qqg", "--model", "nf", "--out", str(tmp_path / "u"), "--window-events", "10")
    assert result.returncode == 1 and "--window-events" in result.stderr
    # a bad event deep in the file is named when its window is read
    broken = tmp_path / "broken.h5"
    write_events(broken, events, {"target": "muon", "sqrt_s": 1.0})
    with h5py.File(broken, "r+") as f:
        f["momenta"][BLOCK_EVENTS + 7, 1, 0] *= 1.5
    with pytest.raises(EventFileError, match=f"events {BLOCK_EVENTS}..{2 * BLOCK_EVENTS - 1}: event 7, particle 1 "
                       "is not massless"):
        StreamedEvents(broken).read([1])
    model = ModelConfig(model="fm-z", n_particles=3, target="muon", width=32, depth=2)
    with pytest.raises(EventFileError, match=f"events 0..{N_EVENTS - 1}: event {BLOCK_EVENTS + 7}, particle 1 is "
                       "not massless"):
        train(StreamedEvents(broken), model, TrainConfig(steps=60, batch_size=1000, window_events=BLOCK_EVENTS),
              tmp_path / "v", progress=False)  # the fit reads the file's first events, this one among them
    assert not (tmp_path / "v" / "checkpoint.pt").exists()


def test_streamed_events_keep_their_files_energy(tmp_path):
    """A file at sqrt_s = 91.19 streams at 91.19: its events read back unchanged (checked in the CM
    frame at that energy), and max_events is capped at the file's length."""
    events = MuonDecay(sqrt_s=91.19).sample(3000, seed=6)
    path = tmp_path / "z.h5"
    write_events(path, events, {"target": "muon", "sqrt_s": 91.19})
    source = StreamedEvents(path, max_events=10**9)
    assert source.sqrt_s == 91.19 and source.n_events == 3000 and source.attributes["sqrt_s"] == 91.19
    assert torch.allclose(source.read([0]), events, rtol=0, atol=1e-12 * 91.19)
    assert torch.allclose(source.fit_sample(), events, rtol=0, atol=1e-12 * 91.19)

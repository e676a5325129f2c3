"""Outputs: the suffix decides the format, nothing is overwritten without --force, inputs never."""

from __future__ import annotations

import pytest
import torch

from conftest import run_cli
from lipsgen.io import read_events, write_events
from lipsgen.targets import MuonDecay


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    data = folder / "muon.h5"
    write_events(data, MuonDecay().sample(300, seed=1), {"target": "muon", "sqrt_s": 1.0, "n_particles": 3})
    assert run_cli("train", "--data", str(data), "--model", "fm-z", "--max-steps", "2",
                   "--out", str(folder / "run")).returncode == 0
    return data, folder / "run" / "model.pt"


@pytest.mark.parametrize("suffix", [".lhe", ".lhe.gz", ".npz", ".h5"])
def test_data_writes_the_format_its_suffix_names(tmp_path, suffix):
    out = tmp_path / f"m{suffix}"
    assert run_cli("data", "muon", "--events", "40", "--out", str(out), "--seed", "4").returncode == 0
    events, attributes = read_events(out)
    assert torch.equal(events, MuonDecay().sample(40, seed=4))
    assert attributes["target"] == "muon" and attributes["seed"] == 4


def test_unknown_suffixes_are_refused_before_any_work(tmp_path):
    result = run_cli("data", "muon", "--events", "40", "--out", str(tmp_path / "m.txt"))
    assert result.returncode == 1 and "unknown event-file type" in result.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("suffix", [".lhe", ".npz"])
def test_sample_writes_the_format_its_suffix_names(tmp_path, trained, suffix):
    _, model = trained
    out = tmp_path / f"s{suffix}"
    assert run_cli("sample", str(model), "--events", "30", "--out", str(out), "--seed", "2").returncode == 0
    reference = tmp_path / "s.h5"
    assert run_cli("sample", str(model), "--events", "30", "--out", str(reference), "--seed", "2").returncode == 0
    events, attributes = read_events(out)
    assert torch.equal(events, read_events(tmp_path / "s.h5")[0])
    assert attributes["model"] == "fm-z" and attributes["target"] == "muon"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, "s.h5"])  # no temporary left
    result = run_cli("sample", str(model), "--events", "3", "--out", str(tmp_path / "t.lhe"), "--trajectory", "2")
    assert result.returncode == 1 and "HDF5 files only" in result.stderr


def test_existing_outputs_need_force(tmp_path, trained):
    data, model = trained
    out = tmp_path / "x.h5"
    out.write_bytes(b"precious")
    for args in (["data", "muon", "--events", "5"], ["sample", str(model), "--events", "5"],
                 ["convert", str(data)]):
        command = args + ([str(out)] if args[0] == "convert" else ["--out", str(out)])
        result = run_cli(*command)
        assert result.returncode == 1 and "already exists; pass --force" in result.stderr, args
        assert out.read_bytes() == b"precious"
        assert run_cli(*command, "--force").returncode == 0
        out.write_bytes(b"precious")


def test_inputs_are_never_overwritten(tmp_path, trained):
    data, model = trained
    before = model.read_bytes(), data.read_bytes()
    for args in (["sample", str(model), "--events", "5", "--out", str(model), "--force"],
                 ["sample", str(model), "--events", "5", "--from-data", str(data), "--t", "0.5", "--out", str(data),
                  "--force"],
                 ["convert", str(data), str(data), "--force"]):
        result = run_cli(*args)
        assert result.returncode == 1 and "is also an input of this command" in result.stderr, args
    assert (model.read_bytes(), data.read_bytes()) == before


def test_evaluate_replaces_a_report_only_with_force_and_keeps_other_files(tmp_path):
    truth, samples = tmp_path / "t.h5", tmp_path / "s.h5"
    write_events(truth, MuonDecay().sample(400, seed=1), {"target": "muon", "sqrt_s": 1.0})
    write_events(samples, MuonDecay().sample(400, seed=2), {"target": "muon", "sqrt_s": 1.0})
    report = tmp_path / "report"
    args = ["evaluate", "--truth", str(truth), "--samples", str(samples), "--out", str(report), "--batches", "2"]
    assert run_cli(*args).returncode == 0
    (report / "trajectory_x_1.png").write_bytes(b"a picture the report did not draw")
    result = run_cli(*args)
    assert result.returncode == 1 and "already holds a report; pass --force" in result.stderr
    import socket
    stale = report / f".lipsgen-evaluate.{socket.gethostname()}.999999999.x.tmp"  # a killed evaluate's (no such pid)
    stale.mkdir()
    (stale / "hist_x_1.png").write_bytes(b"half a report")
    assert run_cli(*args, "--force").returncode == 0
    assert not stale.exists()
    # the earlier report's own stale pictures go (tests/test_evaluation.py); a file it did not write stays
    assert (report / "trajectory_x_1.png").read_bytes() == b"a picture the report did not draw"
    assert (report / "metrics.json").exists()


def _start_a_long_write(folder):
    """A ``lipsgen data`` run writing ``folder/big.h5`` for minutes, once its temporary file exists."""
    import os
    import subprocess
    import sys
    import time

    process = subprocess.Popen([sys.executable, "-m", "lipsgen", "data", "uniform", "--particles", "10",
                                "--events", "20000000", "--out", str(folder / "big.h5"), "--seed", "1"],
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "CI": "true"})
    deadline = time.monotonic() + 60
    while not list(folder.glob(".big.h5.*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(folder.glob(".big.h5.*")), "the write never started"
    return process


def test_sigterm_while_writing_leaves_nothing(tmp_path):
    """kill / timeout during a write: the temporary file is removed, the exit status is 143."""
    import signal

    process = _start_a_long_write(tmp_path)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and "interrupted; no output was left half-written" in stderr
    assert not list(tmp_path.iterdir())


def test_what_a_killed_writer_left_is_removed_by_the_next_write(tmp_path):
    """SIGKILL gives no chance to clean up: the next write of the same output removes the dead
    process's temporary file, and leaves alone one of a live process."""
    import signal

    from lipsgen.io.atomic import atomic_output, temporary_prefix

    out = tmp_path / "big.h5"
    process = _start_a_long_write(tmp_path)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    left = list(tmp_path.glob(".big.h5.*"))
    assert len(left) == 1 and f".{process.pid}." in left[0].name, "the killed write left no temporary file"
    live = tmp_path / f"{temporary_prefix('big.h5')}live.tmp"  # this process's: alive
    live.write_bytes(b"")
    with atomic_output(out) as tmp:
        tmp.write_bytes(b"done")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["big.h5", live.name])
    assert out.read_bytes() == b"done"


def test_a_dropped_sigterm_still_stops_the_write(tmp_path, monkeypatch):
    """Python drops an exception raised by a signal handler inside a weakref callback (h5py frees
    objects through them): the recorded request still stops the write and nothing is published."""
    import lipsgen.errors as errors
    from lipsgen.errors import Terminated, request_termination

    monkeypatch.setattr(errors, "_received", None)
    with pytest.raises(Terminated):
        request_termination()  # as if its raise had been swallowed: only the record remains
    with pytest.raises(Terminated):
        write_events(tmp_path / "e.h5", MuonDecay().sample(100, seed=1), {"target": "muon"})
    assert not list(tmp_path.iterdir())


def test_sample_refuses_outputs_that_cannot_fit_before_any_work(tmp_path, monkeypatch):
    import os
    import shutil
    from collections import namedtuple

    from conftest import run_cli
    from lipsgen.models.model import ModelConfig
    from lipsgen.targets import MuonDecay
    from lipsgen.training import TrainConfig, train

    train(MuonDecay().sample(200, seed=1), ModelConfig(model="fm-z", n_particles=3, target="muon", width=16, depth=1,
                                                       time_dim=8),
          TrainConfig(steps=2, batch_size=64, checkpoint_every=2, warmup_steps=1), tmp_path / "m", progress=False)
    model = str(tmp_path / "m" / "model.pt")
    # a machine with 100 GiB of free disk and 24 GiB of memory, whatever this one has
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(2**40, 0, 100 * 2**30))
    sysconf = os.sysconf
    monkeypatch.setattr(os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 6 * 2**20}.get(name)
                        or sysconf(name))
    for name, message in (("huge.h5", "the disk has 100 GiB free"), ("huge.lhe", "the disk has 100 GiB free"),
                          ("big.npz", "are written from memory")):
        events = "1e12" if name.startswith("huge") else "5e8"
        result = run_cli("sample", model, "--events", events, "--out", str(tmp_path / name))
        assert result.returncode == 1 and message in result.stderr, (name, result.stderr)
        assert not (tmp_path / name).exists()


def test_data_refuses_an_output_the_file_size_limit_cannot_hold(tmp_path):
    """A full disk or ``ulimit -f`` once crashed HDF5 half-way (segfault in its clean-up): refuse first."""
    import resource
    import subprocess
    import sys

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (200 * 1024, resource.RLIM_INFINITY))

    result = subprocess.run([sys.executable, "-m", "lipsgen", "data", "muon", "--events", "200000", "--out",
                             str(tmp_path / "x.h5")], preexec_fn=limit_files, capture_output=True, text=True)
    assert result.returncode == 1 and "file-size limit of 0.195 MiB (ulimit -f)" in result.stderr, result.stderr
    assert not list(tmp_path.iterdir())
    small = subprocess.run([sys.executable, "-m", "lipsgen", "data", "muon", "--events", "100", "--out",
                            str(tmp_path / "s.h5")], preexec_fn=limit_files, capture_output=True, text=True)
    assert small.returncode == 0, small.stderr


def test_an_output_created_meanwhile_by_another_command_is_not_overwritten(tmp_path):
    from lipsgen.io.atomic import atomic_output

    target = tmp_path / "events.h5"
    with pytest.raises(FileExistsError, match="written meanwhile by another command"):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"ours")
            target.write_bytes(b"the other command's result")  # finished first
    assert target.read_bytes() == b"the other command's result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.h5"]
    with atomic_output(target) as tmp:  # it existed when this write began: --force replaces it
        tmp.write_bytes(b"forced")
    assert target.read_bytes() == b"forced"

"""torch.distributed: training and sampling under torchrun on 2 CPU processes (Gloo), issue 12.

Each torchrun start costs a few seconds (three Python processes importing torch), so the runs are
tiny: their point is equality with the one-process run, which does not need long training.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import run_cli
from lipsgen import write_events
from lipsgen.distributed import World
from lipsgen.models.model import GenerativeModel, ModelConfig
from lipsgen.sampling import sample_to_file
from lipsgen.targets import MuonDecay
from lipsgen.training import TrainConfig, read_checkpoint, train


def torchrun(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "lipsgen", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def muon_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "muon.h5"
    write_events(path, MuonDecay().sample(3000, seed=1), {"target": "muon", "sqrt_s": 1.0})
    return path


def _net(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["net"]


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


# A batch of 63 splits 32/31 over two ranks, so each rank's loss must be weighted by its share.
TRAIN = ("--max-steps", "8", "--batch-size", "63", "--seed", "3")


@pytest.mark.parametrize("model", ["fm-z", "zdiff", "langevin", "nf"])
def test_two_ranks_follow_the_one_process_optimisation(tmp_path, muon_file, model):
    """Tolerance: the ranks' gradients are the one-process gradient summed in a different order, a
    float32 rounding difference (~1e-7 relative) that eight Adam steps (lr 1e-3) keep below 1e-5 in
    every parameter; a rank with its own random numbers, or unweighted shares, moves parameters by
    ~lr = 1e-3 in one step."""
    one = run_cli("train", "--data", str(muon_file), "--model", model, "--out", str(tmp_path / "one"), *TRAIN)
    assert one.returncode == 0, one.stderr
    two = torchrun("train", "--data", str(muon_file), "--model", model, "--out", str(tmp_path / "two"), *TRAIN,
                   cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    assert "on 2 ranks" in two.stderr and two.stderr.count("trained ") == 1, "rank 0 alone reports"
    a, b = read_checkpoint(tmp_path / "one" / "model.pt"), read_checkpoint(tmp_path / "two" / "model.pt")
    assert b["world_size"] == 2 and a["step"] == b["step"] == 8
    assert _max_difference(a["net"], b["net"]) < 1e-5
    assert _max_difference(a["ema"], b["ema"]) < 1e-5
    loss_one = float(one.stderr.split("final loss ")[1].split(";")[0])
    loss_two = float(two.stderr.split("final loss ")[1].split(";")[0])
    assert loss_two == pytest.approx(loss_one, rel=1e-4)


def test_resume_under_two_ranks_equals_the_uninterrupted_run(tmp_path, muon_file):
    args = ("train", "--data", str(muon_file), "--model", "fm-z", "--max-steps", "10", "--batch-size", "64")
    whole = torchrun(*args, "--out", str(tmp_path / "whole"), cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    first = torchrun(*args, "--out", str(tmp_path / "cut"), "--stop-after", "4", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert read_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 4
    assert not (tmp_path / "cut" / "model.pt").exists()
    second = torchrun(*args, "--out", str(tmp_path / "cut"), "--resume", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    whole_net, cut_net = _net(tmp_path / "whole" / "model.pt"), _net(tmp_path / "cut" / "model.pt")
    assert all(torch.equal(whole_net[k], cut_net[k]) for k in whole_net)

    # resuming on another number of ranks is refused, and the checkpoint is left as it was
    checkpoint = tmp_path / "cut" / "checkpoint.pt"
    before = checkpoint.read_bytes()
    refused = run_cli(*args, "--out", str(tmp_path / "cut"), "--resume", "--max-steps", "12")
    assert refused.returncode == 1 and "2 rank(s), resumed on 1" in refused.stderr
    assert checkpoint.read_bytes() == before


def test_distributed_sampling_is_bit_identical(tmp_path, muon_file):
    trained = run_cli("train", "--data", str(muon_file), "--model", "fm-z", "--out", str(tmp_path / "run"),
                      "--max-steps", "5")
    assert trained.returncode == 0, trained.stderr
    model = str(tmp_path / "run" / "model.pt")
    # 4 batches (the last one short) over 2 ranks; weighted, with the model's density per event
    common = ("sample", model, "--events", "1000", "--batch-size", "300", "--seed", "7", "--steps", "6")
    for extra, name in (((), "plain"), (("--weights",), "weighted"), (("--trajectory", "3"), "trajectory")):
        one = run_cli(*common, *extra, "--out", str(tmp_path / f"{name}_1.h5"))
        assert one.returncode == 0, one.stderr
        two = torchrun(*common, *extra, "--out", str(tmp_path / f"{name}_2.h5"), cwd=tmp_path)
        assert two.returncode == 0, two.stderr
        with h5py.File(tmp_path / f"{name}_1.h5") as a, h5py.File(tmp_path / f"{name}_2.h5") as b:
            assert sorted(a) == sorted(b)
            for key in a:
                assert np.array_equal(a[key][...], b[key][...]), f"{name}: dataset {key} differs"
            assert {k: str(v) for k, v in a.attrs.items()} == {k: str(v) for k, v in b.attrs.items()}
    assert not list(tmp_path.glob(".*.h5")), "no temporary files left"


def test_a_rank_dying_leaves_the_last_checkpoint_intact(tmp_path, muon_file):
    args = ["train", "--data", str(muon_file), "--model", "fm-z", "--out", str(tmp_path / "run"), "--batch-size", "64"]
    first = torchrun(*args, "--max-steps", "3000", "--stop-after", "5", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    env = {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                                 "2", "-m", "lipsgen", *args, "--resume"], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        rank_one = None
        deadline = time.monotonic() + 120
        while rank_one is None and time.monotonic() < deadline:
            time.sleep(0.5)
            for pid in _descendants(launcher.pid):
                if _environment(pid).get("RANK") == "1" and "lipsgen" in _command(pid):
                    rank_one = pid
        assert rank_one is not None, "rank 1 never started"
        time.sleep(4)  # let both ranks train for a while
        os.kill(rank_one, signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=180)
    finally:
        launcher.kill()
    assert launcher.returncode != 0, "the job fails when a rank dies"
    state = read_checkpoint(checkpoint)  # verifies the digest of every tensor
    assert state["step"] % 1000 == 5 % 1000 or state["step"] % 1000 == 0
    assert not (tmp_path / "run" / "model.pt").exists()
    again = torchrun(*args, "--max-steps", "3000", "--resume", "--stop-after", "2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert read_checkpoint(checkpoint)["step"] == state["step"] + 2


def _descendants(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        children += [int(c) for c in text.split()]
    return children + [d for c in children for d in _descendants(c)]


def _environment(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_bad_distributed_setups_are_refused_before_any_work(tmp_path, muon_file, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    result = run_cli("train", "--data", str(muon_file), "--model", "fm-z", "--out", str(tmp_path / "r"))
    assert result.returncode == 1 and "MASTER_ADDR, MASTER_PORT not set" in result.stderr
    assert "torchrun" in result.stderr
    assert not (tmp_path / "r").exists()
    monkeypatch.setenv("RANK", "x")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29999")
    result = run_cli("sample", str(tmp_path / "m.pt"), "--events", "10", "--out", str(tmp_path / "s.h5"))
    assert result.returncode == 1 and "RANK='x' is not an integer" in result.stderr

    # more ranks than batches (sampling) or than events per global batch (training): refused
    # before the process group is needed
    config = ModelConfig(model="fm-z", n_particles=3, target="muon")
    model = GenerativeModel(config)
    with pytest.raises(ValueError, match="2 ranks but only 1 batch"):
        sample_to_file(model, 100, tmp_path / "s.h5", world=World(0, 2), batch_size=100)
    assert not (tmp_path / "s.h5").exists()
    events = MuonDecay().sample(10, seed=1)
    with pytest.raises(ValueError, match="2 ranks but a global batch of 1 events"):
        train(events, config, TrainConfig(steps=2, batch_size=1), tmp_path / "t", world=World(0, 2))
    assert not (tmp_path / "t" / "checkpoint.pt").exists()


def test_langevin_forward_simulation_is_shared_between_ranks_exactly(monkeypatch):
    """Ranks simulate disjoint chain blocks; their results sum to the one-process epoch."""
    from lipsgen.models.processes import langevin

    monkeypatch.setattr(langevin, "CHAIN_BLOCK", 100)  # 350 chains: 4 blocks, 2 + 2 over two ranks
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda tensor: None)  # each rank's own part
    process = langevin.LangevinDiffusion("linear:0.002:0.01:40")
    x0 = torch.randn(350, 3, 3, generator=torch.Generator().manual_seed(1))
    whole = process.prepare_epoch(x0, torch.Generator().manual_seed(2))
    parts = [process.prepare_epoch(x0, torch.Generator().manual_seed(2), World(rank, 2)) for rank in (0, 1)]
    assert all(torch.equal(p["k"], whole["k"]) for p in parts)
    filled = [(p["x"] != 0).flatten(1).any(1) for p in parts]
    assert not (filled[0] & filled[1]).any() and bool((filled[0] | filled[1]).all()), "disjoint, complete"
    assert filled[0].sum() > 0 and filled[1].sum() > 0, "both ranks work"
    assert torch.equal(parts[0]["x"] + parts[1]["x"], whole["x"])


def test_the_main_rank_is_global_rank_zero_and_ranks_lie_inside_the_world(tmp_path, monkeypatch):
    """On a second node local rank 0 is not the main rank (it would write and print twice); a
    RANK equal to WORLD_SIZE is outside the world."""
    from lipsgen.distributed import DistributedError, join_world

    assert World(0, 4, local_rank=0).is_main and not World(2, 4, local_rank=0).is_main
    assert World(0, 4, local_rank=1).is_main
    for name, value in (("WORLD_SIZE", "2"), ("RANK", "2"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "127.0.0.1"),
                        ("MASTER_PORT", "29999")):
        monkeypatch.setenv(name, value)

    def no_group(*args, **kwargs):  # an accepted rank would wait here for peers that never come
        raise AssertionError("joined a process group with a rank outside the world")

    monkeypatch.setattr(torch.distributed, "init_process_group", no_group)
    with pytest.raises(DistributedError, match="RANK=2 is outside WORLD_SIZE=2"):
        join_world(torch.device("cpu"))


@pytest.mark.parametrize("method", ["flow", "few-step"])
def test_distillation_under_two_ranks_follows_the_one_process_run(tmp_path, muon_file, method):
    """A student distilled on 2 ranks (rank 0 makes the teacher's pairs, both read them) ends where
    the one-process run ends; the few-step student's rollout calls the network K times per step."""
    teacher = run_cli("train", "--data", str(muon_file), "--model", "fm-z", "--out", str(tmp_path / "teacher"),
                      "--max-steps", "4")
    assert teacher.returncode == 0, teacher.stderr
    args = ("distill", str(tmp_path / "teacher" / "model.pt"), "--method", method, "--pairs", "300",
            "--teacher-steps", "6", *TRAIN)
    one = run_cli(*args, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    two = torchrun(*args, "--out", str(tmp_path / "two"), cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    a, b = read_checkpoint(tmp_path / "one" / "model.pt"), read_checkpoint(tmp_path / "two" / "model.pt")
    assert b["world_size"] == 2 and a["step"] == b["step"] == 8
    assert torch.equal(read_checkpoint(tmp_path / "one" / "teacher_pairs.pt")["states"],
                       read_checkpoint(tmp_path / "two" / "teacher_pairs.pt")["states"])
    assert _max_difference(a["net"], b["net"]) < 1e-5

"""One source for per-target facts, the catalogue behind the CLI, a fast CLI, one-line errors."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import torch

import lipsgen
from conftest import run_cli
from lipsgen.catalogue import MODEL_HELP, MODEL_KINDS, PRESET_HELP, PRESETS, TARGET_HELP, TARGET_OPTIONS
from lipsgen.errors import CutsNotLearnedError
from lipsgen.evaluation.inputs import describe_truth as _describe_truth
from lipsgen.io import read_events, write_events
from lipsgen.targets import QQG, TARGETS, MuonDecay
from lipsgen.targets.facts import facts_from_attributes
from lipsgen.training import TrainConfig


def test_catalogue_agrees_with_the_library():
    assert set(MODEL_HELP) == set(MODEL_KINDS)
    assert set(PRESET_HELP) == set(PRESETS) and all(set(p) == set(MODEL_KINDS) for p in PRESETS.values())
    assert set(TARGET_OPTIONS) == set(TARGETS) == set(TARGET_HELP)
    for name, options in TARGET_OPTIONS.items():
        parameters = inspect.signature(TARGETS[name]).parameters
        for key, default in options.items():
            assert key in parameters, (name, key)
            expected = parameters[key].default
            assert (default is None and expected is inspect.Parameter.empty) or default == expected, (name, key)


@pytest.mark.parametrize("name, n, labelled, ids, names", [
    ("muon", 3, True, (11, 14, -12), ("e-", "nu_mu", "anti-nu_e")),
    ("qqg", 3, True, (1, -1, 21), ("d", "d~", "g")),
    ("sarge", 5, False, (21,) * 5, ("g",) * 5),
    ("uniform", 4, False, (22,) * 4, ("gamma",) * 4),
])
def test_facts_come_from_the_target_classes(name, n, labelled, ids, names):
    facts = facts_from_attributes({"target": name}, n)
    assert (facts.labelled, facts.pdg_ids, facts.particle_names) == (labelled, ids, names)
    assert facts.has_density == (TARGETS[name].density_normalised is not None)
    assert not facts_from_attributes({"target": name, "permuted": True}, n).labelled


def test_unknown_targets_are_unlabelled_with_their_own_ids():
    facts = facts_from_attributes({"target": "lhe", "pdg_ids": [2, -2, 21]}, 3)
    assert not facts.labelled and facts.pdg_ids == (2, -2, 21) and facts.particle_names == ("u", "u~", "g")
    assert not facts.has_density


def test_report_and_lhe_name_the_particles_alike(tmp_path):
    """The evaluation's particle names and the LHE file's PDG ids come from the same facts."""
    events = QQG(ycut=1e-2).sample(20, seed=1)
    attributes = {"target": "qqg", "ycut": 1e-2, "sqrt_s": 1.0, "n_particles": 3, "seed": 1}
    write_events(tmp_path / "q.lhe", events, attributes)
    back, read_attributes = read_events(tmp_path / "q.lhe")
    assert torch.equal(back, events)
    assert read_attributes["pdg_ids"] == [1, -1, 21]
    _, labelled, names = _describe_truth(read_attributes, 3)
    assert labelled and names == ("d", "d~", "g")


def test_lhe_keeps_the_target_and_its_parameters(tmp_path):
    """Reading lipsgen's own LHE gives back the target (evaluate then accepts it against truth)."""
    truth = MuonDecay().sample(400, seed=1)
    sample = MuonDecay().sample(400, seed=2)
    write_events(tmp_path / "truth.h5", truth, {"target": "muon", "sqrt_s": 1.0, "n_particles": 3})
    write_events(tmp_path / "s.lhe", sample, {"target": "muon", "sqrt_s": 1.0, "n_particles": 3, "seed": 2,
                                              "model": "fm-z", "exact": True})
    _, attributes = read_events(tmp_path / "s.lhe")
    assert attributes["target"] == "muon" and attributes["seed"] == 2 and attributes["model"] == "fm-z"
    result = run_cli("evaluate", "--truth", str(tmp_path / "truth.h5"), "--samples", str(tmp_path / "s.lhe"),
                     "--out", str(tmp_path / "report"), "--batches", "2")
    assert result.returncode == 0, result.stderr


def test_train_config_refuses_unknown_fields():
    values = TrainConfig().to_dict()
    assert TrainConfig.from_dict(values) == TrainConfig()
    with pytest.raises(ValueError, match=r"unknown fields \['momentum'\]"):
        TrainConfig.from_dict({**values, "momentum": 0.9})


def test_cuts_not_learned_is_a_one_line_error(tmp_path, monkeypatch):
    import lipsgen.sampling

    def refuse(*args, **kwargs):
        raise CutsNotLearnedError("fewer than 1 in 1000 sampled events pass the target's cuts (3 of 10000)")

    data = tmp_path / "q.h5"
    write_events(data, QQG(ycut=1e-2).sample(200, seed=1), {"target": "qqg", "ycut": 1e-2, "sqrt_s": 1.0})
    assert run_cli("train", "--data", str(data), "--model", "fm-z", "--max-steps", "2",
                   "--out", str(tmp_path / "run")).returncode == 0
    monkeypatch.setattr(lipsgen.sampling, "sample_to_file", refuse)
    result = run_cli("sample", str(tmp_path / "run" / "model.pt"), "--events", "10", "--out",
                     str(tmp_path / "x.h5"), "--apply-cuts")
    assert result.returncode == 1 and "lipsgen sample: error: fewer than 1 in 1000" in result.stderr


@pytest.mark.parametrize("device, message", [("bogus", "'bogus' is not a torch device"),
                                             ("cuda", "device 'cuda' is not available")])
def test_unusable_devices_are_one_line_errors(tmp_path, device, message):
    data = tmp_path / "m.h5"
    write_events(data, MuonDecay().sample(50, seed=1), {"target": "muon", "sqrt_s": 1.0})
    result = run_cli("train", "--data", str(data), "--model", "fm-z", "--out", str(tmp_path / "r"),
                     "--device", device)
    assert result.returncode == 1 and message in result.stderr
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_help_does_not_load_torch():
    """`lipsgen --help` and argument errors must answer without importing torch (seconds on a
    loaded machine); checked in a fresh interpreter."""
    code = ("import sys\nfrom lipsgen.cli.main import build_parser\nimport lipsgen\n"
            "build_parser().format_help()\nprint(sorted(m for m in ('torch', 'sklearn', 'matplotlib') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_public_api_exposes_what_a_user_needs_first():
    for name in ("QQG", "MuonDecay", "read_events", "write_events", "load_model", "sample_to_file", "evaluate",
                 "train", "uniform_phase_space", "rambo_map"):
        assert name in lipsgen.__all__ and callable(getattr(lipsgen, name))
    with pytest.raises(AttributeError):
        lipsgen.no_such_name  # noqa: B018


def test_redirected_progress_is_logged_as_lines(monkeypatch, capsys):
    from lipsgen.progress import LogLines, progress_bar

    monkeypatch.delenv("CI", raising=False)
    bar = progress_bar(total=100, unit="step", desc="train fm-z")
    assert isinstance(bar, LogLines)  # pytest's captured stderr is not a terminal
    bar.interval = 0.0
    with bar:
        bar.set_postfix(loss="0.25")
        bar.update(40)
    line = capsys.readouterr().err.strip()
    assert line.startswith("train fm-z: 40/100 step, ") and "step/s, ETA " in line and line.endswith("loss 0.25")
    monkeypatch.setenv("CI", "true")
    assert not isinstance(progress_bar(total=5), LogLines)


def test_counts_accept_integral_floats_and_dir_lists_each_name_once():
    import argparse

    from lipsgen.cli.options import positive_int

    assert positive_int("1e6") == 1_000_000 and positive_int("20000") == 20_000
    for bad in ("1.5e0", "0", "-3", "ten", "1e400"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a positive integer"):
            positive_int(bad)
    lipsgen.rambo_map  # noqa: B018 (loads the name lazily)
    names = dir(lipsgen)
    assert len(names) == len(set(names)) and "rambo_map" in names


def test_resume_refuses_what_it_would_otherwise_ignore(tmp_path):
    data, other = tmp_path / "muon.h5", tmp_path / "other.h5"
    for path, seed in ((data, "1"), (other, "2")):
        assert run_cli("data", "muon", "--events", "600", "--out", str(path), "--seed", seed).returncode == 0
    out = str(tmp_path / "run")
    base = ["train", "--data", str(data), "--model", "fm-z", "--out", out]
    assert run_cli(*base, "--max-steps", "6", "--stop-after", "3").returncode == 0
    for extra, message in ((["--lr", "0.5"], "lr: 0.001 in the checkpoint, 0.5 now"),
                           (["--batch-size", "64"], "batch_size: 512 in the checkpoint, 64 now"),
                           (["--seed", "9"], "seed: 0 in the checkpoint, 9 now"),
                           (["--max-events", "300"], "max_events: None in the checkpoint, 300 now"),
                           (["--preset", "paper-muon"], "cannot resume")):
        result = run_cli(*base, "--resume", *extra)
        assert result.returncode == 1 and message in result.stderr, (extra, result.stderr)
    result = run_cli("train", "--data", str(other), "--model", "fm-z", "--out", out, "--resume")
    assert result.returncode == 1 and "trained on other events" in result.stderr
    result = run_cli(*base, "--resume")  # plain --resume continues to the recorded 6 steps
    assert result.returncode == 0 and "6 steps" in result.stderr, result.stderr


def test_a_second_train_into_the_same_folder_is_refused_while_the_first_runs(tmp_path):
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    data = tmp_path / "muon.h5"
    assert run_cli("data", "muon", "--events", "300", "--out", str(data), "--seed", "1").returncode == 0
    with open(out / ".lipsgen-train.lock", "w") as held:  # as the running first train holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_cli("train", "--data", str(data), "--model", "fm-z", "--out", str(out), "--max-steps", "2")
    assert result.returncode == 1 and "another lipsgen train is running into this folder" in result.stderr
    assert not (out / "checkpoint.pt").exists()
    again = run_cli("train", "--data", str(data), "--model", "fm-z", "--out", str(out), "--max-steps", "2")
    assert again.returncode == 0

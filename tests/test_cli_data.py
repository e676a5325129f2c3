import os

import h5py
import numpy as np
import pytest
import torch

import lipsgen
from conftest import run_cli
from lipsgen.cli.main import main
from lipsgen.io import EventFileError, read_events_h5, write_events_h5


def test_data_uniform_writes_events_and_attributes(tmp_path):
    out = tmp_path / "u.h5"
    assert main(["data", "uniform", "--particles", "4", "--events", "1000", "--out", str(out),
                 "--seed", "9", "--sqrt-s", "91.2", "--chunk-size", "300"]) == 0
    with h5py.File(out) as f:
        momenta = f["momenta"]
        assert momenta.shape == (1000, 4, 4) and momenta.dtype == np.float64
        attrs = dict(f.attrs)
    assert attrs["target"] == "uniform" and attrs["n_particles"] == 4
    assert attrs["sqrt_s"] == 91.2 and attrs["seed"] == 9
    assert attrs["lipsgen_version"] == lipsgen.__version__
    events, _ = read_events_h5(out)
    lipsgen.validation.check_events(events, sqrt_s=91.2, cm_rtol=1e-12, mass_rtol=1e-12)
    expected = torch.cat(list(lipsgen.targets.Uniform(4, sqrt_s=91.2).stream(1000, seed=9, chunk_size=300)))
    assert torch.equal(events, expected)
    assert not [p for p in tmp_path.iterdir() if p.name != "u.h5"]  # no temporary left behind


def test_seed_is_recorded_when_not_given(tmp_path):
    out = tmp_path / "u.h5"
    assert main(["data", "uniform", "--particles", "3", "--events", "10", "--out", str(out)]) == 0
    _, attrs = read_events_h5(out)
    seed = attrs["seed"]
    events, _ = read_events_h5(out)
    again = tmp_path / "again.h5"
    main(["data", "uniform", "--particles", "3", "--events", "10", "--out", str(again), "--seed", str(seed)])
    assert torch.equal(read_events_h5(again)[0], events)


@pytest.mark.parametrize(
    "args, message",
    [
        (["data", "uniform", "--particles", "1", "--events", "5"], "need at least 2 particles"),
        (["data", "uniform", "--particles", "3", "--events", "0"], "expected a positive integer"),
        (["data", "uniform", "--particles", "3", "--events", "5", "--sqrt-s", "nan"], "finite positive"),
        (["data", "uniform", "--particles", "3", "--events", "5", "--seed", "-2"], "non-negative"),
        (["data", "uniform", "--particles", "3", "--events", "5", "--bogus"], "unrecognized arguments"),
        (["data", "nosuch"], "invalid choice"),
        (["data", "uniform", "--particles", "3", "--events", "5", "--seed", "99999999999999999999999"],
         "a seed must be below 2^63"),
    ],
)
def test_bad_options_are_refused(tmp_path, args, message):
    result = run_cli(*args, "--out", str(tmp_path / "x.h5"))
    assert result.returncode == 2
    assert message in result.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        (["data", "uniform", "--events", "5"], "the following arguments are required: --particles"),
        (["data", "uniform", "--particles", "3", "--events", "5", "--ycut", "0.1"], "unrecognized arguments: --ycut"),
        (["data", "muon", "--particles", "3", "--events", "5"], "unrecognized arguments: --particles"),
        (["data", "qqg", "--xi-max", "3", "--events", "5"], "unrecognized arguments: --xi-max"),
        (["data", "sarge", "--ycut", "0.01", "--events", "5"], "unrecognized arguments: --ycut"),
    ],
)
def test_options_of_other_targets_are_not_offered(tmp_path, args, message):
    result = run_cli(*args, "--out", str(tmp_path / "x.h5"))
    assert result.returncode == 2 and message in result.stderr
    assert not list(tmp_path.iterdir())


def test_data_help_lists_only_the_targets_own_options():
    result = run_cli("data", "qqg", "--help")
    assert result.returncode == 0 and "--ycut" in result.stdout and "(default 0.001)" in result.stdout
    assert "--xi-max" not in result.stdout and "--particles" not in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["data", "qqg", "--ycut", "0.5", "--events", "5"], "ycut must be a number in (0, 1/3)"),
        (["data", "sarge", "--xi-max", "1", "--events", "5"], "xi_max must be a finite number > 1"),
    ],
)
def test_options_that_do_not_fit_the_target_are_refused(tmp_path, args, message):
    result = run_cli(*args, "--out", str(tmp_path / "x.h5"))
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())


def test_missing_output_folder_is_a_clear_error(tmp_path):
    result = run_cli("data", "uniform", "--particles", "3", "--events", "5",
                     "--out", str(tmp_path / "no" / "x.h5"))
    assert result.returncode == 1
    assert "output folder" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_failed_write_leaves_nothing_and_keeps_old_file(tmp_path):
    out = tmp_path / "x.h5"
    out.write_bytes(b"old")

    def chunks():
        yield lipsgen.uniform_phase_space(5, 3, seed=0)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_events_h5(out, chunks(), n_events=10, n_particles=3, attributes={})
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.h5"]


def test_short_or_misshapen_stream_is_refused(tmp_path):
    with pytest.raises(ValueError, match="got 5 events, expected 10"):
        write_events_h5(tmp_path / "a.h5", iter([torch.zeros(5, 3, 4)]), n_events=10, n_particles=3,
                        attributes={})
    with pytest.raises(ValueError, match="does not fit"):
        write_events_h5(tmp_path / "a.h5", iter([torch.zeros(5, 4, 4)]), n_events=5, n_particles=3,
                        attributes={})
    assert not list(tmp_path.iterdir())


def test_output_file_permissions_follow_umask(tmp_path):
    out = tmp_path / "u.h5"
    main(["data", "uniform", "--particles", "3", "--events", "5", "--out", str(out)])
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_reading_missing_corrupt_and_wrong_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such event file"):
        read_events_h5(tmp_path / "missing.h5")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(EventFileError, match="not a readable HDF5 file"):
        read_events_h5(corrupt)
    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as f:
        f["momenta"] = np.zeros((4, 3, 3))
    with pytest.raises(EventFileError, match=r"shape \(n_events, n_particles, 4\)"):
        read_events_h5(wrong)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["events"] = np.zeros((4, 3, 4))
    with pytest.raises(EventFileError, match="no dataset 'momenta'"):
        read_events_h5(other)
    # A file cut short while being copied.
    good = tmp_path / "good.h5"
    main(["data", "uniform", "--particles", "3", "--events", "20000", "--out", str(good), "--seed", "1"])
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(EventFileError):
        read_events_h5(truncated)


def test_help_everywhere():
    """Every command's and every data target's help formats (argparse %-formats help strings)."""
    import argparse

    from lipsgen.cli.main import build_parser

    def commands(parser: argparse.ArgumentParser, prefix: list[str]):
        yield prefix
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from commands(sub, [*prefix, name])

    found = list(commands(build_parser(), []))
    assert ["train"] in found and ["data", "uniform"] in found
    for args in found:
        result = run_cli(*args, "--help")
        assert result.returncode == 0 and "usage: lipsgen" in result.stdout, (args, result.stderr[-300:])


def test_demo_runs_end_to_end_and_reports(tmp_path):
    out = tmp_path / "d"
    result = run_cli("demo", "--out", str(out), "--events", "3000", "--samples", "600", "--max-steps", "30")
    assert result.returncode == 0, result.stderr
    assert f"report: {out / 'report' / 'report.html'}" in result.stdout
    assert "classifier AUC" in result.stderr
    for name in ("muon_train.h5", "muon_truth.h5", "zdiff/model.pt", "zdiff_samples.h5", "zdiff_trajectory.h5",
                 "report/report.md", "report/report.html", "report/metrics.json", "report/hist_x_3.png",
                 "report/trajectory_x_3.png", "report/conservation.png", "report/trajectory_conservation.png"):
        assert (out / name).stat().st_size > 0, name


@pytest.mark.parametrize("args, message", [(["--samples", "10"], "the evaluation needs at least 40 held-out events"),
                                           (["--device", "bogus"], "'bogus' is not a torch device")])
def test_demo_checks_its_arguments_before_any_work(tmp_path, args, message):
    result = run_cli("demo", "--out", str(tmp_path / "d"), *args)
    assert result.returncode == 1 and message in result.stderr
    assert not (tmp_path / "d").exists()


def test_demo_does_not_replace_an_earlier_run_without_force(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    (out / "muon_train.h5").write_bytes(b"an earlier run's data")
    result = run_cli("demo", "--out", str(out), "--events", "100", "--samples", "50")
    assert result.returncode == 1 and "already holds a demo run (muon_train.h5)" in result.stderr
    assert (out / "muon_train.h5").read_bytes() == b"an earlier run's data"
    assert sorted(p.name for p in out.iterdir()) == ["muon_train.h5"]

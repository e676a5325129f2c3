
import awkward as ak
import numpy as np
import pylhe
import pytest
import torch
import vector

from conftest import run_cli
from lipsgen.cli.main import main
from lipsgen.io import (
    EventFileError,
    from_vector,
    load_events,
    read_events,
    read_weights,
    to_vector,
    write_events,
    write_events_lhe,
)
from lipsgen.kinematics import boost
from lipsgen.targets import QQG, MuonDecay, Sarge, uniform_phase_space
from lipsgen.validation import check_events


@pytest.fixture
def events():
    return QQG(1e-3).sample(500, seed=1)


@pytest.mark.parametrize("name", ["e.h5", "e.npz", "e.lhe", "e.lhe.gz"])
def test_round_trips_are_exact(tmp_path, events, name):
    path = tmp_path / name
    write_events(path, events, {"target": "qqg", "sqrt_s": 1.0, "ycut": 1e-3})
    back, attributes = read_events(path)
    assert torch.equal(back, events)  # LHE is printed with 17 significant digits
    assert attributes["sqrt_s"] == 1.0
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_lhe_has_beams_pdg_ids_and_colour(tmp_path):
    path = tmp_path / "m.lhe"
    write_events(path, MuonDecay().sample(3, seed=2), {"target": "muon", "sqrt_s": 1.0})
    lhe = pylhe.LHEFile.fromfile(path)
    assert (lhe.init.initInfo.beamA, lhe.init.initInfo.beamB) == (11, -11)
    event = next(iter(lhe.events))
    assert [int(p.id) for p in event.particles] == [11, -11, 11, 14, -12]
    assert [int(p.status) for p in event.particles] == [-1, -1, 1, 1, 1]
    path = tmp_path / "g.lhe"
    write_events(path, Sarge(4, 20.0).sample(2, seed=2), {"target": "sarge", "sqrt_s": 1.0})
    gluons = [p for p in next(iter(pylhe.LHEFile.fromfile(path).events)).particles if p.status == 1]
    colours = sorted(int(p.color1) for p in gluons)
    assert colours == sorted(int(p.color2) for p in gluons) and all(c > 0 for c in colours)


def test_lhe_from_other_generators_reads_to_printed_precision(tmp_path, events):
    # pylhe's default format prints 9 significant digits, as many generators do.
    path = tmp_path / "default.lhe"
    init = pylhe.LHEInit(pylhe.LHEInitInfo(11, -11, 0.5, 0.5, 0, 0, 0, 0, 3, 1),
                         [pylhe.LHEProcInfo(1.0, 0.0, 1.0, 1)], [])
    particles = lambda ev: [pylhe.LHEParticle(21, 1, 1, 2, 0, 0, *map(float, (p[1], p[2], p[3], p[0])),
                                              0.0, 0.0, 9.0) for p in ev]
    lhe_events = [pylhe.LHEEvent(pylhe.LHEEventInfo(3, 1, 1.0, 1.0, 0.0, 0.0), particles(ev))
                  for ev in events.numpy()]
    pylhe.LHEFile(init=init, events=lhe_events).tofile(path)
    loaded, attributes = load_events(path)
    torch.testing.assert_close(loaded, events, rtol=1e-8, atol=1e-9)
    assert attributes["pdg_ids"] == [21, 21, 21]
    # one tolerance policy: printed events are projected onto exact phase space, so training and
    # evaluation accept the same file that convert accepts
    check_events(loaded, sqrt_s=1.0)
    assert run_cli("train", "--data", str(path), "--model", "fm-z", "--max-steps", "2",
                   "--out", str(tmp_path / "run")).returncode == 0
    truth = tmp_path / "truth.h5"
    write_events(truth, events, {"sqrt_s": 1.0})
    result = run_cli("evaluate", "--truth", str(truth), "--samples", str(path), "--out", str(tmp_path / "r"),
                     "--batches", "2")
    assert result.returncode == 0, result.stderr


def test_vector_round_trip_is_exact(events):
    array = to_vector(events)
    assert ak.num(array, axis=1).tolist() == [3] * 500
    np.testing.assert_allclose(ak.to_numpy(array.E), events[..., 0].numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(ak.to_numpy(array.mass), 0, atol=1e-7)
    assert torch.equal(from_vector(array), events)
    summed = array[:, 0] + array[:, 1] + array[:, 2]
    np.testing.assert_allclose(ak.to_numpy(summed.E), 1.0, rtol=1e-14)
    with pytest.raises(ValueError, match="same number of particles"):
        from_vector(vector.zip({"E": ak.Array([[1.0], [1.0, 2.0]]), "px": ak.Array([[0.0], [0.0, 0.0]]),
                                "py": ak.Array([[0.0], [0.0, 0.0]]), "pz": ak.Array([[1.0], [1.0, 2.0]])}))


def test_user_events_are_checked_and_boosted_on_request(tmp_path, events):
    moving = boost(events, torch.tensor([[0.0, 0.3, 0.0]] * 500, dtype=torch.float64)) * 91.2
    path = tmp_path / "user.npz"
    write_events(path, moving, {"sqrt_s": 91.2})
    with pytest.raises(EventFileError, match="event 0 is not in its centre-of-momentum frame"):
        load_events(path)
    fixed, attributes = load_events(path, to_cm=True, sqrt_s=1.0)
    torch.testing.assert_close(fixed, events, rtol=1e-9, atol=1e-12)
    assert attributes["sqrt_s"] == 1.0
    massive = events.clone()
    massive[17, 2, 0] *= 1.01
    write_events(path, massive, {"sqrt_s": 1.0})
    for to_cm in (False, True):
        with pytest.raises(EventFileError, match="event 17, particle 2 is not massless"):
            load_events(path, to_cm=to_cm)


def test_lhe_with_changing_final_state_is_refused(tmp_path, events):
    path = tmp_path / "mixed.lhe"
    write_events_lhe(path, [events[:3]], sqrt_s=1.0, pdg_ids=[1, -1, 21])
    text = path.read_text()
    last = text.rfind("<event>")
    text = text[:last] + text[last:].replace("   21   1", "   22   1", 1)
    path.write_text(text)
    with pytest.raises(EventFileError, match="event 2 has outgoing particles"):
        read_events(path)


def test_truncated_and_corrupt_files(tmp_path, events):
    lhe = tmp_path / "e.lhe"
    write_events(lhe, events, {"target": "qqg", "sqrt_s": 1.0})
    cut = tmp_path / "cut.lhe"
    cut.write_text(lhe.read_text()[: len(lhe.read_text()) // 2])
    with pytest.raises(EventFileError, match="corrupt or truncated"):
        read_events(cut)
    junk = tmp_path / "junk.lhe"
    junk.write_text("this is not xml")
    with pytest.raises(EventFileError):
        read_events(junk)
    npz = tmp_path / "e.npz"
    write_events(npz, events, {})
    broken = tmp_path / "broken.npz"
    broken.write_bytes(npz.read_bytes()[:200])
    with pytest.raises(EventFileError, match="not a readable npz file"):
        read_events(broken)
    other = tmp_path / "other.npz"
    np.savez(other, something=np.zeros(3))
    with pytest.raises(EventFileError, match="no array 'momenta'"):
        read_events(other)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, momenta=np.zeros((3, 2, 3)))
    with pytest.raises(EventFileError, match=r"shape \(n_events, n_particles, 4\)"):
        read_events(wrong)
    with pytest.raises(FileNotFoundError, match="no such event file"):
        read_events(tmp_path / "missing.lhe")
    with pytest.raises(ValueError, match="unknown event-file type"):
        read_events(tmp_path / "e.csv")


def test_convert_cli(tmp_path, events):
    source = tmp_path / "in.lhe"
    moving = boost(events, torch.tensor([[0.1, 0.0, 0.2]] * 500, dtype=torch.float64))
    write_events_lhe(source, [moving], sqrt_s=1.0, pdg_ids=[1, -1, 21])
    out = tmp_path / "out.h5"
    assert main(["convert", str(source), str(out)]) == 1  # not in the CM frame: refused
    assert not out.exists()
    assert main(["convert", str(source), str(out), "--to-cm", "--sqrt-s", "1"]) == 0
    converted, attributes = read_events(out)
    torch.testing.assert_close(converted, events, rtol=1e-9, atol=1e-12)
    assert attributes["pdg_ids"] == [1, -1, 21] and attributes["boosted_to_cm"] == 1
    result = run_cli("convert", str(tmp_path / "none.h5"), str(tmp_path / "x.npz"))
    assert result.returncode == 1 and "no such event file" in result.stderr
    assert main(["convert", str(out), str(out)]) == 1


@pytest.mark.parametrize("value", ["one", [1.0, 2.0], -1.0])
def test_a_bad_sqrt_s_attribute_is_refused_naming_the_file(tmp_path, value):
    import h5py

    path = tmp_path / "e.h5"
    write_events(path, uniform_phase_space(5, 3, seed=1), {"target": "uniform", "sqrt_s": 1.0})
    with h5py.File(path, "a") as f:
        f.attrs["sqrt_s"] = value
    with pytest.raises(EventFileError, match=f"{path}: attribute sqrt_s must be"):
        read_events(path)


@pytest.mark.parametrize("sqrt_s", [1.0, 91.18765432])
def test_lhe_round_trip_keeps_sqrt_s_exactly(tmp_path, sqrt_s):
    events = QQG(1e-3, sqrt_s=sqrt_s).sample(200, seed=2)
    path = tmp_path / "e.lhe"
    write_events(path, events, {"target": "qqg", "sqrt_s": sqrt_s, "ycut": 1e-3})
    back, attributes = load_events(path)
    assert attributes["sqrt_s"] == sqrt_s
    assert torch.equal(back, events)


def test_convert_carries_weights_through_every_format(tmp_path):
    events = QQG(1e-3, sqrt_s=91.19).sample(300, seed=3)
    weights = torch.linspace(0.1, 3.0, 300, dtype=torch.float64)
    weights[7] = -0.5  # negative weights (NLO-style files) survive too
    first = tmp_path / "w.h5"
    write_events(first, events, {"target": "qqg", "sqrt_s": 91.19, "ycut": 1e-3, "weighted": True,
                                 "weight_ess_per_event": 0.5}, weights=weights)
    chain = [first, tmp_path / "w.lhe", tmp_path / "w.npz", tmp_path / "w2.h5"]
    for source, target in zip(chain, chain[1:]):
        assert main(["convert", str(source), str(target)]) == 0
        assert torch.equal(read_weights(target), weights), target
        assert torch.equal(read_events(target)[0], events)
    init = pylhe.LHEFile.fromfile(chain[1]).init.initInfo
    assert abs(int(init.weightingStrategy)) == 4


def test_convert_of_unweighted_events_drops_stale_weight_attributes(tmp_path):
    events = QQG(1e-3).sample(50, seed=4)
    source, target = tmp_path / "a.npz", tmp_path / "b.h5"
    write_events(source, events, {"target": "qqg", "sqrt_s": 1.0, "ycut": 1e-3, "weighted": True,
                                  "weight_ess_per_event": 0.5})
    assert main(["convert", str(source), str(target)]) == 0
    attributes = read_events(target)[1]
    assert read_weights(target) is None
    assert "weighted" not in attributes and "weight_ess_per_event" not in attributes


def test_a_file_without_sqrt_s_is_read_at_its_events_energy(tmp_path):
    events = QQG(1e-3, sqrt_s=91.19).sample(100, seed=5)
    path = tmp_path / "bare.npz"
    np.savez(path, momenta=events.numpy())
    back, attributes = load_events(path)
    assert attributes["sqrt_s"] == pytest.approx(91.19, rel=1e-12) and torch.equal(back, events)
    mixed = torch.cat([events, QQG(1e-3, sqrt_s=10.0).sample(100, seed=6)])
    np.savez(path, momenta=mixed.numpy())
    with pytest.raises(EventFileError, match="not in its centre-of-momentum frame at sqrt_s = 1"):  # no common energy
        load_events(path)


@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
def test_lhe_scalup_is_each_events_own_resolution(tmp_path, sqrt_s):
    """SCALUP = the Durham kT of the softest emission (the shower starts below it), sqrt_s without one."""
    from lipsgen.jets.clustering import durham_resolutions

    events = QQG(1e-3, sqrt_s=sqrt_s).sample(300, seed=7)
    path = tmp_path / "qqg.lhe"
    write_events(path, events, {"target": "qqg", "sqrt_s": sqrt_s, "ycut": 1e-3})
    scales = np.array([float(e.eventinfo.scale) for e in pylhe.LHEFile.fromfile(path).events])
    y23 = durham_resolutions(events, [2])[2]  # FastJet's Durham y of the last merge: y_23 s = kT^2
    np.testing.assert_allclose(scales, np.sqrt(y23) * sqrt_s, rtol=1e-9)
    assert (scales < 0.999 * sqrt_s).all()
    muon = tmp_path / "muon.lhe"
    write_events(muon, MuonDecay(sqrt_s=sqrt_s).sample(10, seed=8), {"target": "muon", "sqrt_s": sqrt_s})
    assert all(float(e.eventinfo.scale) == sqrt_s for e in pylhe.LHEFile.fromfile(muon).events)


def test_lhe_at_lipsgens_unit_energy_warns_that_lhe_is_in_gev(tmp_path):
    import warnings

    with pytest.warns(UserWarning, match="LHE energies are in GeV, so this file describes a collision at 1 GeV"):
        write_events(tmp_path / "unit.lhe", QQG(1e-3).sample(5, seed=1), {"target": "qqg", "sqrt_s": 1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_events(tmp_path / "z.lhe", QQG(1e-3, sqrt_s=91.19).sample(5, seed=1), {"target": "qqg", "sqrt_s": 91.19})

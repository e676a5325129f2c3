"""Jets from showered events: Durham clustering, the massless projection, Pythia 8 runs, HepMC3
and LHE input (issue 11)."""

from __future__ import annotations

import itertools
import json
import sys

import h5py
import numpy as np
import pyhepmc
import pytest
import torch

from conftest import run_cli
from lipsgen import uniform_phase_space
from lipsgen.errors import LipsgenError
from lipsgen.generators.pythia import PythiaJets, generate_jets
from lipsgen.io import read_events, write_events
from lipsgen.jets import durham_jets, durham_resolutions, project_jets
from lipsgen.jets.clustering import particles_array
from lipsgen.jets.files import jets_from_file

SQRT_S = 91.1876
ROUNDING = 1e-13  # relative: a few float64 ulps summed over a handful of jets


def _massless_event(n_particles: int, seed: int, n_events: int = 1) -> torch.Tensor:
    return uniform_phase_space(n_events, n_particles, sqrt_s=SQRT_S, generator=torch.Generator().manual_seed(seed))


def _assert_exact(events: torch.Tensor, sqrt_s: float) -> None:
    """Massless and in the CM frame at sqrt_s to float64 rounding."""
    momentum = torch.linalg.vector_norm(events[..., 1:], dim=-1)
    assert ((events[..., 0] - momentum).abs() <= ROUNDING * events[..., 0]).all()
    total = events.sum(dim=1)
    assert ((total[:, 0] - sqrt_s).abs() <= ROUNDING * sqrt_s).all()
    assert (torch.linalg.vector_norm(total[:, 1:], dim=-1) <= ROUNDING * sqrt_s).all()


def _split_into_fragments(event: torch.Tensor, spread: float, rng: np.random.Generator) -> np.ndarray:
    """Each massless particle of ``event`` (N, 4) as three massless fragments whose 3-momenta sum
    to the particle's (transverse kicks of relative size ``spread`` that cancel), all scaled by one
    factor so that the fragments' energies still add up to the event's."""
    fragments = []
    for particle in event.numpy():
        p = particle[1:]
        kicks = rng.normal(size=(3, 3)) * spread * np.linalg.norm(p)
        kicks -= np.outer(kicks @ p, p) / (p @ p)  # transverse
        kicks -= kicks.mean(axis=0)
        for k in kicks:
            q = p / 3 + k
            fragments.append([np.linalg.norm(q), *q])
    fragments = np.array(fragments)
    return fragments * float(event[:, 0].sum()) / fragments[:, 0].sum()


# ---------------------------------------------------------------- Durham clustering


def _durham_by_hand(event: np.ndarray) -> dict[int, float]:
    """y_{k,k+1} of one event (N, 4): merge the closest Durham pair (E scheme) until one is left."""
    q2 = event[:, 0].sum() ** 2
    pseudo = [row for row in event]
    out = {}
    while len(pseudo) > 1:
        best = None
        for i, j in itertools.combinations(range(len(pseudo)), 2):
            a, b = pseudo[i], pseudo[j]
            cos = a[1:] @ b[1:] / (np.linalg.norm(a[1:]) * np.linalg.norm(b[1:]))
            y = 2 * min(a[0], b[0]) ** 2 * (1 - cos) / q2
            if best is None or y < best[0]:
                best = (y, i, j)
        y, i, j = best
        out[len(pseudo) - 1] = y
        merged = pseudo[i] + pseudo[j]
        pseudo = [p for k, p in enumerate(pseudo) if k not in (i, j)] + [merged]
    return out


def test_durham_resolutions_match_the_definition():
    events = _massless_event(5, seed=1, n_events=40)
    got = durham_resolutions(events, [2, 3, 4])
    for index, event in enumerate(events.numpy()):
        expected = _durham_by_hand(event)
        for k in (2, 3, 4):
            assert got[k][index] == pytest.approx(expected[k], rel=1e-9)
    with pytest.raises(ValueError, match="needs at least 6 particles"):
        durham_resolutions(events, [5])


def test_exclusive_jets_recover_narrow_jets_and_the_projection_is_the_identity_for_them():
    rng = np.random.default_rng(3)
    events = _massless_event(3, seed=2, n_events=20)
    particles = particles_array(_split_into_fragments(e, 1e-3, rng) for e in events)
    jets = durham_jets(particles, 3)
    assert jets.shape == (20, 3, 4)
    assert (np.diff(jets[..., 0], axis=1) <= 0).all(), "jets are ordered by decreasing energy"
    mass2 = jets[..., 0] ** 2 - (jets[..., 1:] ** 2).sum(-1)
    assert (mass2 > 0).all(), "narrow but massive jets"
    projected = project_jets(torch.from_numpy(jets), SQRT_S)
    _assert_exact(projected.events, SQRT_S)
    # the fragments' 3-momenta sum to the original particles': the projection gives them back
    original = torch.take_along_dim(events, torch.argsort(events[..., 0], 1, descending=True).unsqueeze(-1), 1)
    torch.testing.assert_close(projected.events, original, rtol=1e-12, atol=1e-12 * SQRT_S)
    assert float(projected.max_rel_energy_change.max()) < 1e-5
    assert float(projected.max_angle.max()) < 1e-12


def test_projection_keeps_directions_and_scales_energies_by_momentum():
    """For CM jets with masses m_j: E'_j = sqrt_s |p_j| / sum |p_k|, directions unchanged, and the
    recorded energy change is max_j |E'_j / E_j - 1| (energies as fractions of the total)."""
    momenta = _massless_event(4, seed=4, n_events=6)[..., 1:].double()
    masses = torch.tensor([0.5, 3.0, 8.0, 1.0], dtype=torch.float64)
    energy = torch.sqrt((momenta**2).sum(-1) + masses**2)
    jets = torch.cat([energy.unsqueeze(-1), momenta], dim=-1)
    projected = project_jets(jets, SQRT_S)
    _assert_exact(projected.events, SQRT_S)
    norm = torch.linalg.vector_norm(momenta, dim=-1)
    expected = torch.cat([norm.unsqueeze(-1), momenta], dim=-1) * SQRT_S / norm.sum(1).reshape(-1, 1, 1)
    order = torch.argsort(expected[..., 0], 1, descending=True).unsqueeze(-1)
    torch.testing.assert_close(projected.events, torch.take_along_dim(expected, order, 1), rtol=1e-13, atol=1e-12)
    torch.testing.assert_close(projected.massive, torch.take_along_dim(jets, order, 1))
    after = expected[..., 0] / SQRT_S
    before = energy / energy.sum(1, keepdim=True)
    torch.testing.assert_close(projected.max_rel_energy_change, (after / before - 1).abs().amax(1))
    assert float(projected.max_angle.max()) < 1e-12
    massive_order = torch.argsort(energy, 1, descending=True)
    torch.testing.assert_close(projected.order_changed, (massive_order != order[..., 0]).any(1))


def test_projection_refuses_a_jet_without_momentum():
    jets = torch.zeros(2, 3, 4, dtype=torch.float64)
    jets[..., 0] = 1.0
    jets[0, :, 1] = torch.tensor([1.0, -0.5, -0.5])
    with pytest.raises(ValueError, match="event 0, jet 1|event 1, jet 0"):
        project_jets(jets, 1.0)


# ---------------------------------------------------------------- Pythia 8


def _pythia_file(tmp_path, name: str, *extra: str) -> tuple[torch.Tensor, dict, h5py.File]:
    out = tmp_path / name
    result = run_cli("data", "pythia", "--events", "300", "--block-size", "100", "--out", str(out), *extra)
    assert result.returncode == 0, result.stderr
    events, attributes = read_events(out)
    return events, attributes, out


def test_pythia_events_are_exact_n_jet_events_reproducible_whatever_the_workers(tmp_path):
    events, attributes, path = _pythia_file(tmp_path, "a.h5", "--jets", "3", "--seed", "5")
    assert events.shape == (300, 3, 4)
    _assert_exact(events, SQRT_S)
    assert attributes["target"] == "pythia" and attributes["n_jets"] == 3 and attributes["level"] == "hadron"
    assert attributes["pythia_version"].startswith("8.3")
    assert "23:onIfAny = 1 2 3 4 5" in attributes["pythia_settings"]
    with h5py.File(path) as f:
        massive = torch.from_numpy(f["massive_jets"][...])
        change = f["projection_max_rel_energy_change"][...]
        multiplicity = f["multiplicity"][...]
    assert massive.shape == events.shape and (multiplicity >= 3).all() and np.median(multiplicity) > 20
    # the projection keeps every jet's direction (events generated in their CM frame)
    unit = lambda p: p[..., 1:] / torch.linalg.vector_norm(p[..., 1:], dim=-1, keepdim=True)
    torch.testing.assert_close(unit(events), unit(massive), rtol=0, atol=1e-12)
    assert 0 < np.median(change) < 0.2 and change.max() == pytest.approx(attributes["projection_rel_energy_change_max"])
    # the massive jets carry all of the event's energy-momentum
    torch.testing.assert_close(massive.sum(1), torch.tensor([SQRT_S, 0, 0, 0], dtype=torch.float64).expand(300, 4),
                               rtol=0, atol=1e-9 * SQRT_S)
    same, _, _ = _pythia_file(tmp_path, "b.h5", "--jets", "3", "--seed", "5", "--workers", "2")
    assert torch.equal(same, events), "the number of workers must not change the events"
    other, _, _ = _pythia_file(tmp_path, "c.h5", "--jets", "3", "--seed", "6")
    assert not torch.equal(other[:100], events[:100])


def test_pythia_parton_level_four_jets(tmp_path):
    events, attributes, path = _pythia_file(tmp_path, "p.h5", "--jets", "4", "--seed", "1", "--level", "parton",
                                            "--sqrt-s", "200")
    assert events.shape == (300, 4, 4)
    _assert_exact(events, 200.0)
    assert attributes["level"] == "parton" and "HadronLevel:all = off" in attributes["pythia_settings"]
    with h5py.File(path) as f:
        assert np.median(f["multiplicity"][...]) < 20, "parton level: no hadrons"
    # events with fewer partons than jets are dropped and counted, never clustered
    assert attributes["events_too_few_particles"] >= 0


def test_pythia_generator_blocks_are_independent_of_their_neighbours():
    process = PythiaJets(3, block_size=50)
    first = [b.jets for b in generate_jets(process, 100, seed=9)]
    alone = [b.jets for b in generate_jets(PythiaJets(3, block_size=50), 50, seed=9)]
    np.testing.assert_array_equal(first[0], alone[0])
    assert not np.array_equal(first[0], first[1]), "each block has its own seed"
    with pytest.raises(ValueError, match="n_jets"):
        PythiaJets(1)
    with pytest.raises(ValueError, match="level"):
        PythiaJets(3, level="detector")  # type: ignore[arg-type]


def test_missing_pythia_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pythia8mc", None)
    with pytest.raises(LipsgenError, match=r"lipsgen\[pythia\]"):
        list(generate_jets(PythiaJets(3), 10, seed=1))
    result = run_cli("data", "pythia", "--jets", "3", "--events", "10", "--out", str(tmp_path / "x.h5"))
    assert result.returncode == 1 and "lipsgen[pythia]" in result.stderr
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("args, message", [
    (["--jets", "1"], "from 2 to 20"), (["--jets", "3", "--level", "detector"], "invalid choice"),
    (["--jets", "3", "--workers", "0"], "positive"),
])
def test_pythia_bad_options(tmp_path, args, message):
    result = run_cli("data", "pythia", "--events", "10", "--out", str(tmp_path / "x.h5"), *args)
    assert result.returncode == 2 and message in result.stderr


def test_pythia_events_train_sample_and_evaluate(tmp_path):
    _, _, truth = _pythia_file(tmp_path, "truth.h5", "--jets", "3", "--seed", "1")
    run = tmp_path / "run"
    trained = run_cli("train", "--data", str(truth), "--model", "fm-z", "--max-steps", "3", "--out", str(run))
    assert trained.returncode == 0, trained.stderr
    samples = tmp_path / "fm-z.h5"
    sampled = run_cli("sample", str(run / "model.pt"), "--events", "300", "--out", str(samples), "--seed", "1")
    assert sampled.returncode == 0, sampled.stderr
    result = run_cli("evaluate", "--truth", str(truth), "--samples", str(samples), "--out", str(tmp_path / "rep"),
                     "--batches", "2")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert {"log10_y23", "cos_12", "thrust", "c_parameter"} <= set(metrics["samples"]["fm-z"]["wasserstein"])
    assert (tmp_path / "rep" / "hist_log10_y23.png").exists()


# ---------------------------------------------------------------- HepMC3 and LHE input


def _write_hepmc(path, events: list[np.ndarray], *, beams=(11, -11), unit=pyhepmc.Units.GEV, sqrt_s=SQRT_S) -> None:
    scale = 1000.0 if unit == pyhepmc.Units.MEV else 1.0
    with pyhepmc.open(path, "w") as f:
        for number, particles in enumerate(events):
            event = pyhepmc.GenEvent(unit, pyhepmc.Units.MM)
            event.event_number = 100 + number
            vertex = pyhepmc.GenVertex()
            half = sqrt_s / 2 * scale
            vertex.add_particle_in(pyhepmc.GenParticle((0, 0, half, half), beams[0], 4))
            vertex.add_particle_in(pyhepmc.GenParticle((0, 0, -half, half), beams[1], 4))
            for e, px, py, pz in particles * scale:
                vertex.add_particle_out(pyhepmc.GenParticle((px, py, pz, e), 211, 1))
            event.add_vertex(vertex)
            f.write(event)


def test_hepmc_round_trip_clusters_the_final_state(tmp_path):
    rng = np.random.default_rng(7)
    events = _massless_event(3, seed=8, n_events=12)
    fragments = [_split_into_fragments(e, 1e-3, rng) for e in events]
    original = torch.take_along_dim(events, torch.argsort(events[..., 0], 1, descending=True).unsqueeze(-1), 1)
    for unit, name in ((pyhepmc.Units.GEV, "gev"), (pyhepmc.Units.MEV, "mev")):
        source = tmp_path / f"showered_{name}.hepmc3"
        _write_hepmc(source, fragments, unit=unit)
        out = tmp_path / f"jets_{name}.h5"
        result = run_cli("convert", str(source), str(out), "--jets", "3")
        assert result.returncode == 0, result.stderr
        got, attributes = read_events(out)
        assert attributes["sqrt_s"] == pytest.approx(SQRT_S) and attributes["n_jets"] == 3
        torch.testing.assert_close(got, original, rtol=1e-11, atol=1e-11 * SQRT_S)
        with h5py.File(out) as f:
            np.testing.assert_allclose(f["massive_jets"][...].sum(1)[:, 1:], 0, atol=1e-10)


def test_hepmc_to_cm_boosts_before_clustering(tmp_path):
    rng = np.random.default_rng(1)
    events = _massless_event(3, seed=9, n_events=5)
    boosted = [torch.from_numpy(_split_into_fragments(e, 1e-3, rng)) for e in events]
    from lipsgen.kinematics import boost
    velocity = torch.tensor([[0.0, 0.0, 0.3]], dtype=torch.float64)
    boosted = [boost(b.unsqueeze(0), velocity)[0].numpy() for b in boosted]
    source = tmp_path / "boosted.hepmc3"
    _write_hepmc(source, boosted)
    out = tmp_path / "cm.h5"
    refused = run_cli("convert", str(source), str(out))
    assert refused.returncode == 1 and "--jets N" in refused.stderr
    refused = run_cli("convert", str(source), str(out), "--jets", "3")
    assert refused.returncode == 1 and "--to-cm" in refused.stderr
    assert "event 0 is not in its CM frame" in refused.stderr
    assert not out.exists()
    result = run_cli("convert", str(source), str(out), "--jets", "3", "--to-cm", "--sqrt-s", str(SQRT_S))
    assert result.returncode == 0, result.stderr
    got, _ = read_events(out)
    _assert_exact(got, SQRT_S)
    original = torch.take_along_dim(events, torch.argsort(events[..., 0], 1, descending=True).unsqueeze(-1), 1)
    torch.testing.assert_close(got, original, rtol=1e-9, atol=1e-9 * SQRT_S)


def test_lhe_with_more_particles_than_jets(tmp_path):
    rng = np.random.default_rng(2)
    events = _massless_event(3, seed=10, n_events=8)
    fragments = torch.from_numpy(np.stack([_split_into_fragments(e, 1e-3, rng) for e in events]))
    source = tmp_path / "nine.lhe"
    write_events(source, fragments, {"sqrt_s": SQRT_S})
    out = tmp_path / "three.h5"
    result = run_cli("convert", str(source), str(out), "--jets", "3")
    assert result.returncode == 0, result.stderr
    got, _ = read_events(out)
    original = torch.take_along_dim(events, torch.argsort(events[..., 0], 1, descending=True).unsqueeze(-1), 1)
    torch.testing.assert_close(got, original, rtol=1e-9, atol=1e-9 * SQRT_S)


def test_hepmc_bad_input_names_the_event(tmp_path):
    rng = np.random.default_rng(4)
    good = [_split_into_fragments(e, 1e-2, rng) for e in _massless_event(3, seed=11, n_events=3)]
    few = tmp_path / "few.hepmc3"
    _write_hepmc(few, [good[0], good[1][:2], good[2]])  # event 1 has only 2 final-state particles
    with pytest.raises(Exception, match="event 1 has 2 final-state particles, fewer than the 3 jets"):
        jets_from_file(few, 3)
    protons = tmp_path / "pp.hepmc3"
    _write_hepmc(protons, good, beams=(2212, 2212))
    result = run_cli("convert", str(protons), str(tmp_path / "o.h5"), "--jets", "3")
    assert result.returncode == 1 and "event 0 (number 100)" in result.stderr and "not e+ e-" in result.stderr
    truncated = tmp_path / "truncated.hepmc3"
    text = few.read_text()
    truncated.write_text(text[: text.index("E 101") + 200])  # event 1 cut short
    result = run_cli("convert", str(truncated), str(tmp_path / "o.h5"), "--jets", "2")
    assert result.returncode == 1 and "truncated after event 0" in result.stderr
    garbage = tmp_path / "garbage.hepmc3"
    garbage.write_text("this is not an event file\n")
    result = run_cli("convert", str(garbage), str(tmp_path / "o.h5"), "--jets", "3")
    assert result.returncode == 1 and "no HepMC events found" in result.stderr
    result = run_cli("convert", str(tmp_path / "missing.hepmc3"), str(tmp_path / "o.h5"), "--jets", "3")
    assert result.returncode == 1 and "no such event file" in result.stderr
    result = run_cli("convert", str(tmp_path / "few.h5"), str(tmp_path / "o.h5"), "--jets", "3")
    assert result.returncode == 1 and "HepMC3" in result.stderr
    assert not (tmp_path / "o.h5").exists()


def test_an_lhe_file_named_hepmc_is_named_as_lhe(tmp_path):
    from lipsgen.io import write_events
    from lipsgen.targets import QQG

    wrong = tmp_path / "events.hepmc3"
    lhe = tmp_path / "events.lhe"
    write_events(lhe, QQG(1e-3, sqrt_s=91.19).sample(20, seed=1), {"target": "qqg", "sqrt_s": 91.19, "ycut": 1e-3})
    wrong.write_bytes(lhe.read_bytes())
    result = run_cli("convert", str(wrong), str(tmp_path / "jets.h5"), "--jets", "3")
    assert result.returncode == 1 and "this is a Les Houches (LHE) file, not HepMC; name it .lhe" in result.stderr


def test_projection_reports_the_angle_each_jet_turned_and_n_particles_make_n_jets():
    """A jet system moving along z: the boost to its CM turns every jet; max_angle is the largest
    angle between a jet before and after, computed here from the dot product. An event of exactly
    n particles clusters into those n particles as jets."""
    rest = uniform_phase_space(50, 4, seed=3, sqrt_s=91.19)
    moving = rest.clone()
    gamma, beta = 1 / np.sqrt(1 - 0.3**2), 0.3
    moving[..., 0] = gamma * (rest[..., 0] + beta * rest[..., 3])
    moving[..., 3] = gamma * (rest[..., 3] + beta * rest[..., 0])
    projected = project_jets(moving, 91.19)
    before = projected.massive[..., 1:] / torch.linalg.vector_norm(projected.massive[..., 1:], dim=-1, keepdim=True)
    after = projected.events[..., 1:] / projected.events[..., :1]
    expected = torch.arccos((before * after).sum(-1).clamp(-1, 1)).amax(dim=1)
    assert float(expected.min()) > 0.05  # the boost turns them
    assert torch.allclose(projected.max_angle, expected, rtol=1e-9, atol=1e-12)
    jets = durham_jets(particles_array(list(rest.numpy())), 4)
    order = torch.argsort(rest[..., 0], dim=1, descending=True)
    np.testing.assert_allclose(jets, torch.take_along_dim(rest, order.unsqueeze(-1), dim=1).numpy(), rtol=1e-12,
                               atol=1e-12 * 91.19)


def test_a_damaged_hepmc_file_is_named_without_hepmc3s_own_output(tmp_path, capfd):
    """HepMC3's C++ reader prints DEBUG and ERROR lines on a damaged event; they end up in lipsgen's
    one-line error (the first of them), not on the terminal."""
    rng = np.random.default_rng(7)
    events = _massless_event(3, seed=8, n_events=6)
    good = tmp_path / "good.hepmc3"
    _write_hepmc(good, [_split_into_fragments(e, 1e-3, rng) for e in events])
    lines = good.read_text().splitlines()
    damaged = tmp_path / "damaged.hepmc3"
    damaged.write_text("\n".join("P garbage" if line.startswith("P ") and i > len(lines) // 2 else line
                                 for i, line in enumerate(lines)) + "\n")
    capfd.readouterr()
    result = run_cli("convert", str(damaged), str(tmp_path / "out.h5"), "--jets", "3")
    assert result.returncode == 1 and "corrupt or truncated" in result.stderr and "HepMC3 said" in result.stderr
    out, err = capfd.readouterr()
    assert "DEBUG" not in out + err and "garbage" not in out + err and "expected" not in out + err
    assert not (tmp_path / "out.h5").exists()

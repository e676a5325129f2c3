"""Names, descriptions and presets of what lipsgen offers: models, training presets, targets.

Plain data, importable without torch, so that ``lipsgen --help`` and argument errors answer at
once; the library modules take their tables from here.
"""

from __future__ import annotations

from typing import Any, Literal

Lift = Literal["exact", "fixed"]
Backbone = Literal["mlp", "transformer"]
Drift = Literal["score", "regularised"]
Divergence = Literal["exact", "hutchinson"]
ReverseVariance = Literal["2g", "ratio"]
TimeLaw = Literal["paper", "uniform"]
LossWeight = Literal["paper", "sigma2"]
Coupling = Literal["independent", "fibre", "particles"]

__all__ = ["Lift", "Backbone", "Drift", "Divergence", "ReverseVariance", "TimeLaw", "LossWeight", "Coupling",
           "MODEL_KINDS", "MODEL_HELP", "BASE_HELP", "PRESETS", "PRESET_HELP", "TARGET_OPTIONS", "TARGET_HELP",
           "TARGET_SQRT_S", "DEFAULT_CHUNK_SIZE", "EMERGENCE_STRUCTURES", "EMERGENCE_TIMES", "EMERGENCE_DEFAULTS",
           "DISTILL_METHODS", "DISTILL_TRAIN", "DISTILL_PAIRS", "DISTILL_FLOW_SIZE", "SYMMETRY_HELP"]

# model name -> (space, process, prior for flow matching)
MODEL_KINDS: dict[str, tuple[str, str, str]] = {
    "langevin": ("q", "langevin", ""),
    "zdiff": ("z", "vp", ""),
    "fm-q": ("q", "flow", "space"),
    "fm-z": ("z", "flow", "space"),
    "fm-fitted": ("q", "flow", "fitted"),
    "pddpm": ("p", "vp", ""),
    "pfm": ("p", "flow", "space"),
    "nf": ("z", "nf", "space"),
}
MODEL_HELP = {
    "langevin": "the paper's q-space Langevin diffusion, implicit score matching (exact)",
    "zdiff": "variance-preserving diffusion in z-space, denoising score matching (exact)",
    "fm-q": "flow matching from the RAMBO prior in q-space (exact)",
    "fm-z": "flow matching from N(0, I) in z-space, i.e. from uniform phase space (exact)",
    "fm-fitted": "flow matching from a Gaussian fitted to the lifted data, in q-space (exact)",
    "pddpm": "baseline: DDPM on scaled 3-momenta (does not conserve energy-momentum)",
    "pfm": "baseline: flow matching on scaled 3-momenta (does not conserve energy-momentum)",
    "nf": "spline normalizing flow in z-space from uniform phase space; exact density in one pass (exact)",
}

# Each preset: (model-config overrides, train-config overrides), per model. The cpu preset is
# sized to train in minutes on 2 cores (bench/bench_models.py, docs/benchmarks.md); the
# measurements behind its choices are in docs/results.md.
_CPU_COMMON: dict[str, Any] = dict(steps=15_000, batch_size=512, lr=1e-3, warmup_steps=200, ema_decay=0.999,
                                   checkpoint_every=1000)
# The paper's settings for singular targets (docs/design.md, "Presets against the paper").
SINGULAR_LANGEVIN = {"schedule": "singular", "drift": "regularised", "eps": 0.2}
_PAPER_TRAIN: dict[str, Any] = dict(batch_size=1024, lr=3e-4, warmup_steps=1000, ema_decay=0.9999,
                                    checkpoint_every=5000)
PRESETS: dict[str, dict[str, tuple[dict[str, Any], dict[str, Any]]]] = {
    "cpu": {
        # Implicit score matching costs 3N extra backward passes: smaller steps. The eps-regularised
        # reference drift and 12k steps beat the exact score at 4k on muon, qqg and SARGE
        # (docs/results.md, "Langevin: the regularised drift as the cpu default").
        "langevin": ({"width": 128, "depth": 3, "drift": "regularised", "eps": 0.2},
                     dict(_CPU_COMMON, steps=12_000, batch_size=256)),
        "nf": ({"width": 128, "depth": 2}, _CPU_COMMON),
        **{m: ({}, _CPU_COMMON) for m in MODEL_KINDS if m not in ("langevin", "nf")},
    },
    # The paper's smooth-target run (muon decay): 500 linear steps, exact score drift, its time law
    # and loss weight, MLP 4 x 256, batch 1024, ~300 epochs of 500k events. Meant for a GPU.
    "paper-muon": {m: ({"schedule": "smooth", "drift": "score", "time_law": "paper", "loss_weight": "paper"},
                       dict(_PAPER_TRAIN, steps=150_000)) for m in MODEL_KINDS},
    # The paper's singular-target runs (qqg, SARGE): 137 geometric + 1000 linear steps with the
    # eps-regularised drift, Hutchinson divergence. Meant for a GPU.
    "paper-singular": {m: ({**SINGULAR_LANGEVIN, "divergence": "hutchinson", "time_law": "paper",
                            "loss_weight": "paper"}, dict(_PAPER_TRAIN, steps=500_000)) for m in MODEL_KINDS},
}
# The cpu preset's transformer (unlabelled targets) and its Langevin step count.
CPU_TRANSFORMER: tuple[dict[str, Any], dict[str, Any]] = ({"width": 64, "depth": 2, "heads": 4},
                                                          dict(steps=6000, batch_size=256))
CPU_TRANSFORMER_LANGEVIN_STEPS = 3000
PRESET_HELP = {
    "cpu": "sized for minutes on 2 CPU cores (default)",
    "paper-muon": "the paper's muon-decay settings (150k steps, batch 1024): for a GPU",
    "paper-singular": "the paper's qqg / SARGE settings (500k steps, singular schedule): for a GPU",
}

# Per target: its command-line options and their defaults (None = required); the names are the
# target classes' keyword parameters (tests check they agree).
TARGET_OPTIONS: dict[str, dict[str, object]] = {
    "uniform": {"n_particles": None, "masses": ()},
    "muon": {"electron_mass": 0.0},
    "qqg": {"ycut": 1e-3},
    "sarge": {"n_particles": 10, "xi_max": 30.0},
    "antenna": {"n_particles": 5, "ycut": 1e-3, "orderings": "one"},
    "top": {"w_mass": 80.38, "w_width": 2.09, "b_mass": 4.8},
}
# sqrt_s where a target's default is not 1: the top mass in GeV, the unit of its masses and width
TARGET_SQRT_S = {"top": 172.5}
TARGET_HELP = {
    "uniform": "uniform phase space (RAMBO), any number of particles, massless or with --masses",
    "muon": "muon decay at rest: e-, nu_mu, anti-nu_e (massless, or with --electron-mass)",
    "qqg": "e+e- -> q qbar g at O(alpha_s) with the cut min y_ij > ycut",
    "sarge": "N-gluon QCD antenna events from the SARGE algorithm",
    "antenna": "colour-ordered N-gluon antenna 1/(y12 y23 ... yN1), min y_ij > ycut: a density without "
               "a sampler (weighted generation)",
    "top": "top-quark decay at rest, t -> b W+ -> b e+ nu_e, massive b and a W Breit-Wigner (sqrt_s is the top "
           "mass, default 172.5 GeV)",
}

# Noise ends (lipsgen.bases; --base): the names train --help lists, or MODULE:FUNCTION.
BASE_HELP = {
    "uniform": "uniform phase space through RAMBO's z-space, the paper's noise end (default); suits smooth targets "
               "(muon decay)",
    "chain": "a chain of two-body decays with soft and collinear power-law poles fitted to the data (and, for 3 "
             "particles, the data's ycut folded in exactly); suits singular QCD targets whose particles have fixed "
             "roles (qqg; jets sorted by energy)",
    "chains": "a mixture of chain bases in every particle ordering (N <= 5), weights fitted by EM: suits unlabelled "
              "singular targets (jets)",
    "colour": "a mixture of chain bases along the colour loop 0-1-...-(N-1)-0 (its rotations and reflections, "
              "2N channels): suits particles labelled in colour order (colour-ordered antennas), though a chain base "
              "with --symmetry dihedral does better on them",
    "resonance": "three particles, the pair (2, 3) on a Breit-Wigner whose mass and width are fitted to the data "
                 "(a propagator mapping): suits a resonance decaying to the last two particles (top decay's W)",
}

# relabelling symmetries a model can be symmetrised over (lipsgen.models.symmetry)
SYMMETRY_HELP = {
    "none": "the model as trained",
    "cyclic": "the N rotations of the particle labels 0..N-1 (a colour loop with one orientation)",
    "dihedral": "the rotations and their reversals, 2N (a colour loop: the antenna, leading-colour gluons)",
    "all": "every permutation, N! (identical particles; N <= 6)",
}

# Pythia jet data (lipsgen data pythia): the Z pole in GeV (Pythia's default Z mass) and the events
# per independently seeded Pythia run.
Z_POLE = 91.1876
PYTHIA_BLOCK_SIZE = 5000

# Events per chunk when streaming: amortises Python and HDF5 overhead; a chunk of 30-particle
# events stays under 100 MB.
DEFAULT_CHUNK_SIZE = 65536

# events evaluated per sample file by default (the truth: twice as many), in bounded memory
EVALUATED_EVENTS = 500_000

# lipsgen emergence: the structures whose keep probability U-turns measure, the default U-turn times
# and the defaults of its settings (lipsgen.evaluation.emergence.EmergenceSettings); here so that
# `lipsgen --help` answers without importing torch
EMERGENCE_STRUCTURES: dict[str, str] = {
    "hardest": "which particle is the most energetic",
    "energy_ordering": "the order of all particles by energy",
    "most_collinear_pair": "which pair has the smallest opening angle",
    "jet_multiplicity": "the number of Durham jets at the jet y_cut (FastJet)",
    "thrust_hemispheres": "which particles share the thrust hemisphere",
}
EMERGENCE_TIMES = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
EMERGENCE_DEFAULTS: dict[str, Any] = {"events": 4000, "trajectory": 11, "replicas": 200, "jet_ycut": 0.01,
                                      "directions": 3, "batch_size": 5000}

# lipsgen distill (lipsgen.training.distillation): the students and their training settings.
DISTILL_METHODS = {
    "flow": "a one-pass spline normalizing flow (nf) regressed onto the teacher's (noise, sample) pairs "
            "(RegFlow): exact density in one pass, for weighted events",
    "few-step": "the teacher's flow-matching network sampled in --steps Euler steps, its rollout regressed onto "
                "the teacher's trajectory: the fastest plain sampling",
}
DISTILL_PAIRS = 100_000
# the flow student's size (ModelConfig fields): larger than the nf preset's 6 x 128, since the
# regression onto a teacher's map is capacity-limited (docs/results.md, "Distilled students")
DISTILL_FLOW_SIZE: dict[str, int] = {"width": 256, "depth": 2, "flow_transforms": 10}
DISTILL_TRAIN: dict[str, dict[str, Any]] = {
    "flow": dict(steps=5000, batch_size=512, lr=1e-3, warmup_steps=200, ema_decay=0.999, checkpoint_every=1000),
    # fine-tuning the teacher's own field: a smaller rate
    "few-step": dict(steps=3000, batch_size=512, lr=3e-4, warmup_steps=100, ema_decay=0.999, checkpoint_every=1000),
}

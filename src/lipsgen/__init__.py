"""lipsgen: generative models whose samples lie exactly on massless Lorentz-invariant phase space.

What a user needs first is here; submodules hold the rest::

    events = lipsgen.targets.QQG(ycut=1e-3).sample(100_000, seed=1)    # or lipsgen.QQG
    lipsgen.write_events("qqg.h5", events, {"target": "qqg", "ycut": 1e-3, "sqrt_s": 1.0})
    model, _ = lipsgen.load_model("runs/fmz/model.pt")
    lipsgen.sample_to_file(model, 10_000, "samples.h5", seed=3)
    lipsgen.evaluate(lipsgen.EvaluationInputs(truth="truth.h5", samples=["samples.h5"]), "report")

Names are imported on first use, so ``import lipsgen`` (and the ``lipsgen`` command's help) does
not load torch, scikit-learn or matplotlib until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# public name -> submodule that defines it
_EXPORTS = {
    # phase space and the maps onto it
    "uniform_phase_space": "targets", "phase_space_volume": "kinematics", "rambo_map": "coordinates",
    "inverse_rambo_map": "coordinates", "lift_to_qspace": "coordinates", "sample_fibre": "coordinates",
    "sample_prior": "coordinates", "prior_log_prob": "coordinates", "prior_score": "coordinates",
    "regularised_drift": "coordinates", "q_to_z": "coordinates", "z_to_q": "coordinates",
    "log_abs_det_q_to_z": "coordinates", "to_cm_frame": "coordinates", "massive_from_massless": "coordinates",
    "massless_from_massive": "coordinates",
    "minkowski_dot": "kinematics", "pair_invariants": "kinematics", "scaled_pair_invariants": "kinematics",
    "energies": "kinematics", "mass_squared": "kinematics", "three_to_four": "kinematics",
    "four_to_three": "kinematics",
    # targets
    "MuonDecay": "targets", "QQG": "targets", "Sarge": "targets", "Uniform": "targets", "TopDecay": "targets",
    "make_target": "targets",
    # event files
    "read_events": "io", "write_events": "io", "load_events": "io",
    # models: train, load, sample
    "ModelConfig": "models", "GenerativeModel": "models", "TrainConfig": "training", "train": "training",
    "load_model": "training", "resolve_preset": "training", "sample_to_file": "sampling",
    # learnt density ratios data / model (refined samples)
    "fit_density_ratio": "refinement", "load_density_ratio": "refinement", "RatioConfig": "refinement",
    "mean_log_ratio": "refinement",
    # evaluation
    "evaluate": "evaluation", "EvaluationInputs": "evaluation", "conservation_metric": "evaluation",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lipsgen' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})  # a name already loaded is in both


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from .coordinates import (
        inverse_rambo_map,
        lift_to_qspace,
        log_abs_det_q_to_z,
        massive_from_massless,
        massless_from_massive,
        prior_log_prob,
        prior_score,
        q_to_z,
        rambo_map,
        regularised_drift,
        sample_fibre,
        sample_prior,
        to_cm_frame,
        z_to_q,
    )
    from .evaluation import EvaluationInputs, conservation_metric, evaluate
    from .io import load_events, read_events, write_events
    from .kinematics import (
        energies,
        four_to_three,
        mass_squared,
        minkowski_dot,
        pair_invariants,
        phase_space_volume,
        scaled_pair_invariants,
        three_to_four,
    )
    from .models import GenerativeModel, ModelConfig
    from .refinement import RatioConfig, fit_density_ratio, load_density_ratio
    from .sampling import sample_to_file
    from .targets import QQG, MuonDecay, Sarge, TopDecay, Uniform, make_target, uniform_phase_space
    from .training import TrainConfig, load_model, resolve_preset, train

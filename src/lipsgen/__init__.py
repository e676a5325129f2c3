"""lipsgen: generative models whose samples lie exactly on massless Lorentz-invariant phase space."""

from ._version import __version__
from .coordinates import (
    inverse_rambo_map,
    lift_to_qspace,
    log_abs_det_q_to_z,
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
from .targets import uniform_phase_space

__all__ = [
    "__version__",
    "energies",
    "four_to_three",
    "inverse_rambo_map",
    "lift_to_qspace",
    "log_abs_det_q_to_z",
    "mass_squared",
    "minkowski_dot",
    "pair_invariants",
    "phase_space_volume",
    "prior_log_prob",
    "prior_score",
    "q_to_z",
    "rambo_map",
    "regularised_drift",
    "sample_fibre",
    "sample_prior",
    "scaled_pair_invariants",
    "three_to_four",
    "to_cm_frame",
    "uniform_phase_space",
    "z_to_q",
]

"""Coordinates on which models live: the q-space prior, the RAMBO map and its fibre, z-space, and the
massive map onto mass shells."""

from .massive import massive_from_massless, massless_from_massive
from .qspace import prior_log_prob, prior_score, regularised_drift, sample_prior
from .rambo import (
    RamboResult,
    fixed_embedding_x,
    inverse_rambo_map,
    lift_to_qspace,
    rambo_map,
    sample_fibre,
    to_cm_frame,
)
from .zspace import log_abs_det_q_to_z, q_to_z, z_to_q

__all__ = [
    "RamboResult",
    "fixed_embedding_x",
    "inverse_rambo_map",
    "lift_to_qspace",
    "log_abs_det_q_to_z",
    "massive_from_massless",
    "massless_from_massive",
    "prior_log_prob",
    "prior_score",
    "q_to_z",
    "rambo_map",
    "regularised_drift",
    "sample_fibre",
    "sample_prior",
    "to_cm_frame",
    "z_to_q",
]

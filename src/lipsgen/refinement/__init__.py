"""Refinement: learnt per-event weights that correct a model's events towards the data."""

from .features import n_ratio_features, ratio_features
from .ratio import (
    NO_INFORMATION_LOSS,
    DensityRatio,
    RatioCheckpointError,
    RatioConfig,
    RatioFit,
    calibration_problem,
    fit_calibration,
    fit_density_ratio,
    load_density_ratio,
    mean_log_ratio,
    save_density_ratio,
)

__all__ = ["ratio_features", "n_ratio_features", "RatioConfig", "DensityRatio", "RatioFit", "fit_density_ratio",
           "save_density_ratio", "load_density_ratio", "RatioCheckpointError", "NO_INFORMATION_LOSS",
           "calibration_problem", "fit_calibration", "mean_log_ratio"]

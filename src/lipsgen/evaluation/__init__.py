"""Evaluation of samples against truth: observables, distances, classifier test, plots, report."""

from ..conservation import ConservationMetric, conservation_metric, event_violations
from .metrics import classifier_auc, feature_matrix, wasserstein_batches
from .observables import Observable, c_parameter, eec_pairs, event_observables, thrust
from .report import EvaluationInputs, evaluate

__all__ = ["ConservationMetric", "EvaluationInputs", "Observable", "c_parameter", "classifier_auc",
           "conservation_metric", "eec_pairs", "evaluate", "event_observables", "event_violations", "feature_matrix",
           "thrust",
           "wasserstein_batches"]

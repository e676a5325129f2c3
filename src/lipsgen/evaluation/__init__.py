"""Evaluation of samples against truth: observables, distances, classifier test, plots, report."""

from ..conservation import ConservationMetric, conservation_metric, event_violations
from .emergence import EmergenceSettings, analyse_emergence, write_emergence
from .metrics import classifier_auc, feature_matrix, wasserstein_batches
from .observables import Observable, c_parameter, eec_pairs, event_observables, thrust
from .report import EvaluationInputs, evaluate

__all__ = ["ConservationMetric", "EmergenceSettings", "EvaluationInputs", "Observable", "analyse_emergence",
           "c_parameter", "classifier_auc", "conservation_metric", "eec_pairs", "evaluate", "event_observables",
           "event_violations", "feature_matrix", "thrust", "wasserstein_batches", "write_emergence"]

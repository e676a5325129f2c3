"""Evaluation of samples against truth."""

from .conservation import ConservationMetric, conservation_metric

__all__ = ["ConservationMetric", "conservation_metric"]

"""Sampling trained models into event files."""

from .sampler import load_partial_data, partial_start, sample_to_file

__all__ = ["load_partial_data", "partial_start", "sample_to_file"]

"""Shared helpers: seeded statistical checks that also prove they would see a 1% error."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy import stats

from lipsgen.cli.main import main

# A seeded sample either passes or fails the same way every run; 1e-3 keeps a correct sampler
# far from the threshold for almost every seed, and the power checks below show 1% errors fail.
P_THRESHOLD = 1e-3


def assert_matches_cdf(sample: np.ndarray | torch.Tensor, cdf: Callable, *, scale_check: bool = True) -> None:
    """KS test of ``sample`` against ``cdf``; also check that a 1% rescaled sample is rejected."""
    x = np.asarray(sample, dtype=np.float64).ravel()
    p = stats.kstest(x, cdf).pvalue
    assert p > P_THRESHOLD, f"KS p-value {p:.2e}: sample does not follow the expected law"
    if scale_check:
        p_shifted = stats.kstest(x * 1.01, cdf).pvalue
        assert p_shifted < P_THRESHOLD, f"test too weak: a 1% rescaling gave p = {p_shifted:.2e}"


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(20260402)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """Run ``lipsgen ARGS`` in this process (argparse exits become return codes); an exception the
    command line does not turn into a message propagates, so a traceback fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return CliResult(code, out.getvalue(), err.getvalue())

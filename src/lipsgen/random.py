"""Seeds and random generators: every sampler takes ``seed`` or ``generator`` for reproducibility."""

from __future__ import annotations

import secrets

import numpy as np
import torch

__all__ = ["make_generator", "fresh_seed", "derived_generator"]

_PURPOSES = {"init": 0, "fit": 1, "epoch": 2, "step": 3, "sample": 4, "forward": 5, "blocks": 6, "pairs": 7}


def fresh_seed() -> int:
    """A new 63-bit seed from the operating system, for runs that must record the seed they used."""
    return secrets.randbits(63)


def make_generator(
    seed: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Generator:
    """Return ``generator`` if given, else a new generator on ``device`` seeded with ``seed``.

    ``seed=None`` seeds from the operating system. Passing both is an error: it is ambiguous.
    """
    if generator is not None:
        if seed is not None:
            raise ValueError("pass either seed or generator, not both")
        return generator
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(fresh_seed() if seed is None else seed)
    return gen


def derived_generator(seed: int, purpose: str, index: int = 0, device: torch.device | str = "cpu") -> torch.Generator:
    """An independent generator for (seed, purpose, index): the streams of training and sampling."""
    state = np.random.SeedSequence([seed, _PURPOSES[purpose], index]).generate_state(2, dtype=np.uint32)
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(int(state[0]) << 32 | int(state[1]))
    return gen

"""Checkpoints: the full model and training state, written atomically, checked on loading."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..devices import resolve_device
from ..errors import LipsgenError
from ..io.atomic import atomic_output
from ..models.model import GenerativeModel, ModelConfig

__all__ = ["save_checkpoint", "read_checkpoint", "load_model", "CheckpointError", "config_mismatch"]

FORMAT = "lipsgen-checkpoint-1"
# how tensor_digest is computed; a checkpoint whose digest names another scheme is not verified
DIGEST_SCHEME = "sha256-tensors-1"


class CheckpointError(LipsgenError, ValueError):
    """A checkpoint is missing, unreadable, or does not match what it is loaded into."""


def tensor_digest(state: Any) -> str:
    """SHA-256 over every tensor in ``state`` (nested dicts and lists, in key order): a bit flipped
    in stored weights changes it, where torch.load would read the damaged numbers silently."""
    digest = hashlib.sha256()

    def visit(value: Any, where: str) -> None:
        if isinstance(value, torch.Tensor):
            digest.update(f"{where}:{value.dtype}:{tuple(value.shape)}".encode())
            digest.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                visit(value[key], f"{where}/{key}")
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                visit(item, f"{where}/{index}")

    visit(state, "")
    return f"{DIGEST_SCHEME}:{digest.hexdigest()}"


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors and plain values) atomically, with the digest of its tensors."""
    with atomic_output(path) as tmp:
        torch.save({"format": FORMAT, "lipsgen_version": __version__, "digest": tensor_digest(state), **state}, tmp)
    return Path(path)


def read_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # unpickling garbage raises anything: KeyError, IndexError, UnpicklingError, ...
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"{path}: not a readable lipsgen checkpoint, truncated or damaged "
                              f"({type(err).__name__}: {first_line})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else None
        raise CheckpointError(f"{path}: not a lipsgen checkpoint (format {found!r})")
    payload = {k: v for k, v in state.items() if k not in ("format", "lipsgen_version", "digest")}
    recorded = state.get("digest")
    if isinstance(recorded, str) and recorded.startswith(f"{DIGEST_SCHEME}:") and tensor_digest(payload) != recorded:
        raise CheckpointError(f"{path}: corrupt checkpoint (its weights do not match the digest written with them)")
    return state


def config_mismatch(expected: ModelConfig, found: ModelConfig) -> list[str]:
    """Fields whose values differ, as 'name: expected != found'."""
    a, b = expected.to_dict(), found.to_dict()
    return [f"{k}: {a[k]!r} != {b[k]!r}" for k in a if a[k] != b.get(k)]


def load_model(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    expect: ModelConfig | None = None,
    weights: str = "ema",
) -> tuple[GenerativeModel, dict[str, Any]]:
    """Build the model a checkpoint describes and load its ``ema`` (default) or ``net`` weights.

    With ``expect``, refuse a checkpoint whose configuration differs, naming the fields.
    """
    state = read_checkpoint(path, resolve_device(device))
    if "model_config" not in state:
        raise CheckpointError(f"{path}: not a model checkpoint but a {state.get('kind', 'non-model')} file")
    config = ModelConfig.from_dict(state["model_config"])
    if expect is not None:
        diff = config_mismatch(expect, config)
        if diff:
            raise CheckpointError(f"{path}: checkpoint does not match the requested model ({'; '.join(diff)})")
    model = GenerativeModel(config).to(device)
    try:
        model.load_state_dict(state["model"])
        model.net.load_state_dict(state[weights])
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(f"{path}: weights do not fit the model it describes ({err})") from None
    model.load_extra_state(state.get("extra", {}))
    return model, state

"""A learnt density ratio ``r(p) = data(p) / model(p)`` on phase space, for per-event weights.

A classifier ``l(p)`` trained to tell data events (label 1) from a model's events (label 0) with
the class-balanced logistic loss ``E_data[softplus(-l)] + E_model[softplus(l)]`` is minimised by
``l = ln(data / model)``. Model events weighted by ``w = e^l`` therefore follow the data wherever
the model puts events at all: the model's excess where the data's density vanishes gets weights
below 1, a deficit weights above 1 (the DCTR method of Andreassen and Nachman, arXiv:1907.08209).
The kinematics are untouched (a model's exact events stay exact); unlike the exact weights of
``lipsgen sample --weights`` these are estimates, as good as the classifier, and need no density
of the target: they work for Pythia jets or any data. The validation loss against the
no-information value ``2 ln 2`` says how far the model is from the data, and is where training stops.

Three guards keep a classifier of a model far from its data from handing single events all the
weight (docs/design.md, "Learnt density ratios"): features are clamped to the range the classifier
was trained on, so that an event beyond it is not extrapolated to an arbitrary logit; the logit is
recalibrated on the held-out events as ``a l + b`` (Platt scaling with the same loss), which undoes
the over-confidence of a classifier that separates its training samples better than it generalises;
and refits with other seeds average their log ratios (:func:`mean_log_ratio`).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import LipsgenError
from ..progress import progress_bar
from ..random import make_generator
from ..validation import check_known_fields
from ..weights import WeightSummary
from .features import n_ratio_features, ratio_features

__all__ = ["RatioConfig", "DensityRatio", "RatioFit", "fit_density_ratio", "save_density_ratio",
           "load_density_ratio", "RatioCheckpointError", "NO_INFORMATION_LOSS", "calibration_problem",
           "fit_calibration", "mean_log_ratio"]

# The balanced logistic loss of a classifier that cannot tell the classes apart (l = 0).
NO_INFORMATION_LOSS = 2 * math.log(2)
KIND = "density-ratio"
# buffers added after the first density-ratio files: absent from those, they keep their defaults
_LATER_BUFFERS = ("feature_low", "feature_high", "logit_scale", "logit_shift")


class RatioCheckpointError(LipsgenError, ValueError):
    """A density-ratio file is missing, damaged, of another kind, or does not fit the events."""


@dataclass
class RatioConfig:
    """The classifier (an MLP ``width`` x ``depth``, SiLU) and its training: AdamW with cosine
    decay for ``steps`` steps of ``batch_size`` events per class, validation on a held-out
    ``validation_fraction`` of both samples every ``eval_every`` steps, keeping the best state."""

    n_particles: int
    labelled: bool
    rotation_invariant: bool = False
    width: int = 128
    depth: int = 3
    steps: int = 3000
    batch_size: int = 2048
    lr: float = 2e-3
    weight_decay: float = 1e-4
    validation_fraction: float = 0.2
    eval_every: int = 250
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_particles", "width", "depth", "steps", "batch_size", "eval_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RatioConfig:
        check_known_fields(cls, values, "density-ratio config", RatioCheckpointError)
        return cls(**values)


class DensityRatio(nn.Module):
    """``ln(data / model)`` of events: :meth:`log_ratio` (n, N, 4) -> (n,); :meth:`weights` its
    exponential. Features are standardised with the training samples' mean and spread and clamped
    to their range (buffers); the network's logit l becomes ``logit_scale * l + logit_shift``, the
    calibration fitted on held-out events (1 and 0 until then)."""

    feature_mean: Tensor
    feature_scale: Tensor
    feature_low: Tensor
    feature_high: Tensor
    logit_scale: Tensor
    logit_shift: Tensor

    def __init__(self, config: RatioConfig) -> None:
        super().__init__()
        self.config = config
        width_in = n_ratio_features(config.n_particles, config.rotation_invariant)
        layers: list[nn.Module] = []
        for k in range(config.depth):
            layers += [nn.Linear(width_in if k == 0 else config.width, config.width), nn.SiLU()]
        layers.append(nn.Linear(config.width, 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer("feature_mean", torch.zeros(width_in))
        self.register_buffer("feature_scale", torch.ones(width_in))
        self.register_buffer("feature_low", torch.full((width_in,), -math.inf))
        self.register_buffer("feature_high", torch.full((width_in,), math.inf))
        self.register_buffer("logit_scale", torch.ones(()))
        self.register_buffer("logit_shift", torch.zeros(()))

    def features(self, events: Tensor) -> Tensor:
        """Standardised features (n, F), float32 on the module's device."""
        if events.ndim != 3 or events.shape[1:] != (self.config.n_particles, 4):
            raise ValueError(f"events must have shape (n, {self.config.n_particles}, 4) for this density ratio, "
                             f"got {tuple(events.shape)}")
        return self.standardise(ratio_features(events, labelled=self.config.labelled,
                                               rotation_invariant=self.config.rotation_invariant))

    def standardise(self, raw: Tensor) -> Tensor:
        """Raw features (n, F) float64 -> standardised (n, F) float32 on the module's device,
        clamped to the training range."""
        device = self.feature_mean.device
        standard = (raw.to(device) - self.feature_mean.double()) / self.feature_scale.double()
        return torch.clamp(standard, self.feature_low.double(), self.feature_high.double()).float()

    def forward(self, features: Tensor) -> Tensor:
        """The network's uncalibrated logit (n,) of standardised features (n, F)."""
        return self.net(features).squeeze(-1)

    @torch.no_grad()
    def log_ratio(self, events: Tensor, chunk: int = 65536) -> Tensor:
        """``ln(data / model)`` (n,) float64 of events (n, N, 4), on the CPU: the calibrated logit."""
        self.eval()
        out = [self(self.features(events[i:i + chunk])).double().cpu() for i in range(0, len(events), chunk)]
        logits = torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)
        return float(self.logit_scale) * logits + float(self.logit_shift)

    def weights(self, events: Tensor) -> Tensor:
        """Per-event weights ``data / model`` (n,) float64; their mean over the model's events is
        1 for a well-trained ratio (a check of calibration)."""
        return self.log_ratio(events).exp()


@dataclass(frozen=True)
class RatioFit:
    """How training went: the balanced logistic loss on held-out events at the best evaluation
    (``validation_loss``; ``NO_INFORMATION_LOSS`` = 2 ln 2 means the model equals the data), at
    which ``best_step``, the numbers of events used to train and to validate, per class, and the
    logit's calibration ``(scale, shift)`` fitted on the held-out events with the loss it reaches
    there (``calibrated_loss``)."""

    validation_loss: float
    best_step: int
    n_train: tuple[int, int]
    n_validation: tuple[int, int]
    calibration: tuple[float, float] = (1.0, 0.0)
    calibrated_loss: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "no_information_loss": NO_INFORMATION_LOSS}


def _split(n: int, fraction: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    order = torch.randperm(n, generator=generator)
    n_validation = max(1, int(round(n * fraction)))
    return order[n_validation:], order[:n_validation]


def _logits(model: DensityRatio, features: Tensor, chunk: int = 65536) -> Tensor:
    """The uncalibrated logits (n,) float64 of standardised features (n, F), in chunks."""
    with torch.no_grad():
        return torch.cat([model(features[i:i + chunk]).double() for i in range(0, len(features), chunk)])


def balanced_logistic_loss(data_logits: Tensor, sample_logits: Tensor) -> Tensor:
    """``E_data[softplus(-l)] + E_model[softplus(l)]`` of logits of data (n_d,) and model events (n_s,)."""
    return F.softplus(-data_logits).mean() + F.softplus(sample_logits).mean()


def _balanced_loss(model: DensityRatio, data: Tensor, samples: Tensor) -> float:
    """Balanced logistic loss of the uncalibrated classifier on standardised features."""
    return float(balanced_logistic_loss(_logits(model, data), _logits(model, samples)))


def fit_calibration(data_logits: Tensor, sample_logits: Tensor) -> tuple[float, float, float]:
    """The scale a > 0 and shift b that minimise the balanced logistic loss of ``a l + b`` over
    held-out logits of data (n_d,) and model events (n_s,), and that loss. A classifier that is
    right about which way the ratio goes but over-confident gets a < 1; a = 1, b = 0 is the
    uncalibrated one, so the loss never rises."""
    data_logits, sample_logits = data_logits.detach().double().cpu(), sample_logits.detach().double().cpu()
    log_scale = torch.zeros((), dtype=torch.float64, requires_grad=True)
    shift = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_scale, shift], max_iter=200, line_search_fn="strong_wolfe")

    def loss_of(scale: Tensor, b: Tensor) -> Tensor:
        return balanced_logistic_loss(scale * data_logits + b, scale * sample_logits + b)

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = loss_of(log_scale.exp(), shift)
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        one = torch.ones((), dtype=torch.float64)
        uncalibrated, fitted = loss_of(one, 0 * one), loss_of(log_scale.exp(), shift)
    if not bool(torch.isfinite(fitted)) or fitted > uncalibrated:
        return 1.0, 0.0, float(uncalibrated)
    return float(log_scale.detach().exp()), float(shift.detach()), float(fitted)


def fit_density_ratio(data: Tensor, samples: Tensor, config: RatioConfig, *, device: str | torch.device = "cpu",
                      progress: bool | None = None) -> tuple[DensityRatio, RatioFit]:
    """Train ``ln(data / samples)`` from data events (n_d, N, 4) and a model's events (n_s, N, 4).

    Both are split into training and validation parts (``config.validation_fraction``); the
    returned classifier is the state with the lowest validation loss. Seeded by ``config.seed``."""
    for name, events in (("data", data), ("samples", samples)):
        if events.ndim != 3 or events.shape[1:] != (config.n_particles, 4):
            raise ValueError(f"{name} must have shape (n, {config.n_particles}, 4), got {tuple(events.shape)}")
        if len(events) < 10:
            raise ValueError(f"{name}: need at least 10 events to learn a density ratio, got {len(events)}")
        if not bool(torch.isfinite(events).all()):
            raise ValueError(f"{name}: events contain NaN or infinite momenta")
    generator = make_generator(config.seed)
    with torch.random.fork_rng(devices=[]):  # the initial weights from the seed, not the global stream
        torch.manual_seed(config.seed)
        model = DensityRatio(config)
    feats = [ratio_features(e, labelled=config.labelled, rotation_invariant=config.rotation_invariant)
             for e in (data, samples)]
    both = torch.cat(feats)
    model.feature_mean.copy_(both.mean(0).float())
    model.feature_scale.copy_(both.std(0).clamp(min=1e-12).float())
    model.to(device)
    standard = [model.standardise(f) for f in feats]
    # beyond the range it was trained on the classifier would extrapolate: later events are clamped to it
    model.feature_low.copy_(torch.minimum(*(f.min(0).values for f in standard)))
    model.feature_high.copy_(torch.maximum(*(f.max(0).values for f in standard)))
    splits = [_split(len(f), config.validation_fraction, generator) for f in standard]
    train_sets = [f[s[0].to(device)] for f, s in zip(standard, splits)]
    validation_sets = [f[s[1].to(device)] for f, s in zip(standard, splits)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps)
    best_loss = _balanced_loss(model, validation_sets[0], validation_sets[1])
    best_step, best_state = 0, copy.deepcopy(model.state_dict())
    with progress_bar(total=config.steps, unit="step", desc="density ratio", enable=progress) as bar:
        for step in range(1, config.steps + 1):
            model.train()
            picks = [torch.randint(len(t), (config.batch_size,), generator=generator).to(device) for t in train_sets]
            data_logits, sample_logits = model(train_sets[0][picks[0]]), model(train_sets[1][picks[1]])
            loss = balanced_logistic_loss(data_logits, sample_logits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            bar.update(1)
            if step % config.eval_every == 0 or step == config.steps:
                model.eval()
                current = _balanced_loss(model, validation_sets[0], validation_sets[1])
                if current < best_loss:
                    best_loss, best_step, best_state = current, step, copy.deepcopy(model.state_dict())
                bar.set_postfix(validation=f"{current:.5f}", best=f"{best_loss:.5f}")
    model.load_state_dict(best_state)
    model.eval()
    scale, shift, calibrated_loss = fit_calibration(_logits(model, validation_sets[0]),
                                                    _logits(model, validation_sets[1]))
    model.logit_scale.fill_(scale)
    model.logit_shift.fill_(shift)
    fit = RatioFit(best_loss, best_step, (len(train_sets[0]), len(train_sets[1])),
                   (len(validation_sets[0]), len(validation_sets[1])), (scale, shift), calibrated_loss)
    return model.cpu(), fit


def save_density_ratio(path: str | os.PathLike[str], model: DensityRatio, fit: RatioFit,
                       record: dict[str, Any]) -> Path:
    """Write the classifier, its config, how it was fitted and ``record`` (plain values: the
    files it was fitted on, their target and sqrt_s), atomically with a digest of its weights."""
    from ..training.checkpoint import save_checkpoint  # training sits beside, not below, this module

    return save_checkpoint(path, {"kind": KIND, "ratio_config": asdict(model.config),
                                  "weights": model.state_dict(), "fit": fit.as_dict(), "record": dict(record)})


def load_density_ratio(path: str | os.PathLike[str]) -> tuple[DensityRatio, dict[str, Any]]:
    """The density ratio of a file of :func:`save_density_ratio` and its ``record``, refusing
    model checkpoints and damaged files by name."""
    from ..training.checkpoint import CheckpointError, read_checkpoint

    try:
        state = read_checkpoint(path)
    except CheckpointError as err:
        raise RatioCheckpointError(str(err)) from None
    if state.get("kind") != KIND:
        raise RatioCheckpointError(f"{path}: a model checkpoint, not a density ratio (lipsgen refine writes those)")
    model = DensityRatio(RatioConfig.from_dict(state["ratio_config"]))
    try:
        # files written before the range clamp and the calibration lack those buffers: they keep
        # their defaults (no clamp, the uncalibrated logit), which is what those files were fitted as
        missing, unexpected = model.load_state_dict(state["weights"], strict=False)
    except (RuntimeError, KeyError, TypeError) as err:
        raise RatioCheckpointError(f"{path}: weights do not fit the density ratio it describes ({err})") from None
    if unexpected or set(missing) - set(_LATER_BUFFERS):
        raise RatioCheckpointError(f"{path}: weights do not fit the density ratio it describes (missing "
                                   f"{sorted(missing)}, unexpected {sorted(unexpected)})")
    model.eval()
    return model, {**state.get("record", {}), "fit": state.get("fit", {})}


def mean_log_ratio(ratios: Sequence[DensityRatio], events: Tensor) -> Tensor:
    """The ensemble's ``ln(data / model)`` (n,) float64 of events (n, N, 4): the mean of the
    ratios' log ratios. Classifiers fitted with other seeds (other initial weights, batches and
    held-out events) agree where the data decide and scatter where a classifier extrapolates or
    overfits; averaging the logits keeps the first and damps the second, the single events that
    would otherwise take most of the weight."""
    if not ratios:
        raise ValueError("an ensemble needs at least one density ratio")
    return torch.stack([ratio.log_ratio(events) for ratio in ratios]).mean(0)


def calibration_problem(summary: WeightSummary, *, max_bias: float = 0.05,
                        min_ess_per_event: float = 0.05) -> str | None:
    """Why learnt weights of a model's events (their :func:`summarise_weights` summary) are not to
    be trusted, or None: their mean must be 1 within ``max_bias`` and five standard errors
    (``E_model[data / model] = 1``), and their effective sample size per event at least
    ``min_ess_per_event``. A classifier that is over-confident (a model far from its data, or a
    ratio fitted too long on too few events) fails both."""
    problems = []
    if abs(summary.integral - 1) > max(max_bias, 5 * summary.integral_error):
        problems.append(f"their mean is {summary.integral:.4g} +- {summary.integral_error:.2g}, not 1")
    if summary.ess_per_event < min_ess_per_event:
        problems.append(f"their effective sample size is {summary.ess_per_event:.2g} per event")
    return "; ".join(problems) or None

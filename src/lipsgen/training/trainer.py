"""The training loop: AdamW, gradient clipping, warm-up + cosine learning rate, EMA weights.

Determinism and resumption: every random draw comes from a generator seeded by (seed, purpose,
index) — the data lift of epoch e from (seed, "epoch", e), its forward simulation (Langevin) from
(seed, "forward", e), the noise of step s from (seed, "step", s) — so a run resumed from a checkpoint
at step s continues exactly as
the uninterrupted run would have (on the CPU).

Distributed (torchrun, :mod:`lipsgen.distributed`): the global batch of every step is the one a
single process would take; rank r of K trains on its items r, r + K, ... with the same random
numbers they would get in one process (:class:`~lipsgen.models.processes.base.BatchDraws`), its
loss weighted by its share of the batch, and DistributedDataParallel averages the gradients; so K
ranks follow the one-process optimisation up to the order of floating-point reductions. The
Langevin forward simulation is shared: rank r simulates the chain blocks r, r + K, ... (each with
its own random stream) and the results are summed over ranks. The per-epoch lift is made in full on
every rank, which keeps the items' randomness independent of K (docs/benchmarks.md, "Scaling out",
measures its share). Rank 0 alone writes checkpoints.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..devices import resolve_device
from ..distributed import SINGLE_PROCESS, World
from ..errors import Terminated
from ..models.model import GenerativeModel, ModelConfig
from ..models.processes.base import BatchDraws
from ..progress import progress_bar
from ..random import derived_generator
from ..targets.density import Density, checked_log_density
from .checkpoint import CheckpointError, config_mismatch, read_checkpoint, save_checkpoint
from .config import TrainConfig
from .streaming import BLOCK_EVENTS, EventSource, InMemoryEvents

__all__ = ["train", "derived_generator", "TrainResult", "TrainingItems"]

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_SECONDS = 300.0  # also checkpoint after this much wall time since the last one
FINAL = "model.pt"


@dataclass
class TrainResult:
    model_path: Path
    steps: int
    seconds: float
    final_loss: float
    events: int = 0  # training events (0: trained from a density)


@dataclass
class TrainingItems:
    """Training items already in the model's space, with their own objective (distillation,
    :mod:`lipsgen.training.distillation`): ``tensors`` (each with the same number of rows) are
    shuffled every epoch (generator (seed, "epoch", e)) and cut into batches; ``loss(net, batch)``
    is the mean loss over a batch's items. ``initial`` is loaded into the model before the first
    step: ``"net"`` weights (optional) and ``"extra"`` state (the space's fitted parameters)."""

    tensors: dict[str, Tensor]
    loss: Callable[[torch.nn.Module, dict[str, Tensor]], Tensor]
    initial: dict[str, Any]
    fingerprint: str  # names the items: a resumed run refuses others

    @property
    def n_items(self) -> int:
        return len(next(iter(self.tensors.values())))


@contextmanager
def _deferred_interrupts() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM until the current optimiser step has finished (the list collects
    them), so that the checkpoint written on the way out is a consistent state to resume from."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield received
        return

    def hold(signum: int, frame: object) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _window_schedule(source: EventSource, config: TrainConfig, items_per_event: int, batch_size: int,
                     first_step: int) -> Iterator[tuple[int, int, int, list[int], int]]:
    """(epoch, window, windows in the epoch, the window's blocks, batch offset) of every step from
    ``first_step`` on (lipsgen.training.streaming): windows of the epoch's permuted blocks, each
    giving ``items // batch_size`` batches."""
    n_blocks = len(source.block_sizes)
    per_window = n_blocks if config.window_events is None else -(-config.window_events // BLOCK_EVENTS)

    def windows(epoch: int) -> list[list[int]]:
        if per_window >= n_blocks:
            return [list(range(n_blocks))]
        blocks = torch.randperm(n_blocks, generator=derived_generator(config.seed, "blocks", epoch)).tolist()
        return [sorted(blocks[i:i + per_window]) for i in range(0, n_blocks, per_window)]

    step, epoch = 0, 0
    while True:
        plan = windows(epoch)
        for index, blocks in enumerate(plan):
            n_steps = sum(source.block_sizes[b] for b in blocks) * items_per_event // batch_size
            for offset in range(max(0, first_step - step), n_steps):
                yield epoch, index, len(plan), blocks, offset
            step += n_steps
        epoch += 1


def _lr_factor(step: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train(
    events: Tensor | EventSource | None,
    model_config: ModelConfig,
    train_config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
    stop_after: int | None = None,
    data_attributes: dict[str, Any] | None = None,
    density: Density | None = None,
    items: TrainingItems | None = None,
    world: World = SINGLE_PROCESS,
) -> TrainResult:
    """Train on events (n, N, 4) (massless, CM frame at ``model_config.sqrt_s``), in memory or
    streamed (:class:`lipsgen.training.streaming.StreamedEvents`, windows of
    ``train_config.window_events``); write
    ``out_dir/checkpoint.pt`` during training and the final EMA model to ``out_dir/model.pt``.

    ``data_attributes`` (the training file's attributes: target, its parameters, seed) are kept in
    the checkpoint as ``data``, so samples can be cut like the training data.

    ``stop_after`` ends this run after that many steps (checkpointed), for jobs cut into slices;
    ``resume=True`` continues from ``out_dir/checkpoint.pt`` to exactly the uninterrupted result;
    a different ``train_config.steps`` extends (or shortens) the run, its cosine schedule stretched
    to the new total from the step reached.

    ``events=None`` with a target ``density`` trains without events, from the density alone (models
    whose process has a ``density_loss``: the normalizing flow); ``data_attributes`` then name the
    target and its parameters.

    ``events=None`` with ``items`` trains on items already in the model's space with their own loss
    (a distilled student on its teacher's pairs); the model starts from ``items.initial``.

    ``world``: this process's rank among the ranks of a torchrun job (module docstring); the
    process group must be joined (:func:`lipsgen.distributed.join_world`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device)
    seed = train_config.seed
    with torch.random.fork_rng(devices=[]):  # the initial weights from the seed; the caller's stream untouched
        torch.manual_seed(seed)
        model = GenerativeModel(model_config)
    if items is not None:
        if events is not None or density is not None:
            raise ValueError("training items replace events and densities: give one source")
        n_events, batch_size = 0, min(train_config.batch_size, items.n_items)
        if world.size > batch_size:
            raise ValueError(f"{world.size} ranks but a global batch of {batch_size} items: use fewer ranks")
        if "net" in items.initial:
            model.net.load_state_dict(items.initial["net"])
        model.load_extra_state(items.initial.get("extra", {}))
        data_attributes = {**(data_attributes or {}), "data_fingerprint": items.fingerprint}
    elif events is None:
        if density is None:
            raise ValueError("training needs events or a target density")
        if not model.process.trains_from_density:
            raise ValueError(f"model {model_config.model} trains on events only; training from a density alone "
                             f"needs a model with an exact one-pass density (nf)")
        if world.distributed:
            raise ValueError("training from a density runs in one process: its self-normalised loss couples the "
                             "whole batch; start it without torchrun")
        n_events, batch_size = 0, train_config.batch_size
        model.fit_target(lambda events: checked_log_density(density, events), derived_generator(seed, "fit"))
    source: EventSource | None = None
    if events is not None:
        source = events if isinstance(events, EventSource) else InMemoryEvents(events[: train_config.max_events])
        if source.n_particles != model_config.n_particles:
            raise ValueError(f"data have {source.n_particles} particles, the model expects {model_config.n_particles}")
        n_events = source.n_events
        if n_events < 2:
            raise ValueError(f"need at least 2 training events, got {n_events}")
        batch_size = min(train_config.batch_size, n_events)
        if world.size > batch_size:
            raise ValueError(f"{world.size} ranks but a global batch of {batch_size} events: every rank needs at "
                             f"least one event per step; use fewer ranks or a larger --batch-size")
        window = train_config.window_events
        if window is not None and min(-(-window // BLOCK_EVENTS) * BLOCK_EVENTS, n_events) < batch_size:
            raise ValueError(f"a streaming window of {window} events is smaller than a batch of {batch_size}")
        model.fit_data(source.fit_sample(), derived_generator(seed, "fit"))
    model.to(device)

    def log_target(x: Tensor) -> Tensor:
        """The lifted target's log-density (n,) at states x (n, N, 3) of the model's space."""
        assert density is not None
        events = model.space.decode(x)
        return (model.space.represented_log_density(checked_log_density(density, events), events)
                + model.reference_log_prob(x))

    # a symmetrised flow learns the target as the mixture of its relabellings (each labelling need
    # cover only what the others do not: the multi-channel idea of MadNIS, channels being labellings)
    symmetrised = model.symmetrised_flow_log_prob if model_config.symmetry != "none" else None

    optimizer = torch.optim.AdamW(model.net.parameters(), lr=train_config.lr,
                                  weight_decay=train_config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, train_config))
    ema = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
    step = 0
    checkpoint_path = out / CHECKPOINT
    # plain scalars only (as read_events returns them): checkpoints load with weights_only=True
    data_record = {str(k): v for k, v in (data_attributes or {}).items() if isinstance(v, (str, int, float, bool))}
    if resume:
        state = read_checkpoint(checkpoint_path, device)
        found = ModelConfig.from_dict(state["model_config"])
        diff = config_mismatch(model_config, found)
        if diff:
            raise CheckpointError(f"{checkpoint_path}: cannot resume a different model ({'; '.join(diff)})")
        found_train = TrainConfig.from_dict(state["train_config"])
        if replace(found_train, steps=train_config.steps) != train_config:  # the total may change
            differ = [f"{k}: {v!r} in the checkpoint, {getattr(train_config, k)!r} now"
                      for k, v in found_train.to_dict().items() if getattr(train_config, k) != v]
            raise CheckpointError(f"{checkpoint_path}: cannot resume with different training settings "
                                  f"({'; '.join(differ)})")
        before, now = state.get("data", {}).get("data_fingerprint"), data_record.get("data_fingerprint")
        if before is not None and now is not None and before != now:
            raise CheckpointError(f"{checkpoint_path}: the run was trained on other events (fingerprint {before}, "
                                  f"now {now}); resume with the same --data")
        model.load_state_dict(state["model"])
        model.net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ema = state["ema"]
        model.load_extra_state(state.get("extra", {}))
        step = int(state["step"])
        recorded_world = int(state.get("world_size", 1))
        if recorded_world != world.size:
            raise CheckpointError(f"{checkpoint_path}: written by a run on {recorded_world} rank(s), resumed on "
                                  f"{world.size}; resume with the same number of processes (torchrun "
                                  f"--nnodes x --nproc-per-node) to continue exactly")
        if step > train_config.steps:
            raise CheckpointError(f"{checkpoint_path}: the run is at step {step}, beyond the {train_config.steps} "
                                  f"steps asked for")


    def snapshot() -> dict[str, Any]:
        return {
            "model_config": model_config.to_dict(), "train_config": train_config.to_dict(),
            "step": step, "seed": seed, "model": model.state_dict(), "net": model.net.state_dict(),
            "ema": ema, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "extra": model.extra_state(), "data": data_record, "world_size": world.size,
            "schedule": {"process": type(model.process).__name__,
                         "default_steps": model.default_steps},
        }

    # the state dict's tensors share the parameters' storage: paired once, they follow every step
    live = model.net.state_dict()
    ema_floating = [ema[k] for k, v in live.items() if v.is_floating_point()]
    live_floating = [v for v in live.values() if v.is_floating_point()]
    ema_other = [(ema[k], v) for k, v in live.items() if not v.is_floating_point()]
    # every rank holds the same parameters: DDP only has to average the gradients
    net = torch.nn.parallel.DistributedDataParallel(model.net) if world.distributed else model.net
    rows = world.rows()
    schedule = _window_schedule(source, train_config, model.process.items_per_event, batch_size, step) \
        if source is not None else None
    cached_window, order = (-1, -1), torch.empty(0, dtype=torch.long)
    # items stay on the device for the whole run; events are lifted afresh each epoch (window)
    data = {k: v.to(device) for k, v in items.tensors.items()} if items is not None else {}
    start, loss_value = time.perf_counter(), float("nan")
    last = train_config.steps if stop_after is None else min(train_config.steps, step + stop_after)
    last_saved = time.monotonic()
    with progress_bar(total=train_config.steps, initial=step, unit="step", desc=f"train {model_config.model}",
                      enable=progress if world.is_main else False) as bar, _deferred_interrupts() as stop:
        while step < last:
            step_generator = derived_generator(seed, "step", step, device)
            if events is None and items is None:
                loss = model.process.density_loss(model.net, log_target, batch_size, step_generator, device,
                                                  log_prob=symmetrised)
                logged = loss.detach()
            else:
                if items is not None:
                    epoch, offset = divmod(step, items.n_items // batch_size)
                    if (epoch, 0) != cached_window:
                        order = torch.randperm(items.n_items, generator=derived_generator(seed, "epoch", epoch))
                        cached_window = (epoch, 0)
                else:
                    assert schedule is not None and source is not None
                    epoch, window, n_windows, blocks, offset = next(schedule)
                    if (epoch, window) != cached_window:
                        stream = epoch * n_windows + window  # in memory: the epoch
                        gen = derived_generator(seed, "epoch", stream)
                        encoded = model.space.encode(source.read(blocks), gen).to(device)
                        forward = derived_generator(seed, "forward", stream, device)
                        data = model.process.prepare_epoch(encoded, forward, world)
                        order = torch.randperm(len(next(iter(data.values()))), generator=gen)
                        cached_window = (epoch, window)
                index = order[offset * batch_size:(offset + 1) * batch_size].to(device)
                batch = {k: v[index[rows]] for k, v in data.items()}
                share = len(index[rows]) / len(index)  # of the global batch, whose mean loss is optimised
                if items is not None:
                    loss = items.loss(net, batch)
                else:
                    loss = model.process.loss(net, batch, BatchDraws(step_generator, len(index), rows))
                logged = loss.detach()
                if world.distributed:
                    global_loss = (logged * share).reshape(1)
                    torch.distributed.all_reduce(global_loss)
                    # DDP averages gradients over the K ranks: weight each rank's mean by K x its share
                    loss, logged = loss * (share * world.size), global_loss[0]
            if not torch.isfinite(logged):
                raise FloatingPointError(f"training diverged: loss {logged.item()} at step {step}; "
                                         f"lower the learning rate or check the data")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.net.parameters(), train_config.grad_clip)
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                decay = min(train_config.ema_decay, (1 + step) / (10 + step))
                torch._foreach_lerp_(ema_floating, live_floating, 1 - decay)  # one fused update of every weight
                for averaged, value in ema_other:
                    averaged.copy_(value)
            step += 1
            loss_value = logged.item()
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4g}", refresh=False)
            if (step % train_config.checkpoint_every == 0 or step == last or stop
                    or time.monotonic() - last_saved > CHECKPOINT_SECONDS) and world.is_main:
                save_checkpoint(checkpoint_path, snapshot())
                last_saved = time.monotonic()
            if stop:
                raise Terminated() if stop[0] == signal.SIGTERM else KeyboardInterrupt()
    if step < train_config.steps:
        world.barrier()  # the checkpoint is on disk before any rank reports the slice done
        return TrainResult(checkpoint_path, step, time.perf_counter() - start, loss_value, n_events)
    if world.is_main:
        save_checkpoint(out / FINAL, snapshot())
    world.barrier()
    return TrainResult(out / FINAL, step, time.perf_counter() - start, loss_value, n_events)

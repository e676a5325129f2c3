"""Hand-written pieces against their library counterparts, timed side by side (issue 27, item 6).

1. The EMA of the weights: lipsgen's in-place update over ``state_dict()`` against
   ``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn`` (cpu preset MLP, N = 3,
   and transformer, N = 10), per optimiser step.
2. The per-event Jacobian of a sampler step: the copy-D-times reverse pass lipsgen used against
   ``torch.func.jacrev`` of the batch-summed step, which ``solver.step_jacobians`` now uses (events do
   not interact, so the summed output's Jacobian holds every event's block), on an fm-z Euler step.

Both pairs are checked to give the same numbers before they are timed. Medians of interleaved runs.

Usage: python bench/library_pieces.py [--events 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn  # noqa: E402

from common import interleaved_medians, machine  # noqa: E402
from lipsgen.models.model import GenerativeModel, ModelConfig  # noqa: E402
from lipsgen.models.processes.solver import step_jacobians  # noqa: E402
from lipsgen.training import resolve_preset  # noqa: E402

DECAY = 0.999


def cpu_model(n_particles: int) -> GenerativeModel:
    backbone = "mlp" if n_particles == 3 else "transformer"
    config, _ = resolve_preset("cpu", ModelConfig("fm-z", n_particles, backbone=backbone))
    torch.manual_seed(0)
    return GenerativeModel(config)


def ema_pair(net: torch.nn.Module) -> dict[str, object]:
    ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
    averaged = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(DECAY), use_buffers=True)

    @torch.no_grad()
    def by_hand() -> None:
        for key, value in net.state_dict().items():
            if value.is_floating_point():
                ema[key].mul_(DECAY).add_(value, alpha=1 - DECAY)
            else:
                ema[key].copy_(value)

    def library() -> None:
        averaged.update_parameters(net)

    return {"by hand": by_hand, "AveragedModel": library}


def jacobian_pair(model: GenerativeModel, n_events: int) -> dict[str, object]:
    generator = torch.Generator().manual_seed(1)
    x = model.noise_prior(n_events, generator, torch.device("cpu"))
    step = model.process.step(model.net, "euler", generator)
    model.net.eval()

    def copies() -> torch.Tensor:  # lipsgen's method before this measurement
        dim = x[0].numel()
        copied = x.unsqueeze(0).expand(dim, *x.shape).reshape(dim * n_events, *x.shape[1:]).clone()
        copied.requires_grad_(True)
        with torch.enable_grad():
            out = step(copied, 0.5, 0.49, False).reshape(dim, n_events, dim)
            (grad,) = torch.autograd.grad(out.diagonal(dim1=0, dim2=2).sum(), copied)
        return grad.reshape(dim, n_events, dim).transpose(0, 1).to(torch.float64)

    def func() -> torch.Tensor:  # solver.step_jacobians: torch.func.jacrev of the batch-summed step
        return step_jacobians(step, x, 0.5, 0.49, False)[1]

    difference = float((copies() - func()).abs().max().detach())
    assert difference < 1e-5, f"the two Jacobians differ by {difference}"
    return {"copy D times": copies, "torch.func.jacrev": func}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    print("| piece (hand-written / library) | N | hand-written (ms) | library (ms) | library / hand-written |")
    print("|---|---:|---:|---:|---:|")
    for n_particles in (3, 10):
        model = cpu_model(n_particles)
        for piece, pair in (("EMA update per step", ema_pair(model.net)),
                            (f"step Jacobian, {args.events} events", jacobian_pair(model, args.events))):
            names = list(pair)
            times = interleaved_medians(pair, args.repeats)  # type: ignore[arg-type]
            ours, theirs = times[names[0]], times[names[1]]
            print(f"| {piece} ({names[0]} / {names[1]}) | {n_particles} | {1e3 * ours:.2f} | {1e3 * theirs:.2f} | "
                  f"{theirs / ours:.2f} |", flush=True)


if __name__ == "__main__":
    main()

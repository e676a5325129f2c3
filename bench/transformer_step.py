"""The transformer backbone's training step: what the relative output and the relative updates cost.

Times one forward and backward pass of ``TransformerBackbone`` at the cpu preset's size (width 64, depth 2,
4 heads) on a batch of SARGE-sized states (256 events of 10 particles), without and with the relative
output, the per-block relative updates and the token updates; the attention softmax, torch's kernel against
``networks._softmax_last``, on the attention scores of that batch (256, 4, 10, 10), forward and backward;
and the step's EMA update of the weights (with the updates' network), a loop over the state dict's
tensors against the trainer's one fused ``torch._foreach_lerp_``.
Interleaved medians (``common.interleaved_medians``) and ratios to the plain backbone in the same process.
Prints a Markdown table.

Usage: python bench/transformer_step.py [--batch 256] [--particles 10] [--repeats 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import interleaved_medians, machine  # noqa: E402
from lipsgen.models.networks import TransformerBackbone, _softmax_last  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--particles", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, t = torch.randn(args.batch, args.particles, 3), torch.rand(args.batch)
    variants = {"plain": {}, "relative output": dict(relative_output=True),
                "relative output + updates": dict(relative_output=True, relative_updates=True),
                "+ token updates": dict(relative_output=True, relative_updates=True, token_updates=True)}
    steps = {}
    for name, options in variants.items():
        net = TransformerBackbone(args.particles, width=64, depth=2, heads=4, **options)
        with torch.no_grad():  # away from the zero initialisation, so every branch carries gradient
            for parameter in net.parameters():
                parameter.normal_(0.0, 0.05)

        def step(net: TransformerBackbone = net) -> None:
            net.zero_grad(set_to_none=True)
            net(x, t).square().sum().backward()

        steps[name] = step
    scores = torch.randn(args.batch, 4, args.particles, args.particles, requires_grad=True)
    softmaxes = {"torch.softmax": lambda: scores.softmax(dim=-1).square().sum().backward(),
                 "_softmax_last": lambda: _softmax_last(scores).square().sum().backward()}
    ema_net = TransformerBackbone(args.particles, width=64, depth=2, heads=4, **variants["+ token updates"])
    averaged = {k: v.clone() for k, v in ema_net.state_dict().items() if v.is_floating_point()}
    averaged_list, live = list(averaged.values()), [ema_net.state_dict()[k] for k in averaged]

    @torch.no_grad()
    def ema_loop() -> None:  # as the trainer did it before 231e3ba
        for key, value in ema_net.state_dict().items():
            if value.is_floating_point():
                averaged[key].mul_(0.999).add_(value, alpha=0.001)

    @torch.no_grad()
    def ema_fused() -> None:
        torch._foreach_lerp_(averaged_list, live, 0.001)

    emas = {"EMA, loop over tensors": ema_loop, "EMA, fused": ema_fused}
    medians = interleaved_medians({**steps, **softmaxes, **emas}, args.repeats)
    print(f"Machine: {machine()}\n")
    print("| pass (forward + backward) | median (ms) | ratio |\n|---|---:|---:|")
    for group, reference in ((steps, "plain"), (softmaxes, "torch.softmax"), (emas, "EMA, loop over tensors")):
        for name in group:
            print(f"| {name} | {1e3 * medians[name]:.2f} | {medians[name] / medians[reference]:.2f} |")


if __name__ == "__main__":
    main()

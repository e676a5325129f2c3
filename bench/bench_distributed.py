"""Scale-out on one machine: torchrun with 1 vs 2 CPU processes, and streaming memory.

Usage: python bench/bench_distributed.py [--steps 300] [--repeats 3] [--stream-events 10000000]

1. Training (fm-z, MLP, muon, batch 512) and sampling (10^5 events) as whole commands: one
   process with 1 and with 2 torch threads, and torchrun with 2 processes of 1 thread each;
   interleaved, median of --repeats; the ratio against the one-thread process in the same run.
2. Peak resident memory (ru_maxrss of the training process) training on a --stream-events x 10
   particle file: streamed (--window-events 2^20) and, with --in-memory, loaded whole.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import machine  # noqa: E402

LIPSGEN = [sys.executable, "-m", "lipsgen"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "lipsgen"]


def timed(command: list[str], threads: int) -> float:
    """Seconds the command itself reports for its work ("in X s"), start-up excluded."""
    env = {**os.environ, "CI": "true", "OMP_NUM_THREADS": str(threads)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return float(re.findall(r" in ([0-9.]+) s", result.stderr)[-1])


# a fresh wrapper per measurement: RUSAGE_CHILDREN is the largest child of the asking process so far
_PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak_rss_gib(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak resident memory in GiB) of a command."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _PEAK, *command], env={**os.environ, "CI": "true"},
                            capture_output=True, text=True, check=True)
    return time.perf_counter() - start, int(result.stdout.split()[-1]) / 2**20  # kB -> GiB


def epoch_share(model: str, n_events: int = 100_000, steps: int = 20) -> tuple[float, float]:
    """(seconds, share of an epoch) of the per-epoch lift and preparation (Langevin: the forward
    simulation), which every rank repeats, against the epoch's training steps (muon, cpu preset)."""
    import torch

    from lipsgen.models.model import GenerativeModel, ModelConfig
    from lipsgen.targets import MuonDecay
    from lipsgen.training import resolve_preset
    from lipsgen.training.trainer import derived_generator

    events = MuonDecay().sample(n_events, seed=1)
    model_config, train_config = resolve_preset("cpu", ModelConfig(model=model, n_particles=3, target="muon"))
    net_model = GenerativeModel(model_config)
    net_model.fit_data(events, derived_generator(0, "fit"))
    start = time.perf_counter()
    encoded = net_model.space.encode(events, derived_generator(0, "epoch", 0))
    data = net_model.process.prepare_epoch(encoded, derived_generator(0, "forward", 0))
    prepare = time.perf_counter() - start
    n_items = len(next(iter(data.values())))
    optimizer = torch.optim.AdamW(net_model.net.parameters())
    start = time.perf_counter()
    for step in range(steps):
        index = torch.randint(0, n_items, (train_config.batch_size,))
        loss = net_model.process.loss(net_model.net, {k: v[index] for k, v in data.items()},
                                      derived_generator(0, "step", step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    epoch_steps = (time.perf_counter() - start) / steps * (n_items // train_config.batch_size)
    return prepare, prepare / (prepare + epoch_steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stream-events", type=int, default=10_000_000)
    parser.add_argument("--in-memory", action="store_true", help="also train with the whole file loaded")
    parser.add_argument("--work", type=Path, default=None, help="folder for the data (default: a temporary one)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(dir=args.work) as work_dir:
        work = Path(work_dir)
        data = work / "muon.h5"
        subprocess.run(LIPSGEN + ["data", "muon", "--events", "100000", "--out", str(data), "--seed", "1"],
                       check=True, capture_output=True)
        train = ["train", "--data", str(data), "--model", "fm-z", "--max-steps", str(args.steps), "--seed", "0"]
        subprocess.run(LIPSGEN + train + ["--out", str(work / "model")], check=True, capture_output=True,
                       env={**os.environ, "CI": "true"})
        sample = ["sample", str(work / "model" / "model.pt"), "--events", "100000", "--seed", "1", "--force"]
        runs = {"1 process, 1 thread": (LIPSGEN, 1), "1 process, 2 threads": (LIPSGEN, 2),
                "2 processes x 1 thread": (TORCHRUN, 1)}
        times: dict[str, dict[str, list[float]]] = {"train": {k: [] for k in runs}, "sample": {k: [] for k in runs}}
        for repeat in range(args.repeats):
            for name, (launcher, threads) in runs.items():
                out = work / f"r{repeat}_{threads}_{len(launcher)}"
                times["train"][name].append(timed(launcher + train + ["--out", str(out)], threads))
                times["sample"][name].append(timed(launcher + sample + ["--out", str(out / "s.h5")], threads))
        for job, per_run in times.items():
            reference = sorted(per_run["1 process, 1 thread"])[len(per_run["1 process, 1 thread"]) // 2]
            print(f"{job} (median of {args.repeats}, interleaved; ratio = speed-up over 1 process x 1 thread):")
            for name, values in per_run.items():
                median = sorted(values)[len(values) // 2]
                print(f"  {name}: {median:.1f} s, speed-up {reference / median:.2f}x")

        print("per-epoch preparation repeated on every rank (muon, 100k events, cpu preset, 1 process):")
        for model in ("fm-z", "langevin"):
            seconds, share = epoch_share(model)
            print(f"  {model}: {seconds:.1f} s, {share:.1%} of an epoch")

        big = work / "uniform10.h5"
        start = time.perf_counter()
        subprocess.run(LIPSGEN + ["data", "uniform", "--particles", "10", "--events", str(args.stream_events),
                                  "--out", str(big), "--seed", "2"], check=True, capture_output=True)
        size = big.stat().st_size / 2**30
        print(f"\nstreaming: {args.stream_events} events x 10 particles, {size:.2f} GiB on disk "
              f"(written in {time.perf_counter() - start:.0f} s)")
        stream = LIPSGEN + ["train", "--data", str(big), "--model", "fm-z", "--max-steps", "200", "--batch-size", "512",
                            "--out", str(work / "streamed"), "--window-events", str(1 << 20)]
        seconds, peak = peak_rss_gib(stream)
        print(f"  streamed (--window-events {1 << 20}): peak RSS {peak:.2f} GiB, {seconds:.0f} s for 200 steps")
        if args.in_memory:
            whole = LIPSGEN + ["train", "--data", str(big), "--model", "fm-z", "--max-steps", "200",
                               "--batch-size", "512", "--out", str(work / "memory")]
            seconds, peak = peak_rss_gib(whole)
            print(f"  loaded whole: peak RSS {peak:.2f} GiB, {seconds:.0f} s for 200 steps")


if __name__ == "__main__":
    main()

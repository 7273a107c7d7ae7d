"""The same warm-up on CUDA and on the CPU: speed ratio, and whether the two VAA figures agree.

    .venv/bin/python bench/cuda_vs_cpu.py [--hidden 256] [--seq-length 100] [--steps 100]

The script prepared for a machine with a GPU (docs/benchmarks.md): a GRU 2 x hidden, seed 0,
warmed up with the paper's defaults on copy_first_input, once per device, each followed by
the exact VAA (S = --vaa-steps, n = 32) of the result. The two devices round differently, so
the warmed weights differ slightly; what must agree is the measure, within the spread of a
VAA estimate (1/n per attractor found or missed). Prints figures, asserts nothing; exits with
a message where torch sees no GPU.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from warmzoo.models.device import resolve_device
from warmzoo.models.network import build_network
from warmzoo.models.spec import RNNSpec
from warmzoo.models.tasks import make_task
from warmzoo.models.vaa import measure_vaa
from warmzoo.models.warmup import WarmupConfig, warmup


def run(device: str, args: argparse.Namespace) -> tuple[float, float, float, float]:
    """(VAA before, VAA after, warm-up seconds, measure seconds) on `device`."""
    spec = RNNSpec(cell="gru", input_size=1, hidden_size=args.hidden, num_layers=2, output_size=1)
    network = build_network(spec, seed=0).to(resolve_device(device))
    data = make_task("copy_first_input", args.seq_length, args.num_samples, seed=0).inputs.to(device)
    before = measure_vaa(network, data, steps=args.vaa_steps)[0]
    result = warmup(network, data, WarmupConfig(steps=args.steps), seed=0)
    started = time.perf_counter()
    after = measure_vaa(network, data, steps=args.vaa_steps)[0]
    if device == "cuda":
        torch.cuda.synchronize()
    return before, after, result.seconds, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--seq-length", type=int, default=100)
    parser.add_argument("--num-samples", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--vaa-steps", type=int, default=10_000)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device visible to torch: run this on a machine with a GPU (and torch's CUDA build)")
    print(f"GRU 2 x {args.hidden}, copy_first_input T={args.seq_length}, {args.steps} warm-up steps, seed 0")
    print(f"CPU: {torch.get_num_threads()} threads; GPU: {torch.cuda.get_device_name()}")
    rows = {device: run(device, args) for device in ("cuda", "cpu")}
    print(f"{'device':6} {'VAA before':>11} {'VAA after':>10} {'warm-up s':>10} {'measure s':>10}")
    for device, (before, after, seconds, measure) in rows.items():
        print(f"{device:6} {before:11.3f} {after:10.3f} {seconds:10.2f} {measure:10.2f}")
    (_, gpu_after, gpu_s, gpu_m), (_, cpu_after, cpu_s, cpu_m) = rows["cuda"], rows["cpu"]
    print(f"warm-up: CUDA {cpu_s / gpu_s:.1f}x faster; exact VAA: CUDA {cpu_m / gpu_m:.1f}x faster")
    print(f"VAA after, CUDA - CPU: {gpu_after - cpu_after:+.3f} (one attractor = {1 / 32:.3f})")


if __name__ == "__main__":
    main()

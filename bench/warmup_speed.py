"""One warm-up step: the batched prefix pass versus one sequence at a time.

Prints seconds per step and the ratio for each configuration, measured side by side
in one run with the same seeds. Asserts nothing.

    .venv/bin/python bench/warmup_speed.py [--repeats 3] [--device auto]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from warmzoo.models.device import resolve_device
from warmzoo.models.network import Network, build_network
from warmzoo.models.spec import RNNSpec
from warmzoo.models.tasks import make_task
from warmzoo.models.vaa import reachable_states, vaa_star

CONFIGS = [("gru", 100), ("gru", 784), ("brc", 100)]
HIDDEN, LAYERS, BATCH, S = 256, 2, 32, 100

Prefix = Callable[[Network, Tensor, torch.Generator], Tensor]


def naive_states(network: Network, sequences: Tensor, generator: torch.Generator) -> Tensor:
    """The naive way: each sequence's prefix run on its own, then stacked."""
    n, T, _ = sequences.shape
    lengths = torch.randint(1, T + 1, (n,), generator=generator)
    states = [network.recurrent(sequences[i : i + 1, : int(c)].to(network.device))[1] for i, c in enumerate(lengths)]
    return torch.cat(states, dim=1)


def one_step(network: Network, optimizer: torch.optim.Optimizer, batch: Tensor, prefix: Prefix, seed: int) -> float:
    generator = torch.Generator().manual_seed(seed)
    if network.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    h0 = prefix(network, batch, generator)
    loss = ((vaa_star(network, h0, steps=S, generator=generator) - 0.95) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if network.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def measure(cell: str, T: int, prefix: Prefix, repeats: int, device: torch.device) -> float:
    spec = RNNSpec(cell=cell, input_size=1, hidden_size=HIDDEN, num_layers=LAYERS)
    network = build_network(spec, seed=0).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    batch = make_task("copy_first_input", T, BATCH, seed=0).inputs.to(device)
    one_step(network, optimizer, batch, prefix, seed=0)  # warm-up of the allocator and kernels
    return statistics.median(one_step(network, optimizer, batch, prefix, seed=r + 1) for r in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device={device} threads={torch.get_num_threads()} hidden={HIDDEN} layers={LAYERS} n={BATCH} S={S}")
    print(f"{'cell':<5} {'T':>4} {'batched s/step':>15} {'naive s/step':>13} {'ratio':>6}")
    for cell, T in CONFIGS:
        batched = measure(cell, T, reachable_states, args.repeats, device)
        naive = measure(cell, T, naive_states, args.repeats, device)
        print(f"{cell:<5} {T:>4} {batched:>15.3f} {naive:>13.3f} {naive / batched:>5.1f}x", flush=True)


if __name__ == "__main__":
    main()

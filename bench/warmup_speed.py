"""Where the time of a warm-up job goes, and what the fast paths save.

Four tables, each measured side by side in one run with the same seeds (asserts nothing):

1. one warm-up step (prefix pass, VAA* roll of S steps, backward, Adam), eager time loop
   (`eager_loops()`: the cell's equations one autograd op at a time) versus the fused loop;
2. one exact VAA (n = 32, S steps): the reference (eager loop, every step rolled) versus
   the fast path (fused loop, whole chunks skipped once they repeat bit for bit);
3. the phases of a default warm-up job (exact VAA before with 3 estimates, 100 warm-up
   steps, the same after, ONNX export), fast paths on;
4. the batched prefix pass versus one sequence at a time (the GPU check of bench/cuda_vs_cpu.py).

    .venv/bin/python bench/warmup_speed.py [--tables 1 2 3] [--hidden 64 256] [--vaa-steps 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from warmzoo.models.device import resolve_device
from warmzoo.models.network import Network, build_network
from warmzoo.models.onnx import export_onnx
from warmzoo.models.recurrence import eager_loops
from warmzoo.models.spec import RNNSpec
from warmzoo.models.tasks import make_task
from warmzoo.models.vaa import measure_vaa, reachable_states, vaa, vaa_star
from warmzoo.models.warmup import WarmupConfig, warmup

LOOP_CELLS = ["brc", "nbrc", "mgu"]
LAYERS, N, T, S = 2, 32, 100, 100

Prefix = Callable[[Network, Tensor, torch.Generator], Tensor]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of `fn`: this process's CPU time on the CPU (one torch thread: the work itself,
    whatever else the machine runs), wall time on a GPU."""
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    _sync(device)
    started = clock()
    fn()
    _sync(device)
    return clock() - started


@contextlib.contextmanager
def _path(fast: bool) -> Iterator[None]:
    with contextlib.nullcontext() if fast else eager_loops():
        yield


def naive_states(network: Network, sequences: Tensor, generator: torch.Generator) -> Tensor:
    """The naive way: each sequence's prefix run on its own, then stacked."""
    n, length, _ = sequences.shape
    lengths = torch.randint(1, length + 1, (n,), generator=generator)
    states = [network.recurrent(sequences[i : i + 1, : int(c)].to(network.device))[1] for i, c in enumerate(lengths)]
    return torch.cat(states, dim=1)


def _network(cell: str, hidden: int, device: torch.device) -> Network:
    return build_network(RNNSpec(cell=cell, input_size=1, hidden_size=hidden, num_layers=LAYERS), seed=0).to(device)


def warmup_step_seconds(cell: str, hidden: int, length: int, prefix: Prefix, fast: bool, device: torch.device) -> float:
    """Median seconds of one warm-up step (after one untimed step)."""
    network = _network(cell, hidden, device)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    batch = make_task("copy_first_input", length, N, seed=0).inputs.to(device)

    def step(seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        loss = ((vaa_star(network, prefix(network, batch, generator), steps=S, generator=generator) - 0.95) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    with _path(fast):
        step(0)
        return statistics.median(_timed(lambda: step(seed), device) for seed in range(1, 4))


def exact_vaa_seconds(cell: str, hidden: int, steps: int, fast: bool, device: torch.device) -> tuple[float, float]:
    """(seconds, VAA) of one exact VAA from the reachable states of copy_first_input T = 100."""
    network = _network(cell, hidden, device)
    h0 = reachable_states(network, make_task("copy_first_input", T, N, seed=0).inputs, torch.Generator().manual_seed(0))
    result: list[float] = []

    def measure() -> None:
        generator = torch.Generator().manual_seed(1)
        result.append(vaa(network, h0.detach(), steps=steps, generator=generator, stop_at_repeat=fast))

    with _path(fast):
        seconds = _timed(measure, device)
    return seconds, result[0]


def job_phases(cell: str, hidden: int, steps: int, device: torch.device) -> dict[str, float]:
    """Seconds of each phase of a default warm-up job on copy_first_input T = 100."""
    network = _network(cell, hidden, device)
    inputs = make_task("copy_first_input", T, 512, seed=0).inputs
    phases: dict[str, float] = {}
    for name, fn in (
        ("measure before", lambda: measure_vaa(network, inputs, steps=steps, n=N, repeats=3)),
        ("warm-up", lambda: warmup(network, inputs, WarmupConfig(), seed=0)),
        ("measure after", lambda: measure_vaa(network, inputs, steps=steps, n=N, repeats=3)),
        ("export", lambda: export_onnx(network)),
    ):
        phases[name] = _timed(fn, device)
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", type=int, default=[1, 2, 3], choices=[1, 2, 3, 4])
    parser.add_argument("--hidden", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--cells", nargs="+", default=LOOP_CELLS)
    parser.add_argument("--vaa-steps", type=int, default=10_000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    clock = "wall" if device.type == "cuda" else "process CPU"
    print(f"device={device} threads={torch.get_num_threads()} layers={LAYERS} n={N} T={T}; {clock} seconds")

    if 1 in args.tables:
        print(f"\n1. warm-up step (S = {S}), seconds: eager loop vs fused loop")
        print(f"{'cell':<5} {'H':>4} {'eager':>8} {'fused':>8} {'ratio':>6}")
        for hidden in args.hidden:
            for cell in args.cells:
                eager = warmup_step_seconds(cell, hidden, T, reachable_states, False, device)
                fast = warmup_step_seconds(cell, hidden, T, reachable_states, True, device)
                print(f"{cell:<5} {hidden:>4} {eager:>8.3f} {fast:>8.3f} {eager / fast:>5.1f}x", flush=True)

    if 2 in args.tables:
        print(f"\n2. exact VAA (S = {args.vaa_steps}), seconds: reference vs fast (VAA must be equal)")
        print(f"{'cell':<5} {'H':>4} {'reference':>10} {'fast':>8} {'ratio':>6} {'VAA ref':>8} {'VAA fast':>8}")
        for hidden in args.hidden:
            for cell in args.cells:
                ref_s, ref_vaa = exact_vaa_seconds(cell, hidden, args.vaa_steps, False, device)
                fast_s, fast_vaa = exact_vaa_seconds(cell, hidden, args.vaa_steps, True, device)
                print(
                    f"{cell:<5} {hidden:>4} {ref_s:>10.2f} {fast_s:>8.2f} {ref_s / fast_s:>5.1f}x "
                    f"{ref_vaa:>8.4f} {fast_vaa:>8.4f}",
                    flush=True,
                )

    if 3 in args.tables:
        print(f"\n3. phases of a default warm-up job (S = {args.vaa_steps}, 3 estimates before and after), seconds")
        print(f"{'cell':<5} {'H':>4} {'before':>8} {'warm-up':>8} {'after':>8} {'export':>8}")
        for hidden in args.hidden:
            for cell in args.cells:
                p = job_phases(cell, hidden, args.vaa_steps, device)
                print(
                    f"{cell:<5} {hidden:>4} {p['measure before']:>8.1f} {p['warm-up']:>8.1f} "
                    f"{p['measure after']:>8.1f} {p['export']:>8.1f}",
                    flush=True,
                )

    if 4 in args.tables:
        print(f"\n4. warm-up step (H = 256, S = {S}), seconds: batched prefix pass vs one sequence at a time")
        print(f"{'cell':<5} {'T':>4} {'batched':>8} {'naive':>8} {'ratio':>6}")
        for cell, length in (("gru", 100), ("gru", 784), ("brc", 100)):
            batched = warmup_step_seconds(cell, 256, length, reachable_states, True, device)
            naive = warmup_step_seconds(cell, 256, length, naive_states, True, device)
            print(f"{cell:<5} {length:>4} {batched:>8.3f} {naive:>8.3f} {naive / batched:>5.1f}x", flush=True)


if __name__ == "__main__":
    main()

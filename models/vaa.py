"""Reachable multistability: the exact VAA and its differentiable relaxation VAA*.

Notation of docs/design.md, section 1: n relevant input sequences give n reachable
starting states h0_i; the network is then rolled on a constant Gaussian input and
the distinct end points are counted.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from warmzoo.models.distances import pairwise_distances
from warmzoo.models.network import Network
from warmzoo.models.stopping import Stop, never

VAA_CHUNK = 250  # steps per chunk of the exact VAA roll: bounds memory, and is the period of the repeat check


def reachable_states(network: Network, sequences: Tensor, generator: torch.Generator) -> Tensor:
    """Stack state [L, n, S] after a random prefix c_i ~ U{1..T} of each sequence [n, T, I].

    One batched pass: every sequence runs to the longest prefix and keeps its state
    from its own c_i (gathered from the outputs, or packed for the LSTM cells)."""
    n, T, _ = sequences.shape
    lengths = torch.randint(1, T + 1, (n,), generator=generator)
    x = sequences[:, : int(lengths.max())].to(network.device)
    return network.recurrent(x, lengths=lengths.to(network.device))[1]


def _gaussian(size: int, generator: torch.Generator, device: torch.device) -> Tensor:
    # Drawn on the CPU generator so a seed means the same draw on every device.
    return torch.randn(size, generator=generator).to(device)


RollProgress = Callable[[int], None]  # steps rolled (or known) so far, between chunks and at the end


@torch.no_grad()
def vaa(
    network: Network,
    h0: Tensor,
    *,
    steps: int,
    generator: torch.Generator,
    eps: float = 1e-4,
    stop_at_repeat: bool = True,
    stop: Stop = never,
    progress: RollProgress | None = None,
) -> float:
    """Exact VAA = (1/n) sum_i 1/N_i, N_i = #{j : ||z_j - z_i|| < eps}, after `steps`
    steps of the whole stack on one shared input u ~ N(0, I) from h0 [L, n, S].
    `stop_at_repeat=False` rolls every step (the reference the shortcut is tested against);
    `stop` is called before each chunk of the roll."""
    u = _gaussian(network.spec.input_size, generator, network.device)
    state, n = h0, h0.shape[1]
    x = u.view(1, 1, -1).expand(n, VAA_CHUNK, -1)
    # A partial chunk first, then whole chunks. A whole chunk is the same computation every
    # time, so once it returns its own input bit for bit (a fixed point, or any cycle whose
    # period divides the chunk) every later chunk would too: the end state is known exactly.
    first = steps % VAA_CHUNK
    if first:
        stop()
        state = network.recurrent(x[:, :first], state)[1]
    for i in range(steps // VAA_CHUNK):
        stop()
        if progress is not None and i:
            progress(first + i * VAA_CHUNK)
        previous, state = state, network.recurrent(x, state)[1]
        if stop_at_repeat and torch.equal(state, previous):
            break  # the remaining chunks are known: counted as rolled below
    if progress is not None:
        progress(steps)
    z = state.permute(1, 0, 2).reshape(n, -1)  # every layer's state (and c) concatenated
    counts = (pairwise_distances(z) < eps).sum(dim=1).float()
    return float((1.0 / counts).mean())


def vaa_star(
    network: Network,
    h0: Tensor,
    *,
    steps: int,
    generator: torch.Generator,
    eps: float = 1e-4,
    partial: bool = True,
    stop: Stop = never,
) -> Tensor:
    """Differentiable VAA*_l for each layer l, as a tensor [L].

    Each layer rolls alone for `steps` steps on its own u_l from h0[l]; for a double
    layer with partial warm-up only the first half-cell is rolled (and so trained).
    C_ij = 1 - relu(d_ij - eps) / (d_ij + 1e-6) is a soft "same attractor" count. `stop` is
    called before each layer's roll."""
    values = []
    for layer, s0 in zip(network.layers, h0):
        stop()
        if partial and network.spec.double:
            s0 = layer.split(s0)[0]
            layer = layer.first
        u = _gaussian(layer.input_size, generator, network.device)
        z = torch.tanh(layer.roll(u, s0, steps))
        d = pairwise_distances(z)
        soft_same = 1 - torch.relu(d - eps) / (d + 1e-6)
        values.append((1.0 / soft_same.sum(dim=1)).mean())
    return torch.stack(values)


def measure_vaa(
    network: Network,
    sequences: Tensor,
    *,
    steps: int = 10_000,
    n: int = 32,
    repeats: int = 1,
    seed: int = 0,
    eps: float = 1e-4,
    replacement: bool = False,
    stop: Stop = never,
    progress: RollProgress | None = None,
) -> list[float]:
    """Exact VAA of `repeats` independent estimates, each on n sequences drawn from the data
    (distinct ones, or drawn with replacement as the paper's code does along training);
    `progress` counts the steps rolled over all of them (a long roll is seen to advance)."""
    generator = torch.Generator().manual_seed(seed)
    estimates = []
    with torch.no_grad():
        for i in range(repeats):
            if replacement:
                pick = torch.randint(0, sequences.shape[0], (n,), generator=generator)
            else:
                pick = torch.randperm(sequences.shape[0], generator=generator)[:n]
            h0 = reachable_states(network, sequences[pick], generator)
            rolled = None if progress is None else lambda done, i=i: progress(i * steps + done)
            estimates.append(vaa(network, h0, steps=steps, generator=generator, eps=eps, stop=stop, progress=rolled))
    return estimates

"""The warm-up of arXiv 2106.01001: gradient steps that push every layer's VAA* to a target."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from warmzoo.models.network import Network
from warmzoo.models.stopping import Stop, never
from warmzoo.models.vaa import reachable_states, vaa_star


class WarmupConfig(BaseModel):
    """Every knob of the procedure; the defaults are the paper's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Every knob is bounded, so that no request can ask for unbounded work or memory: the roll of
    # VAA* keeps its graph for S steps (memory grows with stabilization_max), and an Adam step
    # beyond learning rate 1 is no warm-up. A server may bound steps further (max_warmup_steps).
    steps: int = Field(default=100, ge=0, le=1_000_000, description="Adam steps.")
    learning_rate: float = Field(default=1e-2, gt=0, le=1, allow_inf_nan=False, description="Adam learning rate.")
    batch_size: int = Field(default=32, ge=2, le=65_536, description="Task sequences per step (n).")
    stabilization_increment: int = Field(
        default=10, ge=0, le=1000, description="S ~ U{1..min(1 + increment*k, max)} at step k."
    )
    stabilization_max: int = Field(
        default=200, ge=1, le=1000, description="Largest number of constant-input steps S (5x the paper's 200 at most)."
    )
    epsilon: float = Field(
        default=1e-4, gt=0, le=1, allow_inf_nan=False, description="Distance below which two end states coincide."
    )
    target: float = Field(default=0.95, gt=0, le=1, allow_inf_nan=False, description="Target VAA* of every layer.")
    partial: bool = Field(default=True, description="For double layers, VAA* rolls only the first half-cells.")
    partial_freeze: bool = Field(
        default=False,
        description="With partial warm-up, also keep the second half-cells out of the optimiser "
        "(by default they move with the gradient that reaches them through h0, as in the paper's code).",
    )


class WarmupDiverged(RuntimeError):
    """VAA* became NaN: the run cannot continue and must not be published."""


@dataclass
class WarmupResult:
    vaa_star_history: list[float] = field(default_factory=list)  # mean over layers, one per step
    vaa_star_layers: list[list[float]] = field(default_factory=list)  # per step, per layer
    steps_done: int = 0
    stopped: bool = False
    seconds: float = 0.0


ProgressFn = Callable[[int, int, float], None]
StopFn = Callable[[], bool]


def stabilization_steps(k: int, config: WarmupConfig, generator: torch.Generator) -> int:
    """S ~ U{1 .. min(1 + increment*k, max)} for step k (from 0)."""
    high = min(1 + config.stabilization_increment * k, config.stabilization_max)
    return int(torch.randint(1, high + 1, (1,), generator=generator))


def warmed_parameters(network: Network, config: WarmupConfig) -> list[torch.nn.Parameter]:
    """All parameters (the paper's code), or, with `partial_freeze`, all but the second half-cells
    of double layers under partial warm-up.

    VAA* never rolls those halves, but the prefix pass sends them a small gradient through h0,
    and Adam's step is scale-free: in the optimiser they move about as much as the warmed
    halves. `partial_freeze` keeps their (monostable) initialisation exactly."""
    if not (config.partial and config.partial_freeze and network.spec.double):
        return list(network.parameters())
    frozen = {id(p) for layer in network.layers for p in layer.second.parameters()}
    return [p for p in network.parameters() if id(p) not in frozen]


def shuffled_batches(num: int, size: int, generator: torch.Generator):
    """Indices of shuffled passes over the data, `size` at a time, forever.

    A pass ends with its smaller remainder batch, as in the paper's code, unless that batch
    holds a single sequence (VAA* compares end states: it needs two)."""
    size = min(size, num)
    while True:
        order = torch.randperm(num, generator=generator)
        for start in range(0, num, size):
            batch = order[start : start + size]
            if batch.numel() >= 2:
                yield batch


def warmup(
    network: Network,
    inputs: Tensor,
    config: WarmupConfig | None = None,
    *,
    seed: int = 0,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    stop: Stop = never,
) -> WarmupResult:
    """Warm `network` up in place on task sequences `inputs` [N, T, I].

    loss = mean_l (VAA*_l - target)^2, with gradients through the prefix pass that
    produced the starting states. `should_stop` is checked between steps (cooperative
    cancel: the partial result is returned); `stop` is called inside each step too, between
    layers of the VAA* roll, and raises to abandon the warm-up; `progress(step, total,
    vaa_star)` is called after each step."""
    config = config or WarmupConfig()
    if inputs.shape[0] < 2:
        raise ValueError("warm-up needs at least 2 input sequences")
    inputs = inputs.to(network.device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(warmed_parameters(network, config), lr=config.learning_rate)
    batches = shuffled_batches(inputs.shape[0], config.batch_size, generator)
    result, started = WarmupResult(), time.perf_counter()
    network.train()
    for k in range(config.steps):
        if should_stop is not None and should_stop():
            result.stopped = True
            break
        steps = stabilization_steps(k, config, generator)
        h0 = reachable_states(network, inputs[next(batches)], generator)
        per_layer = vaa_star(
            network, h0, steps=steps, generator=generator, eps=config.epsilon, partial=config.partial, stop=stop
        )
        value = float(per_layer.detach().mean())
        if math.isnan(value):
            raise WarmupDiverged(f"VAA* became NaN at step {k}: lower warmup.learning_rate")
        loss: Tensor = ((per_layer - config.target) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        result.vaa_star_history.append(value)
        result.vaa_star_layers.append(per_layer.detach().tolist())
        result.steps_done = k + 1
        if progress is not None:
            progress(k + 1, config.steps, value)
    network.eval()
    result.seconds = time.perf_counter() - started
    return result

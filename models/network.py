"""A stack of recurrent layers with a linear readout, built from an `RNNSpec`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from warmzoo.models.cells import Layer, make_layer
from warmzoo.models.spec import RNNSpec


class Network(nn.Module):
    """h^l_t = f_l(h^l_{t-1}, h^{l-1}_t), y_t = W h^L_t + b; batch-first at the boundary.

    The recurrent state of the whole stack is one tensor [num_layers, batch, state_size].
    """

    def __init__(self, spec: RNNSpec) -> None:
        super().__init__()
        self.spec = spec
        sizes = [spec.input_size] + [spec.hidden_size] * (spec.num_layers - 1)
        self.layers: nn.ModuleList = nn.ModuleList(make_layer(spec, size) for size in sizes)
        self.readout = nn.Linear(spec.hidden_size, spec.output_size)

    @property
    def device(self) -> torch.device:
        return self.readout.weight.device

    def zero_state(self, batch: int) -> Tensor:
        return torch.zeros(self.spec.num_layers, batch, self.spec.state_size, device=self.device)

    def recurrent(self, x: Tensor, state: Tensor | None = None, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x [B, T, I] -> last layer's outputs [B, T, H] and the stack's final state [L, B, S].

        With `lengths`, each sequence's final state is taken at its own length (gathered from the outputs, or packed)."""
        state = self.zero_state(x.shape[0]) if state is None else state
        finals = []
        for layer, s in zip(self._layers(), state):
            x, final = layer(x, s, lengths)
            finals.append(final)
        return x, torch.stack(finals)

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x [B, T, I] -> outputs [B, T, O] and final state [L, B, S]."""
        h, final = self.recurrent(x, state)
        return self.readout(h), final

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One time step written with each cell's equations: x_t [B, I], state [L, B, S]."""
        new_states = []
        for layer, s in zip(self._layers(), state):
            s = layer.step(x_t, s)
            x_t = layer.output(s)
            new_states.append(s)
        return self.readout(x_t), torch.stack(new_states)

    def _layers(self) -> list[Layer]:
        return list(self.layers)  # type: ignore[arg-type]


def build_network(spec: RNNSpec, seed: int | None = None) -> Network:
    """A freshly initialised network; the same seed gives the same weights."""
    if seed is None:
        return Network(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Network(spec)

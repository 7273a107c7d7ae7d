"""The recurrent networks of the warmzoo model zoo in plain PyTorch (warm-up: arXiv 2106.01001).

This file stands alone: it imports only torch and safetensors, so it runs next to the files
of a version without the warmzoo package. It loads a version's `weights.safetensors` (the
`model.safetensors` of a Hugging Face folder is the same file), whose header carries the spec:

    from modeling import load
    network = load("weights.safetensors")  # or load("model.safetensors", "config.json")
    y, state = network(torch.randn(1, 50, network.input_size))  # [batch, time, input_size]

`y` is [batch, time, output_size]; `state` is [num_layers, batch, state_size], each layer's
state being h, or [h; c] for LSTM cells; in a double layer the halves sit side by side
(h = [h1; h2], and for LSTM cells [h1; h2; c1; c2]). Pass `state` back in to carry on.

The parameter names are those of the zoo's files, so `network.load_state_dict` takes them
as they are; the cells are written out below, one class per cell.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor, nn


def mgu_update(p_f: Tensor, p_h: Tensor, h: Tensor, weight_hf: Tensor, weight_hh: Tensor) -> Tensor:
    """MGU: f = sigma(Wxf x + bf + Whf h); g = tanh(Whh (f*h) + Wxh x + bh); h' = (1 - f)*h + f*g,
    given the input projections p_f = Wxf x + bf and p_h = Wxh x + bh."""
    f = torch.sigmoid(p_f + h @ weight_hf.T)
    g = torch.tanh((f * h) @ weight_hh.T + p_h)
    return (1 - f) * h + f * g


def bistable_update(p_h: Tensor, h: Tensor, z_c: Tensor, z_a: Tensor) -> Tensor:
    """BRC / nBRC: c = sigma(z_c); a = 1 + tanh(z_a); h' = c*h + (1 - c)*tanh(Uh x + bh + a*h),
    given p_h = Uh x + bh and the gates' pre-activations z_c, z_a (fused ops: addcmul, lerp)."""
    c = torch.sigmoid(z_c)
    a = 1 + torch.tanh(z_a)
    return torch.lerp(torch.tanh(torch.addcmul(p_h, a, h)), h, c)


class GRUCell(nn.Module):
    """torch's GRU; state h."""

    parts = 1

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.rnn = nn.GRU(input_size, hidden_size, batch_first=True)

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        outputs, h = self.rnn(x, state.unsqueeze(0).contiguous())
        return outputs, h[0]


class LSTMCell(nn.Module):
    """torch's LSTM (also the chrono-initialised one); state [h; c]."""

    parts = 2

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.rnn = nn.LSTM(input_size, hidden_size, batch_first=True)

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        h, c = (s.unsqueeze(0).contiguous() for s in state.chunk(2, dim=-1))
        outputs, (h, c) = self.rnn(x, (h, c))
        return outputs, torch.cat([h[0], c[0]], dim=-1)


class LoopCell(nn.Module):
    """A cell whose input projection [gates * H] of all steps is one matmul; the recurrence loops."""

    parts = 1

    def __init__(self, input_size: int, hidden_size: int, gates: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.zeros(gates * hidden_size, input_size))
        self.bias = nn.Parameter(torch.zeros(gates * hidden_size))

    def recur(self, p_t: Tensor, h: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        h, outputs = state, []
        for p_t in (x @ self.weight_ih.T + self.bias).unbind(1):  # [batch, gates * H] per step
            h = self.recur(p_t, h)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h


class MGUCell(LoopCell):
    """Minimal gated unit; weight_ih = [Wxf; Wxh]."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, gates=2)
        self.weight_hf = nn.Parameter(torch.zeros(hidden_size, hidden_size))
        self.weight_hh = nn.Parameter(torch.zeros(hidden_size, hidden_size))

    def recur(self, p_t: Tensor, h: Tensor) -> Tensor:
        p_f, p_h = p_t.split(self.hidden_size, dim=-1)
        return mgu_update(p_f, p_h, h, self.weight_hf, self.weight_hh)


class BRCCell(LoopCell):
    """Bistable recurrent cell; weight_ih = [Uc; Ua; Uh]; z_c = Uc x + bc + w_c*h, z_a = Ua x + ba + w_a*h."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, gates=3)
        self.w_c = nn.Parameter(torch.ones(hidden_size))
        self.w_a = nn.Parameter(torch.ones(hidden_size))

    def recur(self, p_t: Tensor, h: Tensor) -> Tensor:
        p_c, p_a, p_h = p_t.split(self.hidden_size, dim=-1)
        return bistable_update(p_h, h, torch.addcmul(p_c, self.w_c, h), torch.addcmul(p_a, self.w_a, h))


class NBRCCell(LoopCell):
    """Neuromodulated BRC; weight_hh = [Wc; Wa]; z_c = Uc x + bc + Wc h, z_a = Ua x + ba + Wa h."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, gates=3)
        self.weight_hh = nn.Parameter(torch.zeros(2 * hidden_size, hidden_size))

    def recur(self, p_t: Tensor, h: Tensor) -> Tensor:
        p_c, p_a, p_h = p_t.split(self.hidden_size, dim=-1)
        fb_c, fb_a = (h @ self.weight_hh.T).split(self.hidden_size, dim=-1)
        return bistable_update(p_h, h, p_c + fb_c, p_a + fb_a)


CELLS: dict[str, type[nn.Module]] = {
    "gru": GRUCell,
    "lstm": LSTMCell,
    "chrono": LSTMCell,  # chrono is an initialisation; the trained cell is an LSTM
    "mgu": MGUCell,
    "brc": BRCCell,
    "nbrc": NBRCCell,
}


def split_halves(state: Tensor, parts: int) -> tuple[Tensor, Tensor]:
    """A double layer's state [B, parts * H] (h = [h1; h2], c = [c1; c2]) -> each half's [B, parts * H/2]."""
    halves = state.view(state.shape[0], parts, 2, -1)  # [batch, parts, half, H/2]
    return halves[:, :, 0].reshape(state.shape[0], -1), halves[:, :, 1].reshape(state.shape[0], -1)


def join_halves(first: Tensor, second: Tensor, parts: int) -> Tensor:
    """The inverse of split_halves."""
    batch = first.shape[0]
    return torch.stack([first.view(batch, parts, -1), second.view(batch, parts, -1)], dim=2).reshape(batch, -1)


class DoubleLayer(nn.Module):
    """The paper's double layer: two independent cells of H/2 units fed the same input."""

    def __init__(self, cell: type[nn.Module], input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.first = cell(input_size, hidden_size // 2)
        self.second = cell(input_size, hidden_size // 2)
        self.parts: int = cell.parts  # type: ignore[attr-defined]

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        s1, s2 = split_halves(state, self.parts)
        out1, s1 = self.first(x, s1)
        out2, s2 = self.second(x, s2)
        return torch.cat([out1, out2], dim=-1), join_halves(s1, s2, self.parts)


class Network(nn.Module):
    """h^l_t = cell_l(h^l_{t-1}, h^{l-1}_t) for l = 1..L, y_t = readout(h^L_t); batch first."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        cell = CELLS[config["cell"]]
        self.input_size, hidden = config["input_size"], config["hidden_size"]
        self.num_layers = config.get("num_layers", 1)
        self.state_size: int = cell.parts * hidden  # type: ignore[attr-defined]
        sizes = [self.input_size] + [hidden] * (self.num_layers - 1)
        layers = (DoubleLayer(cell, size, hidden) if config.get("double") else cell(size, hidden) for size in sizes)
        self.layers = nn.ModuleList(layers)
        self.readout = nn.Linear(hidden, config.get("output_size", 1))

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x [batch, time, input_size] (and state [num_layers, batch, state_size], zeros if None)
        -> y [batch, time, output_size] and the final state."""
        if state is None:
            state = x.new_zeros(self.num_layers, x.shape[0], self.state_size)
        finals = []
        for layer, s in zip(self.layers, state):
            x, final = layer(x, s)
            finals.append(final)
        return self.readout(x), torch.stack(finals)


def load(weights: str | Path, config: str | Path | dict[str, Any] | None = None) -> Network:
    """A network with the weights of a zoo file; the spec is the file's own (its `spec` metadata)
    unless `config` (a dict, or the path of config.json) is given."""
    if config is None:
        with safe_open(str(weights), framework="pt") as f:
            config = json.loads((f.metadata() or {})["spec"])
    elif not isinstance(config, dict):
        config = json.loads(Path(config).read_text())
    network = Network(config)
    network.load_state_dict(load_file(str(weights)))
    return network.eval()

"""Recurrent cells, one class per cell of docs/design.md (section 1, "Cells and their initialisations").

Every layer speaks the same small interface so the network, the multistability
measures and the ONNX export never special-case a cell type:

- ``state`` is one tensor [batch, state_size]: h, or [h; c] for LSTM cells;
- ``step(x_t, state)`` is the cell's equations written out, one time step (gates are
  split by their static width, so the exported ONNX step graph needs no shape arithmetic);
- ``forward(x, state, lengths)`` runs a whole batch-first sequence and returns the
  outputs [batch, time, hidden] and the final state, taken at ``lengths - 1`` per
  sequence when lengths are given (the batched prefix pass of the warm-up);
- ``roll(u, state, steps)`` feeds the same input ``u`` for ``steps`` steps.

`gru`, `lstm` and `chrono` run on torch's fused kernels (cuDNN on a GPU); the other
cells precompute their input projection for all steps with one matmul and loop
only over the recurrence. With lengths, every cell whose state is its output runs the
batch densely to the longest length and gathers each sequence's state at its own
length (cheaper than masking every step, forward and backward); the LSTM cells pack,
since their cell state c is not among the outputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from warmzoo.models.modeling import join_halves, split_halves
from warmzoo.models.recurrence import BistableKernel, Kernel, MGUKernel, fused_available, fused_loop
from warmzoo.models.spec import RNNSpec


def _xavier_blocks_(weight: Tensor, blocks: int) -> None:
    """Xavier-uniform init of each of `blocks` stacked [H, fan_in] gate matrices."""
    for block in weight.detach().chunk(blocks, dim=0):
        nn.init.xavier_uniform_(block)


def _orthogonal_blocks_(weight: Tensor, blocks: int) -> None:
    for block in weight.detach().chunk(blocks, dim=0):
        nn.init.orthogonal_(block)


def _gather_at(outputs: Tensor, lengths: Tensor) -> Tensor:
    """outputs [B, T, F] -> [B, F] taken at step lengths-1 of each sequence."""
    index = (lengths.to(outputs.device) - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])
    return outputs.gather(1, index).squeeze(1)


class Layer(nn.Module):
    """Common shape of every recurrent layer (a cell, or a double layer of two)."""

    input_size: int
    hidden_size: int
    state_size: int

    def step(self, x_t: Tensor, state: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, state: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def roll(self, u: Tensor, state: Tensor, steps: int) -> Tensor:
        """Final state after `steps` steps of the constant input u [input_size]."""
        x = u.view(1, 1, -1).expand(state.shape[0], steps, -1)
        return self(x, state)[1]

    def output(self, state: Tensor) -> Tensor:
        """The layer's output h from its state."""
        return state[:, : self.hidden_size]


# --- torch-kernel cells -------------------------------------------------------


class GRUCell(Layer):
    """torch GRU: r, z = sigma(W_i x + b_i + W_h h + b_h); n = tanh(W_in x + b_in + r*(W_hn h + b_hn));
    h' = (1 - z) * n + z * h."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.state_size = input_size, hidden_size, hidden_size
        self.rnn = nn.GRU(input_size, hidden_size, batch_first=True)
        _xavier_blocks_(self.rnn.weight_ih_l0, 3)
        _orthogonal_blocks_(self.rnn.weight_hh_l0, 3)
        nn.init.zeros_(self.rnn.bias_ih_l0)
        nn.init.zeros_(self.rnn.bias_hh_l0)

    def step(self, x_t: Tensor, state: Tensor) -> Tensor:
        gi = x_t @ self.rnn.weight_ih_l0.T + self.rnn.bias_ih_l0
        gh = state @ self.rnn.weight_hh_l0.T + self.rnn.bias_hh_l0
        i_r, i_z, i_n = gi.split(self.hidden_size, dim=-1)
        h_r, h_z, h_n = gh.split(self.hidden_size, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * state

    def forward(self, x: Tensor, state: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        # Dense run then gather: a GRU's output at t is its state, and the CPU
        # backward through a dense batch is far faster than through a packed one.
        outputs, h_n = self.rnn(x, state.unsqueeze(0).contiguous())
        final = h_n[0] if lengths is None else _gather_at(outputs, lengths)
        return outputs, final


class LSTMCell(Layer):
    """torch LSTM: i, f, g, o gates; c' = sigma(f)*c + sigma(i)*tanh(g); h' = sigma(o)*tanh(c').
    State is [h; c]."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.state_size = input_size, hidden_size, 2 * hidden_size
        self.rnn = nn.LSTM(input_size, hidden_size, batch_first=True)  # torch default init

    def step(self, x_t: Tensor, state: Tensor) -> Tensor:
        h, c = state.split(self.hidden_size, dim=-1)
        gates = (
            x_t @ self.rnn.weight_ih_l0.T + self.rnn.bias_ih_l0 + h @ self.rnn.weight_hh_l0.T + self.rnn.bias_hh_l0
        )
        i, f, g, o = gates.split(self.hidden_size, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return torch.cat([h, c], dim=-1)

    def forward(self, x: Tensor, state: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h0, c0 = (s.unsqueeze(0).contiguous() for s in state.chunk(2, dim=-1))
        if lengths is None:
            outputs, (h_n, c_n) = self.rnn(x, (h0, c0))
        else:
            # c is not among the outputs, so the final (h, c) per sequence needs packing.
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_out, (h_n, c_n) = self.rnn(packed, (h0, c0))
            outputs = nn.utils.rnn.pad_packed_sequence(packed_out, batch_first=True, total_length=x.shape[1])[0]
        return outputs, torch.cat([h_n[0], c_n[0]], dim=-1)


class ChronoLSTMCell(LSTMCell):
    """LSTM with chrono init: each bias vector draws its own u ~ U[1, t_max - 1] per unit and
    sets forget = log(u), input = -log(u), as the official code does; the effective forget
    bias is then log(u1) + log(u2), not 2 log(u)."""

    def __init__(self, input_size: int, hidden_size: int, t_max: float) -> None:
        super().__init__(input_size, hidden_size)
        H = hidden_size
        for bias in (self.rnn.bias_ih_l0, self.rnn.bias_hh_l0):
            log_u = torch.empty(H).uniform_(1.0, t_max - 1.0).log_()
            with torch.no_grad():
                bias.zero_()
                bias[0:H] = -log_u  # input gate
                bias[H : 2 * H] = log_u  # forget gate


# --- custom cells: input projection once, recurrence in a loop ------------------


class LoopCell(Layer):
    """A cell written as `kernel.step(project(x_t), state)`: the projection of every step is
    one matmul, and a constant input is projected once. The step's equations live in the
    cell's kernel (models/recurrence.py), which also runs the whole time loop as one autograd
    node; `eager_loops()` runs the same equations step by step through autograd instead."""

    kernel: Kernel

    def __init__(self, input_size: int, hidden_size: int, gates: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.state_size = input_size, hidden_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates * hidden_size, input_size))
        self.bias = nn.Parameter(torch.zeros(gates * hidden_size))
        _xavier_blocks_(self.weight_ih, gates)

    def project(self, x: Tensor) -> Tensor:
        """The input's share of every gate, in the layout the kernel reads."""
        return x @ self.weight_ih.T + self.bias

    def recurrent_weights(self) -> tuple[Tensor, ...]:
        """The weights the kernel uses besides the projection, in its order and scale."""
        raise NotImplementedError

    def step(self, x_t: Tensor, state: Tensor) -> Tensor:
        return self.kernel.step(self.project(x_t), state, self.recurrent_weights())[0]

    def forward(self, x: Tensor, state: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        p, weights = self.project(x), self.recurrent_weights()  # p [B, T, gates*H]
        if fused_available():
            stacked = fused_loop(self.kernel, p, state, p.shape[1], weights)
        else:
            h, outputs = state, []
            # unbind, not p[:, t]: the backward of T slices would write T full-size zero gradients.
            for p_t in p.unbind(1):
                h = self.kernel.step(p_t, h, weights)[0]
                outputs.append(h)
            stacked = torch.stack(outputs, dim=1)
        # The state is the output: each sequence's final state is gathered at its own length.
        return stacked, stacked[:, -1] if lengths is None else _gather_at(stacked, lengths)

    def roll(self, u: Tensor, state: Tensor, steps: int) -> Tensor:
        p, weights = self.project(u).expand(state.shape[0], -1), self.recurrent_weights()
        if fused_available():
            return fused_loop(self.kernel, p, state, steps, weights)
        h = state
        for _ in range(steps):
            h = self.kernel.step(p, h, weights)[0]
        return h


class MGUCell(LoopCell):
    """f = sigma(Wxf x + Whf h + bf); g = tanh(Whh (f*h) + Wxh x + bh); h' = (1-f)*h + f*g."""

    kernel = MGUKernel()

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, gates=2)  # weight_ih = [Wxf; Wxh]
        self.weight_hf = nn.Parameter(nn.init.xavier_uniform_(torch.empty(hidden_size, hidden_size)))
        self.weight_hh = nn.Parameter(nn.init.xavier_uniform_(torch.empty(hidden_size, hidden_size)))

    def recurrent_weights(self) -> tuple[Tensor, ...]:
        return self.weight_hf, self.weight_hh


class BistableCell(LoopCell):
    """c = sigma(Uc x + fb_c(h) + bc); a = 1 + tanh(Ua x + fb_a(h) + ba); h' = c*h + (1-c)*tanh(Uh x + a*h + bh).

    BRC and nBRC differ only in the gates' recurrent feedback fb_c, fb_a. The kernel takes
    a = 2 sigma(2 z_a), one sigmoid over both gates, so the projection and the feedback of
    the a-gate arrive doubled (exact in floating point)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, gates=3)  # weight_ih = [Uc; Ua; Uh]
        scale = torch.ones(3 * hidden_size)
        scale[hidden_size : 2 * hidden_size] = 2
        self.register_buffer("gate_scale", scale, persistent=False)

    def project(self, x: Tensor) -> Tensor:
        return (x @ self.weight_ih.T + self.bias) * self.gate_scale


class BRCCell(BistableCell):
    """Bistable recurrent cell: one self-connection per neuron, wc*h and wa*h, both initialised to 1."""

    kernel = BistableKernel(neuromodulated=False)

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.w_c = nn.Parameter(torch.ones(hidden_size))
        self.w_a = nn.Parameter(torch.ones(hidden_size))

    def recurrent_weights(self) -> tuple[Tensor, ...]:
        return (torch.stack([self.w_c, 2 * self.w_a]),)


class NBRCCell(BistableCell):
    """Neuromodulated BRC: the gates see the whole layer, Wc h and Wa h (Xavier-uniform)."""

    kernel = BistableKernel(neuromodulated=True)

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.weight_hh = nn.Parameter(torch.empty(2 * hidden_size, hidden_size))  # [Wc; Wa]
        _xavier_blocks_(self.weight_hh, 2)

    def recurrent_weights(self) -> tuple[Tensor, ...]:
        return (self.weight_hh * self.gate_scale[: 2 * self.hidden_size, None],)


# --- the paper's double layer -----------------------------------------------------


class DoubleLayer(Layer):
    """Two independent cells of H/2 units fed the same input; outputs and states are
    concatenated [first half; second half] (for LSTM: h = [h1; h2], c = [c1; c2])."""

    def __init__(self, first: Layer, second: Layer) -> None:
        super().__init__()
        self.first, self.second = first, second
        self.input_size = first.input_size
        self.hidden_size = first.hidden_size + second.hidden_size
        self.state_size = first.state_size + second.state_size
        self.parts = first.state_size // first.hidden_size  # 1, or 2 for [h; c]

    def split(self, state: Tensor) -> tuple[Tensor, Tensor]:
        return split_halves(state, self.parts)

    def join(self, first: Tensor, second: Tensor) -> Tensor:
        return join_halves(first, second, self.parts)

    def step(self, x_t: Tensor, state: Tensor) -> Tensor:
        s1, s2 = self.split(state)
        return self.join(self.first.step(x_t, s1), self.second.step(x_t, s2))

    def forward(self, x: Tensor, state: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s1, s2 = self.split(state)
        out1, f1 = self.first(x, s1, lengths)
        out2, f2 = self.second(x, s2, lengths)
        return torch.cat([out1, out2], dim=-1), self.join(f1, f2)

    def roll(self, u: Tensor, state: Tensor, steps: int) -> Tensor:
        s1, s2 = self.split(state)
        return self.join(self.first.roll(u, s1, steps), self.second.roll(u, s2, steps))

    def output(self, state: Tensor) -> Tensor:
        s1, s2 = self.split(state)
        return torch.cat([self.first.output(s1), self.second.output(s2)], dim=-1)


def make_cell(spec: RNNSpec, input_size: int, hidden_size: int) -> Layer:
    """One cell of the spec's type with its initialisation (docs/design.md)."""
    match spec.cell:
        case "gru":
            return GRUCell(input_size, hidden_size)
        case "lstm":
            return LSTMCell(input_size, hidden_size)
        case "chrono":
            return ChronoLSTMCell(input_size, hidden_size, spec.t_max)
        case "mgu":
            return MGUCell(input_size, hidden_size)
        case "brc":
            return BRCCell(input_size, hidden_size)
        case "nbrc":
            return NBRCCell(input_size, hidden_size)
    raise ValueError(f"unknown cell {spec.cell!r}")


def make_layer(spec: RNNSpec, input_size: int) -> Layer:
    if spec.double:
        half = spec.hidden_size // 2
        return DoubleLayer(make_cell(spec, input_size, half), make_cell(spec, input_size, half))
    return make_cell(spec, input_size, spec.hidden_size)


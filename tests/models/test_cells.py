"""Each cell against a hand computation of its equations (docs/design.md), and the layer plumbing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from warmzoo.models.cells import DoubleLayer
from warmzoo.models.network import build_network
from warmzoo.models.spec import CELLS, RNNSpec


def sig(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def np_params(layer: torch.nn.Module) -> dict[str, np.ndarray]:
    return {name: p.detach().double().numpy() for name, p in layer.named_parameters()}


def hand_step(cell: str, p: dict[str, np.ndarray], x: np.ndarray, state: np.ndarray) -> np.ndarray:
    """The equations of docs/design.md (section 1), written independently of models/cells.py."""
    if cell == "gru":
        H = state.shape[-1]
        Wi, Wh, bi, bh = p["rnn.weight_ih_l0"], p["rnn.weight_hh_l0"], p["rnn.bias_ih_l0"], p["rnn.bias_hh_l0"]
        r = sig(x @ Wi[:H].T + bi[:H] + state @ Wh[:H].T + bh[:H])
        z = sig(x @ Wi[H : 2 * H].T + bi[H : 2 * H] + state @ Wh[H : 2 * H].T + bh[H : 2 * H])
        n = np.tanh(x @ Wi[2 * H :].T + bi[2 * H :] + r * (state @ Wh[2 * H :].T + bh[2 * H :]))
        return (1 - z) * n + z * state
    if cell in ("lstm", "chrono"):
        H = state.shape[-1] // 2
        h, c = state[:, :H], state[:, H:]
        g = x @ p["rnn.weight_ih_l0"].T + p["rnn.bias_ih_l0"] + h @ p["rnn.weight_hh_l0"].T + p["rnn.bias_hh_l0"]
        i, f, gg, o = (g[:, k * H : (k + 1) * H] for k in range(4))
        c = sig(f) * c + sig(i) * np.tanh(gg)
        return np.concatenate([sig(o) * np.tanh(c), c], axis=1)
    H = state.shape[-1]
    U, b, h = p["weight_ih"], p["bias"], state
    if cell == "mgu":
        f = sig(x @ U[:H].T + h @ p["weight_hf"].T + b[:H])
        g = np.tanh((f * h) @ p["weight_hh"].T + x @ U[H:].T + b[H:])
        return (1 - f) * h + f * g
    if cell == "brc":
        fb_c, fb_a = p["w_c"] * h, p["w_a"] * h
    else:  # nbrc
        fb_c, fb_a = h @ p["weight_hh"][:H].T, h @ p["weight_hh"][H:].T
    c = sig(x @ U[:H].T + fb_c + b[:H])
    a = 1 + np.tanh(x @ U[H : 2 * H].T + fb_a + b[H : 2 * H])
    return c * h + (1 - c) * np.tanh(x @ U[2 * H :].T + a * h + b[2 * H :])


@pytest.mark.parametrize("cell", CELLS)
def test_one_step_matches_hand_computation(cell: str) -> None:
    spec = RNNSpec(cell=cell, input_size=3, hidden_size=5, num_layers=1)
    layer = build_network(spec, seed=1).layers[0]
    with torch.no_grad():  # move off the zero biases so every term is exercised
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x, state = torch.randn(4, 3), 0.5 * torch.randn(4, spec.state_size)
    expected = hand_step(cell, np_params(layer), x.double().numpy(), state.double().numpy())
    with torch.no_grad():
        by_step = layer.step(x, state)
        by_forward = layer(x.unsqueeze(1), state)[1]  # the fused / looped sequence path
    np.testing.assert_allclose(by_step.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(by_forward.numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("double", [False, True])
def test_prefix_pass_equals_one_sequence_at_a_time(cell: str, double: bool) -> None:
    """The batched pass with lengths gives each sequence's state at its own length."""
    spec = RNNSpec(cell=cell, input_size=2, hidden_size=6, num_layers=2, double=double)
    net = build_network(spec, seed=0)
    x = torch.randn(5, 9, 2)
    lengths = torch.tensor([1, 9, 4, 7, 2])
    with torch.no_grad():
        batched = net.recurrent(x, lengths=lengths)[1]
        for i, length in enumerate(lengths.tolist()):
            alone = net.recurrent(x[i : i + 1, :length])[1]
            torch.testing.assert_close(batched[:, i : i + 1], alone, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_network_step_matches_forward(cell: str) -> None:
    net = build_network(RNNSpec(cell=cell, input_size=2, hidden_size=4, num_layers=3, output_size=2), seed=0)
    x = torch.randn(3, 6, 2)
    with torch.no_grad():
        y, final = net(x)
        state = net.zero_state(3)
        for t in range(6):
            y_t, state = net.step(x[:, t], state)
            torch.testing.assert_close(y_t, y[:, t], atol=1e-6, rtol=0)
    torch.testing.assert_close(state, final, atol=1e-6, rtol=0)


def test_double_layer_is_two_independent_half_cells() -> None:
    spec = RNNSpec(cell="lstm", input_size=2, hidden_size=8, num_layers=1, double=True)
    layer = build_network(spec, seed=0).layers[0]
    assert isinstance(layer, DoubleLayer)
    assert layer.first.hidden_size == layer.second.hidden_size == 4
    x, state = torch.randn(3, 5, 2), torch.randn(3, 16)
    with torch.no_grad():
        out, final = layer(x, state)
        s1, s2 = layer.split(state)
        out1, f1 = layer.first(x, s1)
        out2, f2 = layer.second(x, s2)
    torch.testing.assert_close(out, torch.cat([out1, out2], -1))
    # [h1; h2; c1; c2]: h = [first half; second half], c likewise
    torch.testing.assert_close(final, torch.cat([f1[:, :4], f2[:, :4], f1[:, 4:], f2[:, 4:]], -1))
    torch.testing.assert_close(layer.join(*layer.split(state)), state)


def test_initialisations() -> None:
    gru = build_network(RNNSpec(cell="gru", input_size=3, hidden_size=4), seed=0).layers[0].rnn
    for block in gru.weight_hh_l0.detach().chunk(3):
        torch.testing.assert_close(block @ block.T, torch.eye(4), atol=1e-5, rtol=0)
    bound = (6 / (3 + 4)) ** 0.5  # Xavier-uniform of one [4, 3] gate block
    assert gru.weight_ih_l0.abs().max() <= bound
    assert gru.bias_ih_l0.abs().sum() == 0 and gru.bias_hh_l0.abs().sum() == 0

    brc = build_network(RNNSpec(cell="brc", input_size=3, hidden_size=4), seed=0).layers[0]
    assert torch.equal(brc.w_c, torch.ones(4)) and torch.equal(brc.w_a, torch.ones(4))
    assert brc.bias.abs().sum() == 0

    t_max = 50.0
    chrono = build_network(RNNSpec(cell="chrono", input_size=1, hidden_size=64, t_max=t_max), seed=0).layers[0].rnn
    for bias in (chrono.bias_ih_l0, chrono.bias_hh_l0):
        b_i, b_f, b_g, b_o = bias.detach().chunk(4)
        torch.testing.assert_close(b_i, -b_f)
        u = torch.exp(b_f)
        assert u.min() >= 1 - 1e-5 and u.max() <= t_max - 1 + 1e-4
        assert b_g.abs().sum() == 0 and b_o.abs().sum() == 0
    assert not torch.equal(chrono.bias_ih_l0, chrono.bias_hh_l0)  # one draw per bias vector


def test_chrono_forget_bias_is_the_sum_of_two_independent_draws() -> None:
    """The effective forget bias is log u1 + log u2 (the paper's code), not 2 log u: its spread is
    sqrt(2), not 2, times that of one draw, and the two vectors are uncorrelated."""
    H = 4096
    rnn = build_network(RNNSpec(cell="chrono", input_size=1, hidden_size=H, t_max=300.0), seed=0).layers[0].rnn
    f_ih = rnn.bias_ih_l0.detach()[H : 2 * H]
    f_hh = rnn.bias_hh_l0.detach()[H : 2 * H]
    one_draw = torch.cat([f_ih, f_hh]).std()
    combined = (f_ih + f_hh).std()
    assert abs(float(combined / one_draw) - 2**0.5) < 0.1, float(combined / one_draw)
    assert abs(float(torch.corrcoef(torch.stack([f_ih, f_hh]))[0, 1])) < 0.1


def test_same_seed_same_weights() -> None:
    spec = RNNSpec(cell="nbrc", input_size=2, hidden_size=4, num_layers=2)
    a, b, c = build_network(spec, seed=3), build_network(spec, seed=3), build_network(spec, seed=4)
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.state_dict().values(), c.state_dict().values()))


def test_double_needs_even_width() -> None:
    with pytest.raises(ValueError, match="even"):
        RNNSpec(cell="gru", input_size=1, hidden_size=5, double=True)

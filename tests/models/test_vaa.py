"""The exact VAA and the differentiable VAA* on constructed end states."""

from __future__ import annotations

import pytest
import torch

from warmzoo.models.distances import pairwise_distances
from warmzoo.models.network import build_network
from warmzoo.models.spec import CELLS, RNNSpec
from warmzoo.models.stopping import Stopped
from warmzoo.models.vaa import VAA_CHUNK, measure_vaa, reachable_states, vaa, vaa_star


def test_distances_are_exact_at_the_epsilon_scale() -> None:
    base = torch.full((40, 64), 0.7)
    z = base.clone()
    z[1:20, 0] += 5e-5  # within eps of z_0
    z[20:, 0] += 3e-4  # beyond eps of z_0
    d = pairwise_distances(z)
    assert (d[0, 1:20] < 1e-4).all() and (d[0, 20:] > 1e-4).all()
    assert torch.allclose(d[0, 20:], torch.full((20,), 3e-4), rtol=1e-2)



def _frozen_gru(n_units: int = 4) -> torch.nn.Module:
    """A GRU whose update gate is saturated at 1: h' = h, so the end states are the start states."""
    net = build_network(RNNSpec(cell="gru", input_size=1, hidden_size=n_units), seed=0)
    with torch.no_grad():
        rnn = net.layers[0].rnn
        rnn.weight_ih_l0.zero_()
        rnn.weight_hh_l0.zero_()
        rnn.bias_ih_l0[n_units : 2 * n_units] = 50.0  # z = sigma(50) = 1
    return net


def test_vaa_is_one_over_n_when_all_end_states_coincide() -> None:
    net = _frozen_gru()
    h0 = torch.full((1, 16, 4), 0.3)
    assert vaa(net, h0, steps=50, generator=torch.Generator().manual_seed(0)) == pytest.approx(1 / 16)


def test_vaa_is_one_when_all_end_states_differ() -> None:
    net = _frozen_gru()
    h0 = torch.linspace(-0.9, 0.9, 16).view(1, 16, 1).expand(1, 16, 4).contiguous()
    assert vaa(net, h0, steps=50, generator=torch.Generator().manual_seed(0)) == pytest.approx(1.0)


def test_vaa_counts_clusters() -> None:
    net = _frozen_gru()
    h0 = torch.tensor([0.5] * 8 + [-0.5] * 8).view(1, 16, 1).expand(1, 16, 4).contiguous()
    assert vaa(net, h0, steps=50, generator=torch.Generator().manual_seed(0)) == pytest.approx(2 / 16)


def test_vaa_star_matches_soft_counts() -> None:
    net = _frozen_gru()
    h0 = torch.tensor([0.5] * 8 + [-0.5] * 8).view(1, 16, 1).expand(1, 16, 4).contiguous()
    value = vaa_star(net, h0, steps=10, generator=torch.Generator().manual_seed(0))
    # two tight clusters of 8: every soft count is 8 plus the tiny cross-cluster terms
    assert value.shape == (1,)
    assert value.item() == pytest.approx(1 / 8, rel=1e-3)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("double", [False, True])
def test_vaa_star_reaches_every_recurrent_parameter(cell: str, double: bool) -> None:
    # A short chrono horizon: with t_max = 600 the input gates start near exp(-12), every
    # state stays within eps of zero and the relu of VAA* rightly passes no gradient.
    spec = RNNSpec(cell=cell, input_size=2, hidden_size=8, num_layers=2, double=double, t_max=4)
    net = build_network(spec, seed=0)
    generator = torch.Generator().manual_seed(0)
    h0 = reachable_states(net, torch.randn(16, 12, 2), generator)
    values = vaa_star(net, h0, steps=5, generator=generator, partial=False)
    assert values.shape == (2,) and torch.isfinite(values).all()
    ((values - 0.95) ** 2).mean().backward()
    for name, p in net.named_parameters():
        if name.startswith("readout"):
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_measure_vaa_draws_with_replacement_as_the_paper_monitors() -> None:
    """From 4 sequences, n = 32 draws with replacement give 32 end states (a monostable network:
    the frozen one here: VAA = 1/32); without replacement only the 4 distinct sequences are used (VAA = 1/4)."""
    net = _frozen_gru()
    sequences = torch.randn(4, 10, net.spec.input_size)
    with_replacement = measure_vaa(net, sequences, steps=500, n=32, repeats=3, replacement=True)
    assert with_replacement == pytest.approx([1 / 32] * 3)
    assert measure_vaa(net, sequences, steps=500, n=32) == pytest.approx([1 / 4])


def test_a_stop_is_called_inside_the_rolls_and_ends_them() -> None:
    """Cancel reaches into a long roll: the exact VAA asks before each chunk, VAA* before each layer."""
    network = build_network(RNNSpec(cell="brc", input_size=1, hidden_size=4, num_layers=3), seed=0)
    h0 = reachable_states(network, torch.randn(4, 5, 1), torch.Generator().manual_seed(0))
    calls: list[int] = []
    roll = {"generator": torch.Generator(), "stop_at_repeat": False}
    vaa(network, h0, steps=2 * VAA_CHUNK + 1, stop=lambda: calls.append(1), **roll)  # type: ignore[arg-type]
    assert len(calls) == 3
    calls.clear()
    vaa_star(network, h0, steps=3, generator=torch.Generator(), stop=lambda: calls.append(1))
    assert len(calls) == 3

    def stop_at_the_second() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise Stopped

    calls.clear()
    with pytest.raises(Stopped):
        vaa(network, h0, steps=10**12, stop=stop_at_the_second, **roll)  # type: ignore[arg-type]  # ~forever unstopped
    assert len(calls) == 2

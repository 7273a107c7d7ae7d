"""The plain-PyTorch file (modeling.py) and the torch-native tensors compute what the zoo's networks compute."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from warmzoo.models import modeling
from warmzoo.models.network import build_network
from warmzoo.models.spec import CELLS, RNNSpec
from warmzoo.models.torch_native import TORCH_CELLS, torch_native_tensors

LAYOUTS = [(1, False), (2, False), (2, True)]  # (num_layers, double)


def _spec(cell: str, num_layers: int, double: bool) -> RNNSpec:
    return RNNSpec(cell=cell, input_size=3, hidden_size=6, num_layers=num_layers, output_size=2, double=double)


@pytest.mark.parametrize("num_layers,double", LAYOUTS)
@pytest.mark.parametrize("cell", CELLS)
def test_modeling_loads_zoo_weights_and_matches(cell: str, num_layers: int, double: bool) -> None:
    spec = _spec(cell, num_layers, double)
    network = build_network(spec, seed=1).eval()
    plain = modeling.Network(spec.model_dump())
    plain.load_state_dict(network.state_dict())  # strict: the same names and shapes
    x, state = torch.randn(4, 9, 3), torch.randn(num_layers, 4, spec.state_size)
    with torch.no_grad():
        for expected, got in zip(network(x, state), plain(x, state), strict=True):
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("num_layers,double", LAYOUTS)
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_torch_native_tensors_load_into_torch_modules(cell: str, num_layers: int, double: bool) -> None:
    spec = _spec(cell, num_layers, double)
    network = build_network(spec, seed=2).eval()
    tensors = torch_native_tensors(network)
    module = nn.LSTM if spec.is_lstm else nn.GRU
    rnn = module(3, 6, num_layers=num_layers, batch_first=True)
    readout = nn.Linear(6, 2)
    rnn.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("readout.")})
    readout.load_state_dict({k.removeprefix("readout."): v for k, v in tensors.items() if k.startswith("readout.")})
    x, state = torch.randn(4, 9, 3), torch.randn(num_layers, 4, spec.state_size)
    h0 = state if not spec.is_lstm else tuple(s.contiguous() for s in state.chunk(2, dim=-1))  # [h; c]
    with torch.no_grad():
        expected_y, expected_state = network(x, state)
        outputs, final = rnn(x, h0)
        final = final if not spec.is_lstm else torch.cat(final, dim=-1)
        torch.testing.assert_close(readout(outputs), expected_y, rtol=0, atol=1e-5)
        torch.testing.assert_close(final, expected_state, rtol=0, atol=1e-5)


def test_torch_native_refuses_loop_cells() -> None:
    with pytest.raises(ValueError, match="brc"):
        torch_native_tensors(build_network(_spec("brc", 1, False)))

"""The weights of gru, lstm and chrono networks under torch's own names: `torch.safetensors`.

The zoo names a layer's tensors `layers.{l}.rnn.weight_ih_l0` (and `layers.{l}.first.rnn...`
for double layers); this file renames them to those of one `torch.nn.GRU` / `torch.nn.LSTM(
num_layers=L, batch_first=True)`, `weight_ih_l{l}`, ..., plus `readout.weight` and `readout.bias`
for a `torch.nn.Linear`. A double layer (two independent cells of H/2 units on the same
input) is exactly one torch layer of H units whose gate blocks are the halves' stacked and
whose recurrent weights are block-diagonal, so double networks load into the same modules.
"""

from __future__ import annotations

import torch
from safetensors.torch import save as save_safetensors
from torch import Tensor

from warmzoo.models.network import Network
from warmzoo.models.weights import SPEC_KEY

TORCH_CELLS: tuple[str, ...] = ("gru", "lstm", "chrono")
GATES = {"gru": 3, "lstm": 4, "chrono": 4}
READOUT_PREFIX = "readout."


def _merge_halves(name: str, first: Tensor, second: Tensor, gates: int) -> Tensor:
    """One torch tensor of a double layer from its halves': gate block by gate block, stacked
    (input weights, biases) or block-diagonal (recurrent weights)."""
    merge = torch.block_diag if name.startswith("weight_hh") else lambda a, b: torch.cat([a, b])
    return torch.cat([merge(a, b) for a, b in zip(first.chunk(gates), second.chunk(gates), strict=True)])


def torch_native_tensors(network: Network) -> dict[str, Tensor]:
    """The network's tensors under torch.nn.GRU / torch.nn.LSTM names, plus `readout.*`."""
    spec = network.spec
    if spec.cell not in TORCH_CELLS:
        raise ValueError(f"a {spec.cell} network has no torch.nn module; torch-native files exist for {TORCH_CELLS}")
    state = {name: t.detach().cpu() for name, t in network.state_dict().items()}
    tensors: dict[str, Tensor] = {}
    for layer in range(spec.num_layers):
        prefix = f"layers.{layer}."
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            if spec.double:
                first, second = (state[f"{prefix}{half}.rnn.{name}_l0"] for half in ("first", "second"))
                tensor = _merge_halves(name, first, second, GATES[spec.cell])
            else:
                tensor = state[f"{prefix}rnn.{name}_l0"]
            tensors[f"{name}_l{layer}"] = tensor.contiguous()
    tensors |= {name: t.contiguous() for name, t in state.items() if name.startswith(READOUT_PREFIX)}
    return tensors


def torch_native_bytes(network: Network) -> bytes:
    """`torch.safetensors`: the torch-native tensors, with the spec in the header metadata."""
    return save_safetensors(torch_native_tensors(network), metadata={SPEC_KEY: network.spec.model_dump_json()})

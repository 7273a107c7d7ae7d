"""The export works on its own copy: the caller's network keeps its device, mode and weights."""

from __future__ import annotations

import pytest
import torch

from warmzoo.models.network import Network, build_network
from warmzoo.models.onnx import export_onnx
from warmzoo.models.spec import RNNSpec


def _net(cell: str) -> Network:
    return build_network(RNNSpec(cell=cell, input_size=2, hidden_size=4, num_layers=2, output_size=1), seed=0)


def _snapshot(network: Network) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in network.state_dict().items()}


@pytest.mark.parametrize(("cell", "graph"), [("gru", "model"), ("brc", "model"), ("nbrc", "cell")])
def test_export_leaves_mode_and_weights_alone(cell: str, graph: str) -> None:
    network = _net(cell).train()  # as the warm-up leaves it mid-job
    before = _snapshot(network)
    parameters = list(network.parameters())
    export_onnx(network, graph)  # type: ignore[arg-type]
    assert network.training and all(layer.training for layer in network.modules())
    assert [id(p) for p in network.parameters()] == [id(p) for p in parameters]
    after = network.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_export_leaves_a_gpu_network_on_the_gpu() -> None:
    network = _net("gru").cuda()
    data, report = export_onnx(network)
    assert report.passed and data
    assert all(p.device.type == "cuda" for p in network.parameters())

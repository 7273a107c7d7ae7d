"""The spec's tensor table (models.shapes) is exactly what a built network holds."""

from __future__ import annotations

import pytest
import torch

from warmzoo.models.network import build_network
from warmzoo.models.shapes import parameter_count, tensor_shapes
from warmzoo.models.spec import CELLS, RNNSpec


@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_the_table_matches_a_built_network(cell: str, double: bool) -> None:
    spec = RNNSpec(cell=cell, input_size=3, hidden_size=6, num_layers=3, output_size=5, double=double)  # type: ignore[arg-type]
    built = build_network(spec).state_dict()
    assert tensor_shapes(spec) == {name: tuple(tensor.shape) for name, tensor in built.items()}
    assert all(tensor.dtype == torch.float32 for tensor in built.values())
    assert parameter_count(spec) == sum(tensor.numel() for tensor in built.values())


def test_the_largest_specs_are_counted_without_building_them() -> None:
    """lstm 4096 x 4096, 16 layers: 2.1 billion values (8.6 GB), counted in microseconds."""
    spec = RNNSpec(cell="lstm", input_size=4096, hidden_size=4096, num_layers=16)
    assert parameter_count(spec) == 16 * 4 * 4096 * (4096 + 4096 + 2) + 4096 + 1

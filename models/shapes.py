"""The tensors a network of a spec holds, by name and shape, from the spec alone.

Uploads are checked against this table before any network is built: building one of the
largest specs a server allows (lstm 4096 x 4096, 16 layers) allocates 8.6 GB, while checking
a file against the table costs nothing. tests/models/test_shapes.py holds it equal to
`build_network(spec).state_dict()` for every cell, single and double.
"""

from __future__ import annotations

import math

from warmzoo.models.spec import RNNSpec

Shape = tuple[int, ...]
TORCH_GATES = {"gru": 3, "lstm": 4, "chrono": 4}  # cells on torch's fused kernels, and their gate count


def cell_shapes(cell: str, input_size: int, hidden_size: int) -> dict[str, Shape]:
    """One cell's parameters (see models.cells): gate matrices stacked on the first axis."""
    i, h = input_size, hidden_size
    if cell in TORCH_GATES:
        g = TORCH_GATES[cell] * h
        return {"rnn.weight_ih_l0": (g, i), "rnn.weight_hh_l0": (g, h), "rnn.bias_ih_l0": (g,), "rnn.bias_hh_l0": (g,)}
    if cell == "mgu":  # forget gate and candidate from x; recurrent weights of each apart
        return {"weight_ih": (2 * h, i), "bias": (2 * h,), "weight_hf": (h, h), "weight_hh": (h, h)}
    if cell == "brc":  # c, a, candidate from x; the recurrence is elementwise (w_c, w_a)
        return {"weight_ih": (3 * h, i), "bias": (3 * h,), "w_c": (h,), "w_a": (h,)}
    if cell == "nbrc":  # as brc, with full recurrent matrices for c and a
        return {"weight_ih": (3 * h, i), "bias": (3 * h,), "weight_hh": (2 * h, h)}
    raise ValueError(f"unknown cell {cell!r}")


def tensor_shapes(spec: RNNSpec) -> dict[str, Shape]:
    """Every tensor of `build_network(spec).state_dict()`, by name, in FP32."""
    shapes: dict[str, Shape] = {}
    for index in range(spec.num_layers):
        input_size = spec.input_size if index == 0 else spec.hidden_size
        halves = ("first.", "second.") if spec.double else ("",)
        width = spec.hidden_size // len(halves)
        for half in halves:
            for name, shape in cell_shapes(spec.cell, input_size, width).items():
                shapes[f"layers.{index}.{half}{name}"] = shape
    shapes["readout.weight"] = (spec.output_size, spec.hidden_size)
    shapes["readout.bias"] = (spec.output_size,)
    return shapes


def parameter_count(spec: RNNSpec) -> int:
    """Values a network of `spec` holds (4 bytes each)."""
    return sum(math.prod(shape) for shape in tensor_shapes(spec).values())

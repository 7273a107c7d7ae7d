"""Graphs that torch's exporter writes: `cell.onnx` for every cell, and `model.onnx` of the
torch-kernel cells (gru, lstm, chrono) on ONNX's own GRU/LSTM ops.

The exporter traces the module; two symbolics of our own keep the BRC cells' fused ops
(`lerp`, `addcmul`) to the few nodes they need. This is the path with the exporter's known
traps (a GRU's reset-gate convention, a frozen time axis), which the parity check at several
lengths is there to catch."""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import onnx
import torch
from torch import Tensor, nn
from torch.onnx import symbolic_helper

from warmzoo.models.network import Network
from warmzoo.models.onnx.graph import OPSET
from warmzoo.models.onnx.optional_state import with_optional_state

Axes = dict[int, str]


class _Step(nn.Module):
    def __init__(self, network: Network) -> None:
        super().__init__()
        self.network = network

    def forward(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        return self.network.step(x_t, state)


def _lerp(g: Any, start: Any, end: Any, weight: Any) -> Any:
    """start + weight * (end - start): 3 nodes, where the stock symbolic emits torch's
    two-branch stable form (8 nodes, a Where) in the step graph that cell.onnx is."""
    return g.op("Add", start, g.op("Mul", weight, g.op("Sub", end, start)))


def _addcmul(g: Any, tensor: Any, tensor1: Any, tensor2: Any, value: Any) -> Any:
    """tensor + value * tensor1 * tensor2, without the multiplication when value is 1 (our cells' case)."""
    product = g.op("Mul", tensor1, tensor2)
    if symbolic_helper._maybe_get_const(value, "f") != 1:
        product = g.op("Mul", product, value)
    return g.op("Add", tensor, product)


SYMBOLICS = {"aten::lerp": _lerp, "aten::addcmul": _addcmul}
_EXPORTING = threading.Lock()  # the exporter's symbolic registry is process-wide (the server exports in threads)


@contextmanager
def _lean_symbolics() -> Iterator[None]:
    """Export the BRC cells' fused ops as the few nodes they need, for this export only."""
    with _EXPORTING:
        for name, function in SYMBOLICS.items():
            torch.onnx.register_custom_op_symbolic(name, function, OPSET)
        try:
            yield
        finally:
            for name in SYMBOLICS:
                torch.onnx.unregister_custom_op_symbolic(name, OPSET)


def _trace(
    module: nn.Module, x: Tensor, state: Tensor, input_axes: Axes, state_axes: Axes | None = None
) -> onnx.ModelProto:
    """TorchScript-export `module(x, state) -> (output, state_out)` with a dynamic batch."""
    state_axes = state_axes or {1: "batch"}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), _lean_symbolics():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            module.cpu().eval(),
            (x, state),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=["input", "state"],
            output_names=["output", "state_out"],
            dynamic_axes={"input": input_axes, "state": state_axes, "output": input_axes, "state_out": state_axes},
        )
    return onnx.load_from_string(buffer.getvalue())


def step_graph(network: Network) -> onnx.ModelProto:
    """cell.onnx: (input [B, I], state [L, B, S]) -> (output [B, O], state_out [L, B, S])."""
    spec = network.spec
    x_t, state = torch.zeros(2, spec.input_size), torch.zeros(spec.num_layers, 2, spec.state_size)
    return _trace(_Step(network), x_t, state, {0: "batch"})


def native_sequence(network: Network) -> onnx.ModelProto:
    """model.onnx of a torch-kernel cell (gru, lstm, chrono): ONNX's own GRU/LSTM ops over the
    whole sequence. The op is faster than a Scan of the step graph and, for the LSTM, than the
    same maths built by hand (docs/benchmarks.md, "Inference")."""
    spec = network.spec
    x, state = torch.zeros(2, 3, spec.input_size), torch.zeros(spec.num_layers, 2, spec.state_size)
    return with_optional_state(_trace(network, x, state, {0: "batch", 1: "time"}), spec.num_layers, spec.state_size)

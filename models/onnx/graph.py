"""What every hand-written graph shares: the opset, a builder of uniquely named nodes and
initializers, and the loop cells' weights as float32 arrays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper
from torch import Tensor

from warmzoo.models.cells import DoubleLayer, Layer, LoopCell

OPSET = 17


class Builder:
    """Nodes and initializers of a graph written by hand, each under a unique name."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self) -> str:
        self._count += 1
        return f"{self.prefix}/{self._count}"

    def const(self, value: np.ndarray | list[int] | int) -> str:
        """An initializer: arrays as float32, ints and lists of ints as int64 (shapes, axes, indices)."""
        array = np.asarray(value, dtype=np.float32 if isinstance(value, np.ndarray) else np.int64)
        name = self._name()
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, **attributes: Any) -> str:
        return self.ops(op_type, 1, *inputs, **attributes)[0]

    def ops(self, op_type: str, outputs: int, *inputs: str, **attributes: Any) -> list[str]:
        names = [self._name() for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attributes))
        return names

    def concat(self, parts: list[str], axis: int) -> str:
        """Concat, or the one part itself."""
        return parts[0] if len(parts) == 1 else self.op("Concat", *parts, axis=axis)


def cells_of(layer: Layer) -> list[LoopCell]:
    """The loop cells of a layer: itself, or a double layer's two halves."""
    return [layer.first, layer.second] if isinstance(layer, DoubleLayer) else [layer]  # type: ignore[list-item]


def array(tensor: Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def gates(cells: Sequence[LoopCell], count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each gate's input weight [H, I] and bias [H], in the order of `weight_ih`; the cells'
    units side by side (a double layer's two halves, which see the same input)."""
    weights = [array(c.weight_ih).reshape(count, c.hidden_size, c.input_size) for c in cells]
    biases = [array(c.bias).reshape(count, c.hidden_size) for c in cells]
    return [(np.concatenate([w[g] for w in weights]), np.concatenate([b[g] for b in biases])) for g in range(count)]

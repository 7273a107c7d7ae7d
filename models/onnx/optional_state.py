"""Graph surgery shared by every `model.onnx`: the initial state becomes an optional input."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def with_optional_state(model: onnx.ModelProto, layers: int, width: int) -> onnx.ModelProto:
    """Make the `state` input optional: an initializer named like an input is its default, so
    `state` defaults to zeros [L, 1, S], expanded to the batch of `input` before first use."""
    graph = model.graph
    for node in graph.node:
        node.input[:] = ["state_0" if name == "state" else name for name in node.input]
    prelude = [
        helper.make_node("Shape", ["input"], ["input_shape"]),
        helper.make_node("Slice", ["input_shape", "zero", "one"], ["batch"]),
        helper.make_node("Concat", ["layers", "batch", "state_width"], ["state_shape"], axis=0),
        helper.make_node("Expand", ["state", "state_shape"], ["state_0"]),
    ]
    body = list(graph.node)
    del graph.node[:]
    graph.node.extend(prelude + body)
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "one"),
            numpy_helper.from_array(np.array([layers], dtype=np.int64), "layers"),
            numpy_helper.from_array(np.array([width], dtype=np.int64), "state_width"),
            numpy_helper.from_array(np.zeros((layers, 1, width), dtype=np.float32), "state"),
        ]
    )
    for value in graph.input:
        if value.name == "state":  # the default's batch is 1: let the declared shape say "any"
            value.type.tensor_type.shape.dim[1].dim_param = "state_batch"
    return model

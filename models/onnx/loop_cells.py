"""`model.onnx` of the loop cells (mgu, brc, nbrc): a time-major graph written here node by
node, each layer on the strategy that runs it fastest, then the readout."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from warmzoo.models.network import Network
from warmzoo.models.onnx.graph import OPSET, Builder, array
from warmzoo.models.onnx.gru_op import gru_layers
from warmzoo.models.onnx.optional_state import with_optional_state
from warmzoo.models.onnx.scan import scan_layers


def loop_sequence(network: Network) -> onnx.ModelProto:
    """model.onnx of a loop cell, per layer either:

    - GRU ops (nbrc; mgu in double layers, as two ops of H/2): each cell mapped exactly onto
      ONNX's GRU op (`gru_op`). It streams a third more recurrent weights than the cell needs
      (nbrc's 2I, mgu's z = 1 - r) and still wins there; a full-width mgu layer does not;
    - a Scan (single mgu, brc): the input projections outside the loop, UNROLL steps of the
      recurrence per iteration (`scan`).

    docs/benchmarks.md ("Inference") has the measurements behind each choice. The readout is
    one MatMul over all steps."""
    spec = network.spec
    L, S = spec.num_layers, spec.state_size
    graph = Builder("sequence")
    x = graph.op("Transpose", "input", perm=[1, 0, 2])  # [T, B, I]
    on_gru_op = spec.cell == "nbrc" or (spec.cell == "mgu" and spec.double)
    x, finals = (gru_layers if on_gru_op else scan_layers)(graph, network, x)
    readout = network.readout
    y = graph.op("Add", graph.op("MatMul", x, graph.const(array(readout.weight).T)), graph.const(array(readout.bias)))
    graph.nodes += [
        helper.make_node("Transpose", [y], ["output"], perm=[1, 0, 2]),
        helper.make_node("Concat", finals, ["state_out"], axis=0),
    ]
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "warmzoo_sequence",
            inputs=[
                helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", "time", spec.input_size]),
                helper.make_tensor_value_info("state", TensorProto.FLOAT, [L, "batch", S]),
            ],
            outputs=[
                helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", "time", spec.output_size]),
                helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [L, "batch", S]),
            ],
            initializer=graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="warmzoo",
    )
    return with_optional_state(model, L, S)

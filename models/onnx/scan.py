"""Loop cells as an ONNX `Scan` over time (single mgu layers, brc): one Gemm per gate group
projects every step's input outside the loop, and a body written node by node runs UNROLL steps
of the recurrence alone per iteration. In ONNX Runtime the cost is per node and per iteration,
so the bodies use as few nodes as the maths allows (docs/benchmarks.md, "Inference")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
import onnx
from onnx import TensorProto, helper

from warmzoo.models.cells import BRCCell, Layer, MGUCell
from warmzoo.models.network import Network
from warmzoo.models.onnx.graph import Builder, array, cells_of, gates

UNROLL = 4  # time steps per Scan iteration
Step = Callable[[str, list[str]], str]  # (h, the step's projected inputs) -> h'


@dataclass(frozen=True)
class ScanLayer:
    """A layer as the Scan runs it. `projections` are made for every step outside the loop,
    each one scan input: (W [I, n], b [n], per-step shape after the batch axis). `body` adds
    the step's weights to a body graph and returns the step, which sees h as [B, *state]."""

    projections: list[tuple[np.ndarray, np.ndarray, tuple[int, ...]]]
    state: tuple[int, ...]
    body: Callable[[Builder], Step]


def mgu_scan(layer: Layer) -> ScanLayer:
    """MGU's step: 2 Gemms (ONNX Runtime fuses each with its activation) and 4 elementwise nodes."""
    assert isinstance(layer, MGUCell)
    (w_xf, b_f), (w_xh, b_h) = gates([layer], 2)
    H = layer.hidden_size

    def body(graph: Builder) -> Step:
        w_hf, w_hh = graph.const(array(layer.weight_hf).T), graph.const(array(layer.weight_hh).T)

        def step(h: str, inputs: list[str]) -> str:
            p_f, p_h = inputs
            f = graph.op("Sigmoid", graph.op("Gemm", h, w_hf, p_f))
            g = graph.op("Tanh", graph.op("Gemm", graph.op("Mul", f, h), w_hh, p_h))
            return graph.op("Add", h, graph.op("Mul", f, graph.op("Sub", g, h)))  # (1 - f) h + f g

        return step

    return ScanLayer([(w_xf.T, b_f, (H,)), (w_xh.T, b_h, (H,))], (H,), body)


def brc_scan(layer: Layer) -> ScanLayer:
    """BRC's step in 11 elementwise nodes on h [B, 1, H]: both gates are one Sigmoid over a
    stacked [B, 2, H] (a = 1 + tanh(y) = 2 sigmoid(2y), the 2 folded into the weights), and
    the update is cand + c (h - cand). A double layer's halves are elementwise side by side."""
    cells = cast(list[BRCCell], cells_of(layer))
    (u_c, b_c), (u_a, b_a), (u_h, b_h) = gates(cells, 3)
    w_c = np.concatenate([array(cell.w_c) for cell in cells])
    w_a = np.concatenate([array(cell.w_a) for cell in cells])
    H = len(w_c)

    def body(graph: Builder) -> Step:
        w = graph.const(np.stack([w_c, 2 * w_a]))  # [2, H]

        def step(h: str, inputs: list[str]) -> str:
            p_ca, p_h = inputs
            c, s = graph.ops("Split", 2, graph.op("Sigmoid", graph.op("Add", p_ca, graph.op("Mul", h, w))), axis=1)
            s_h = graph.op("Mul", s, h)  # a h = 2 s h
            candidate = graph.op("Tanh", graph.op("Add", p_h, graph.op("Add", s_h, s_h)))
            return graph.op("Add", candidate, graph.op("Mul", c, graph.op("Sub", h, candidate)))

        return step

    projections = [
        (np.concatenate([u_c, 2 * u_a]).T, np.concatenate([b_c, 2 * b_a]), (2, H)),
        (u_h.T, b_h, (1, H)),
    ]
    return ScanLayer(projections, (1, H), body)


def _scan_body(layer: ScanLayer, name: str) -> onnx.GraphProto:
    """UNROLL steps: (h, each projection at each step) -> (h', the steps' h stacked [UNROLL * B, *state])."""
    graph = Builder(name)
    step = layer.body(graph)
    h = start = f"{name}/h"
    inputs = [[f"{name}/p{i}_{k}" for k in range(UNROLL)] for i in range(len(layer.projections))]
    outputs = []
    for k in range(UNROLL):
        h = step(h, [steps[k] for steps in inputs])
        outputs.append(h)
    stacked = graph.op("Concat", *outputs, axis=0)
    names = [start] + [n for steps in inputs for n in steps]
    return helper.make_graph(
        graph.nodes,
        name,
        inputs=[helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names],
        outputs=[helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in (h, stacked)],
        initializer=graph.initializers,
    )


def scan_layers(graph: Builder, network: Network, x: str) -> tuple[str, list[str]]:
    """x [T, B, I] -> the last layer's outputs [T, B, H] and each layer's final state [1, B, S].

    Time is padded to a multiple of UNROLL; as a loop cell's state is its output, each final
    state is the output at T - 1 and the padded steps never reach the results."""
    scan_layer = {"mgu": mgu_scan, "brc": brc_scan}[network.spec.cell]
    shape = graph.op("Shape", x)
    length = graph.op("Slice", shape, graph.const([0]), graph.const([1]))
    batch = graph.op("Slice", shape, graph.const([1]), graph.const([2]))
    zero = graph.const([0])
    pad = graph.op("Mod", graph.op("Neg", length), graph.const([UNROLL]))
    x = graph.op("Pad", x, graph.op("Concat", zero, zero, zero, pad, zero, zero, axis=0))
    x = graph.op("Reshape", x, graph.const([-1, network.spec.input_size]))  # [Tp * B, I]
    S = network.spec.state_size
    unrolled = graph.op("Mul", batch, graph.const([UNROLL]))  # an iteration's UNROLL steps of the batch
    chunk_shapes: dict[tuple[int, ...], str] = {}  # [Tp * B, n] -> [Tp / UNROLL, UNROLL * B, *row]
    time_major = graph.op("Concat", graph.const([-1]), batch, graph.const([S]), axis=0)
    last = graph.op("Sub", length, graph.const([1]))
    finals = []
    for index, layer in enumerate(network.layers):
        loop = scan_layer(layer)  # type: ignore[arg-type]
        inputs = []
        for weight, bias, row in loop.projections:
            if row not in chunk_shapes:
                chunk_shapes[row] = graph.op("Concat", graph.const([-1]), unrolled, graph.const(list(row)), axis=0)
            p = graph.op("Gemm", x, graph.const(weight), graph.const(bias))  # [Tp * B, n]
            p = graph.op("Reshape", p, chunk_shapes[row])
            inputs += graph.ops("Split", UNROLL, p, axis=1)  # step k of each iteration: [Tp / UNROLL, B, *row]
        state = graph.op("Gather", "state", graph.const(index), axis=0)  # [B, S]
        if len(loop.state) > 1:
            state = graph.op("Reshape", state, graph.const([0, *loop.state]))
        body = _scan_body(loop, f"layer{index}")
        _, outputs = graph.ops("Scan", 2, state, *inputs, body=body, num_scan_inputs=len(inputs))
        outputs = graph.op("Reshape", outputs, time_major)  # [Tp, B, S]
        finals.append(graph.op("Gather", outputs, last, axis=0))  # [1, B, S]
        x = graph.op("Reshape", outputs, graph.const([-1, S]))
    return graph.op("Slice", outputs, zero, length), finals

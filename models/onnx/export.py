"""ONNX export of any network, checked against PyTorch before it is accepted.

`cell.onnx` is the network's `step` (each cell's equations, plain matmuls and
activations) for one time step. `model.onnx` runs a whole sequence: for the
torch-kernel cells (gru, lstm, chrono) with ONNX's own GRU/LSTM ops, as torch exports
them; for the loop cells with a time-major graph written here node by node (see
`_loop_sequence`): nbrc, and mgu in double layers, as ONNX GRU ops with weights that make
them compute the cell exactly; single mgu layers and brc as the input projections of all
steps (one Gemm per gate group and layer) and an ONNX `Scan` over time whose hand-built
body runs `UNROLL` steps of the recurrence alone. Either way the batch and time axes are dynamic
and the initial state is an optional input that broadcasts to any batch. Every export
is run in ONNX Runtime against PyTorch at several lengths and batch sizes before it is
accepted: that is what catches the exporter's known traps (a frozen time axis, a GRU's
reset-gate convention) and a wrong mapping of a loop cell onto the GRU op.
"""

from __future__ import annotations

import copy
import io
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from pydantic import BaseModel
from torch import Tensor, nn
from torch.onnx import symbolic_helper

from warmzoo.models.cells import BRCCell, DoubleLayer, Layer, LoopCell, MGUCell, NBRCCell
from warmzoo.models.network import Network

OPSET = 17
TOLERANCE = 1e-4
PARITY_LENGTHS = (1, 7, 100, 500)
PARITY_BATCHES = (1, 3)
DRIFT_FACTOR = 100.0
NATIVE_CELLS = ("gru", "lstm", "chrono")  # exported by torch with ONNX's GRU/LSTM ops, the others by _loop_sequence
UNROLL = 4  # time steps per Scan iteration (see _loop_sequence)
Axes = dict[int, str]

Graph = Literal["model", "cell"]


class ParityCase(BaseModel):
    batch: int
    length: int
    max_abs_error: float  # ONNX Runtime against PyTorch float32
    float32_drift: float  # PyTorch float32 against PyTorch float64: the network's own rounding sensitivity
    allowed: float  # max(tolerance, DRIFT_FACTOR * float32_drift)


class ParityReport(BaseModel):
    """What the check measured: ONNX Runtime against PyTorch on fresh random inputs."""

    graph: Graph
    tolerance: float
    max_abs_error: float
    passed: bool
    cases: list[ParityCase]
    onnxruntime: str = ort.__version__
    opset: int = OPSET


class ExportError(RuntimeError):
    """The exported graph does not reproduce PyTorch; the file must not be served."""

    def __init__(self, message: str, report: ParityReport | None = None) -> None:
        super().__init__(message)
        self.report = report


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


def _export_step(network: Network) -> onnx.ModelProto:
    """cell.onnx: (input [B, I], state [L, B, S]) -> (output [B, O], state_out [L, B, S])."""
    spec = network.spec
    x_t, state = torch.zeros(2, spec.input_size), torch.zeros(spec.num_layers, 2, spec.state_size)
    return _trace(_Step(network), x_t, state, {0: "batch"})


def _native_sequence(network: Network) -> onnx.ModelProto:
    """model.onnx of a torch-kernel cell (gru, lstm, chrono): ONNX's own GRU/LSTM ops over the
    whole sequence, several times faster than a Scan of the step graph. This is the path
    with the known exporter traps (reset-gate convention, frozen time axis), which the
    parity check at several lengths is there to catch.

    For the LSTM the op also beats the same maths built by hand (2 x 256, batch 1, 2 cores):
    a MatMul + Scan per layer ran 1.5x slower (a dozen nodes per step around the GEMV), a
    wavefront Scan of both layers 2-6x slower (3 MiB of weights per iteration overflow a
    core's 2 MiB L2). Each step streams the layer's 1 MiB W_hh, ~12 us from L2 on one core,
    and the op runs within ~20% of that."""
    spec = network.spec
    x, state = torch.zeros(2, 3, spec.input_size), torch.zeros(spec.num_layers, 2, spec.state_size)
    return _with_optional_state(_trace(network, x, state, {0: "batch", 1: "time"}), spec.num_layers, spec.state_size)


class _Builder:
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


def _cells(layer: Layer) -> list[LoopCell]:
    return [layer.first, layer.second] if isinstance(layer, DoubleLayer) else [layer]  # type: ignore[list-item]


def _array(tensor: Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def _gates(cells: Sequence[LoopCell], gates: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each gate's input weight [H, I] and bias [H], in the order of `weight_ih`; the cells'
    units side by side (a double layer's two halves, which see the same input)."""
    weights = [_array(c.weight_ih).reshape(gates, c.hidden_size, c.input_size) for c in cells]
    biases = [_array(c.bias).reshape(gates, c.hidden_size) for c in cells]
    return [(np.concatenate([w[g] for w in weights]), np.concatenate([b[g] for b in biases])) for g in range(gates)]


# --- loop cells on ONNX's GRU op ---------------------------------------------------


def _gru_weights(cell: LoopCell) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """W [1, 3H, I], R [1, 3H, H], B [1, 6H] and linear_before_reset with which ONNX's GRU op
    (gates z, r, h; B = [Wb; Rb]; h' = (1 - z) n + z h) computes this cell's step exactly.

    nBRC: z = c; r = sigmoid(2 (Ua x + Wa h + ba)) and n = tanh(Uh x + bh + r * (2I h)), since
    2 sigmoid(2y) = 1 + tanh(y) = a. MGU: r = f, z = sigmoid(-y) = 1 - f, n = g."""
    H = cell.hidden_size
    if isinstance(cell, NBRCCell):
        (u_c, b_c), (u_a, b_a), (u_h, b_h) = _gates([cell], 3)
        w_c, w_a = _array(cell.weight_hh).reshape(2, H, H)
        weights = ([u_c, 2 * u_a, u_h], [w_c, 2 * w_a, 2 * np.eye(H, dtype=np.float32)], [b_c, 2 * b_a, b_h])
        linear_before_reset = 1
    else:
        assert isinstance(cell, MGUCell)
        (w_xf, b_f), (w_xh, b_h) = _gates([cell], 2)
        w_hf, w_hh = _array(cell.weight_hf), _array(cell.weight_hh)
        weights = ([-w_xf, w_xf, w_xh], [-w_hf, w_hf, w_hh], [-b_f, b_f, b_h])
        linear_before_reset = 0
    w, r, b = (np.concatenate(blocks)[None] for blocks in weights)
    return w, r, np.concatenate([b, np.zeros_like(b)], axis=1), linear_before_reset


def _gru_layers(graph: _Builder, network: Network, x: str) -> tuple[str, list[str]]:
    """x [T, B, I] -> the last layer's outputs [T, B, H] and each layer's final state [1, B, S],
    one GRU op per cell (two of H/2 in a double layer: a quarter of the full width's weights each)."""
    finals = []
    for index, layer in enumerate(network.layers):
        cells = _cells(layer)  # type: ignore[arg-type]
        state = graph.op("Gather", "state", graph.const([index]), axis=0)  # [1, B, S]
        starts = graph.ops("Split", len(cells), state, axis=2) if len(cells) > 1 else [state]
        outputs, ends = [], []
        for cell, start in zip(cells, starts):
            w, r, b, linear_before_reset = _gru_weights(cell)
            y, end = graph.ops(
                "GRU",
                2,
                x,
                graph.const(w),
                graph.const(r),
                graph.const(b),
                "",
                start,
                hidden_size=cell.hidden_size,
                linear_before_reset=linear_before_reset,
            )
            outputs.append(y)
            ends.append(end)
        x = graph.op("Squeeze", graph.concat(outputs, axis=3), graph.const([1]))  # [T, 1, B, H] -> [T, B, H]
        finals.append(graph.concat(ends, axis=2))
    return x, finals


# --- loop cells as a Scan ------------------------------------------------------------

Step = Callable[[str, list[str]], str]  # (h, the step's projected inputs) -> h'


@dataclass(frozen=True)
class _ScanLayer:
    """A layer as the Scan runs it. `projections` are made for every step outside the loop,
    each one scan input: (W [I, n], b [n], per-step shape after the batch axis). `body` adds
    the step's weights to a body graph and returns the step, which sees h as [B, *state]."""

    projections: list[tuple[np.ndarray, np.ndarray, tuple[int, ...]]]
    state: tuple[int, ...]
    body: Callable[[_Builder], Step]


def _mgu_scan(layer: Layer) -> _ScanLayer:
    """MGU's step: 2 Gemms (ONNX Runtime fuses each with its activation) and 4 elementwise nodes."""
    assert isinstance(layer, MGUCell)
    (w_xf, b_f), (w_xh, b_h) = _gates([layer], 2)
    H = layer.hidden_size

    def body(graph: _Builder) -> Step:
        w_hf, w_hh = graph.const(_array(layer.weight_hf).T), graph.const(_array(layer.weight_hh).T)

        def step(h: str, inputs: list[str]) -> str:
            p_f, p_h = inputs
            f = graph.op("Sigmoid", graph.op("Gemm", h, w_hf, p_f))
            g = graph.op("Tanh", graph.op("Gemm", graph.op("Mul", f, h), w_hh, p_h))
            return graph.op("Add", h, graph.op("Mul", f, graph.op("Sub", g, h)))  # (1 - f) h + f g

        return step

    return _ScanLayer([(w_xf.T, b_f, (H,)), (w_xh.T, b_h, (H,))], (H,), body)


def _brc_scan(layer: Layer) -> _ScanLayer:
    """BRC's step in 11 elementwise nodes on h [B, 1, H]: both gates are one Sigmoid over a
    stacked [B, 2, H] (a = 1 + tanh(y) = 2 sigmoid(2y), the 2 folded into the weights), and
    the update is cand + c (h - cand). A double layer's halves are elementwise side by side."""
    cells = cast(list[BRCCell], _cells(layer))
    (u_c, b_c), (u_a, b_a), (u_h, b_h) = _gates(cells, 3)
    w_c = np.concatenate([_array(cell.w_c) for cell in cells])
    w_a = np.concatenate([_array(cell.w_a) for cell in cells])
    H = len(w_c)

    def body(graph: _Builder) -> Step:
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
    return _ScanLayer(projections, (1, H), body)


def _scan_body(layer: _ScanLayer, name: str) -> onnx.GraphProto:
    """UNROLL steps: (h, each projection at each step) -> (h', the steps' h stacked [UNROLL * B, *state])."""
    graph = _Builder(name)
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


def _scan_layers(graph: _Builder, network: Network, x: str) -> tuple[str, list[str]]:
    """x [T, B, I] -> the last layer's outputs [T, B, H] and each layer's final state [1, B, S].

    Time is padded to a multiple of UNROLL; as a loop cell's state is its output, each final
    state is the output at T - 1 and the padded steps never reach the results."""
    scan_layer = {"mgu": _mgu_scan, "brc": _brc_scan}[network.spec.cell]
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


def _loop_sequence(network: Network) -> onnx.ModelProto:
    """model.onnx of a loop cell (mgu, brc, nbrc), time-major inside, per layer either:

    - GRU ops (nbrc; mgu in double layers): each cell mapped exactly onto ONNX's GRU op
      (`_gru_weights`), whose fused kernel runs the step without any per-node cost. It
      streams a third more recurrent weights than the cell needs (nbrc's 2I, mgu's z = 1 - r)
      and still wins for nbrc at both thread counts; a full-width mgu layer loses to the Scan
      at one thread, a double layer's two half-width ops (a quarter of the weights each) win.
    - a Scan (single mgu, brc): one Gemm per gate group projects every step's input, outside
      the loop; the body, written with as few nodes as the maths allows, runs UNROLL steps
      per iteration. In ONNX Runtime each body node costs ~0.3 us and each iteration ~0.7 us
      (plus ~0.1 us per scan input), against ~2.8 us for a [1, 256] x [256, 256] product.

    With two intra-op threads each such product (64 Ki multiply-adds, MLAS's threshold)
    is split across the threads, two fork/joins per mgu or nbrc step. That is faster than one
    thread, except in processes where other threads have run (torch, other sessions' pools):
    there ~40% of processes pay ~3 us per fork/join, for the old graphs as for these.
    The readout is one MatMul over all steps."""
    spec = network.spec
    L, S = spec.num_layers, spec.state_size
    graph = _Builder("sequence")
    x = graph.op("Transpose", "input", perm=[1, 0, 2])  # [T, B, I]
    on_gru_op = spec.cell == "nbrc" or (spec.cell == "mgu" and spec.double)
    x, finals = (_gru_layers if on_gru_op else _scan_layers)(graph, network, x)
    readout = network.readout
    y = graph.op("Add", graph.op("MatMul", x, graph.const(_array(readout.weight).T)), graph.const(_array(readout.bias)))
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
    return _with_optional_state(model, L, S)


def _with_optional_state(model: onnx.ModelProto, layers: int, width: int) -> onnx.ModelProto:
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


def _session(model_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # the `state` default initializer is deliberate
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def check_parity(network: Network, model_bytes: bytes, graph: Graph, seed: int = 0) -> ParityReport:
    """Run ONNX Runtime and PyTorch on the same fresh random inputs and states.

    A case passes when ONNX Runtime is within the tolerance of PyTorch, or, where the
    network itself amplifies rounding (chaotic dynamics over hundreds of steps make any
    two float32 engines drift apart), within DRIFT_FACTOR times PyTorch float32's own
    distance from float64. A wrong graph is caught on the short cases, where the drift is
    ~1e-7 and so the tolerance is what counts."""
    session = _session(model_bytes)
    reference = copy.deepcopy(network).double()
    spec = network.spec
    generator = torch.Generator().manual_seed(seed)
    lengths = PARITY_LENGTHS if graph == "model" else (1,)
    cases = []
    with torch.no_grad():
        for batch in PARITY_BATCHES:
            for length in lengths:
                x = torch.randn(batch, length, spec.input_size, generator=generator)
                state = 0.5 * torch.randn(spec.num_layers, batch, spec.state_size, generator=generator)
                x_in = x if graph == "model" else x[:, 0]
                expected = _torch_graph(network, graph, x_in, state)
                exact = _torch_graph(reference, graph, x_in.double(), state.double())
                got = session.run(["output", "state_out"], {"input": x_in.numpy(), "state": state.numpy()})
                error = _max_abs(got, expected)
                drift = _max_abs([e.numpy() for e in expected], exact)
                allowed = max(TOLERANCE, DRIFT_FACTOR * drift)
                cases.append(ParityCase(batch=batch, length=length, max_abs_error=error, float32_drift=drift, allowed=allowed))
    worst = max(c.max_abs_error for c in cases)
    passed = all(c.max_abs_error <= c.allowed for c in cases)
    return ParityReport(graph=graph, tolerance=TOLERANCE, max_abs_error=worst, passed=passed, cases=cases)


def _torch_graph(network: Network, graph: Graph, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
    """What the ONNX graph must compute: the whole sequence, or one step."""
    return network(x, state) if graph == "model" else network.step(x, state)


def _max_abs(got: list[np.ndarray], expected: tuple[Tensor, Tensor] | list[Tensor]) -> float:
    return max(float(np.abs(np.asarray(g, dtype=np.float64) - e.double().numpy()).max()) for g, e in zip(got, expected))


def export_onnx(network: Network, graph: Graph = "model") -> tuple[bytes, ParityReport]:
    """ONNX bytes of `graph` and the parity figures; raises ExportError when parity fails."""
    network = network.cpu().eval()
    if graph == "cell":
        model = _export_step(network)
    elif network.spec.cell in NATIVE_CELLS:
        model = _native_sequence(network)
    else:
        model = _loop_sequence(network)
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    report = check_parity(network, data, graph)
    if not report.passed:
        worst = max(report.cases, key=lambda c: c.max_abs_error - c.allowed)
        raise ExportError(
            f"{graph}.onnx disagrees with PyTorch by {worst.max_abs_error:.2e} at batch {worst.batch}, "
            f"length {worst.length} (allowed {worst.allowed:.1e})",
            report,
        )
    return data, report

"""ONNX export of any network, checked against PyTorch before it is accepted.

`cell.onnx` is the network's `step` (each cell's equations, plain matmuls and
activations) for one time step. `model.onnx` runs a whole sequence: for the
torch-kernel cells (gru, lstm, chrono) with ONNX's own GRU/LSTM ops; for the loop
cells (mgu, brc, nbrc) as their torch forward runs, layer by layer: the input
projection of every step as one MatMul, then an ONNX `Scan` over the time axis of the
recurrence alone (for brc, elementwise ops only). Either way the
batch and time axes are dynamic and the initial state is an optional input that
broadcasts to any batch. Every export is run in ONNX Runtime against PyTorch at
several lengths and batch sizes before it is accepted: that is what catches the
exporter's known traps (a frozen time axis, a GRU's reset-gate convention).
"""

from __future__ import annotations

import copy
import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from pydantic import BaseModel
from torch import Tensor, nn
from torch.onnx import symbolic_helper

from models.cells import DoubleLayer, Layer, LoopCell
from models.network import Network

OPSET = 17
TOLERANCE = 1e-4
PARITY_LENGTHS = (1, 7, 100, 500)
PARITY_BATCHES = (1, 3)
DRIFT_FACTOR = 100.0
NATIVE_CELLS = ("gru", "lstm", "chrono")  # exported with ONNX's GRU/LSTM ops, the others with Scan
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
    two-branch stable form (8 nodes, a Where) inside the per-step loop."""
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


def _as_scan_body(step: onnx.ModelProto, prefix: str) -> onnx.GraphProto:
    """A traced (input, state) graph with Scan's signature: (state, x_t) -> (state_out, y_t),
    every name prefixed so that several bodies live in one model."""
    body = onnx.GraphProto()
    body.CopyFrom(step.graph)
    body.name = prefix
    rename = {name: f"{prefix}/{name}" for name in _graph_names(body)}
    for node in body.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
        node.output[:] = [rename.get(o, o) for o in node.output]
        node.name = f"{prefix}/{node.name}"
    for collection in (body.input, body.output, body.value_info, body.initializer):
        for item in collection:
            item.name = rename[item.name]
    inputs = {i.name: i for i in body.input}
    outputs = {o.name: o for o in body.output}
    ordered_in = [inputs[f"{prefix}/state"], inputs[f"{prefix}/input"]]
    ordered_out = [outputs[f"{prefix}/state_out"], outputs[f"{prefix}/output"]]
    del body.input[:], body.output[:]
    body.input.extend(ordered_in)
    body.output.extend(ordered_out)
    return body


def _graph_names(graph: onnx.GraphProto) -> set[str]:
    names = {v.name for v in (*graph.input, *graph.output, *graph.value_info, *graph.initializer)}
    for node in graph.node:
        names.update(n for n in (*node.input, *node.output) if n)
    return names


class _Recurrence(nn.Module):
    """A loop layer's recurrence on its precomputed input projection: (p_t, h) -> (h', h')."""

    def __init__(self, layer: Layer) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, p_t: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        h = _recur(self.layer, p_t, h)
        return h, h


def _recur(layer: Layer, p_t: Tensor, h: Tensor) -> Tensor:
    if isinstance(layer, DoubleLayer):  # the halves' projections sit side by side, as in _projection
        (p1, p2), (h1, h2) = p_t.chunk(2, dim=-1), layer.split(h)
        return layer.join(_recur(layer.first, p1, h1), _recur(layer.second, p2, h2))
    assert isinstance(layer, LoopCell)
    return layer.recur(p_t, h)


def _projection(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """W [I, G*H] and b [G*H] with x @ W + b = the layer's input projection (both halves of a double layer)."""
    cells = [layer.first, layer.second] if isinstance(layer, DoubleLayer) else [layer]
    weight = torch.cat([cell.weight_ih for cell in cells])  # type: ignore[union-attr]
    bias = torch.cat([cell.bias for cell in cells])  # type: ignore[union-attr]
    return weight.detach().T.contiguous().numpy(), bias.detach().numpy()


def _loop_sequence(network: Network) -> onnx.ModelProto:
    """model.onnx of a loop cell (mgu, brc, nbrc), computed as its torch forward is: per layer,
    one MatMul projects every step's input, then a Scan runs the recurrence alone; the
    readout is one MatMul over all steps. (A Scan of the whole step graph would do each
    layer's input GEMV inside the loop, once per step.)"""
    spec = network.spec
    L, S = spec.num_layers, spec.state_size
    nodes, initializers, finals, x = [], [], [], "input"
    for index, layer in enumerate(network.layers):
        name = f"layer{index}"
        weight, bias = _projection(layer)  # type: ignore[arg-type]
        probe = torch.zeros(2, weight.shape[1]), torch.zeros(2, S)
        body = _as_scan_body(_trace(_Recurrence(layer), *probe, {0: "batch"}, {0: "batch"}), name)  # type: ignore[arg-type]
        initializers += [
            numpy_helper.from_array(weight, f"{name}/weight"),
            numpy_helper.from_array(bias, f"{name}/bias"),
            numpy_helper.from_array(np.array(index, dtype=np.int64), f"{name}/index"),
        ]
        nodes += [
            helper.make_node("MatMul", [x, f"{name}/weight"], [f"{name}/xw"]),
            helper.make_node("Add", [f"{name}/xw", f"{name}/bias"], [f"{name}/projection"]),
            helper.make_node("Gather", ["state", f"{name}/index"], [f"{name}/state"], axis=0),
            helper.make_node(
                "Scan",
                [f"{name}/state", f"{name}/projection"],
                [f"{name}/state_out", f"{name}/output"],
                body=body,
                num_scan_inputs=1,
                scan_input_axes=[1],
                scan_output_axes=[1],
            ),
            helper.make_node("Unsqueeze", [f"{name}/state_out", "axis0"], [f"{name}/final"]),
        ]
        finals.append(f"{name}/final")
        x = f"{name}/output"
    readout = network.readout
    initializers += [
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"),
        numpy_helper.from_array(readout.weight.detach().T.contiguous().numpy(), "readout/weight"),
        numpy_helper.from_array(readout.bias.detach().numpy(), "readout/bias"),
    ]
    nodes += [
        helper.make_node("Concat", finals, ["state_out"], axis=0),
        helper.make_node("MatMul", [x, "readout/weight"], ["readout/xw"]),
        helper.make_node("Add", ["readout/xw", "readout/bias"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "warmzoo_sequence",
        inputs=[
            helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", "time", spec.input_size]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [L, "batch", S]),
        ],
        outputs=[
            helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", "time", spec.output_size]),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [L, "batch", S]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="warmzoo")
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

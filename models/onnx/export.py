"""The entry point: `export_onnx` writes a graph of a network and accepts it only when ONNX
Runtime reproduces PyTorch on it (`check_parity`)."""

from __future__ import annotations

import copy
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort
import torch
from pydantic import BaseModel
from torch import Tensor

from warmzoo.models.network import Network
from warmzoo.models.onnx.graph import OPSET
from warmzoo.models.onnx.loop_cells import loop_sequence
from warmzoo.models.onnx.tracing import native_sequence, step_graph

TOLERANCE = 1e-4
PARITY_LENGTHS = (1, 7, 100, 500)
PARITY_BATCHES = (1, 3)
DRIFT_FACTOR = 100.0
NATIVE_CELLS = ("gru", "lstm", "chrono")  # exported by torch with ONNX's GRU/LSTM ops, the others by loop_sequence

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


def export_onnx(network: Network, graph: Graph = "model") -> tuple[bytes, ParityReport]:
    """ONNX bytes of `graph` and the parity figures; raises ExportError when parity fails.

    The export works on a CPU copy in eval mode: the caller's network keeps its device and mode."""
    network = copy.deepcopy(network).cpu().eval()
    if graph == "cell":
        model = step_graph(network)
    elif network.spec.cell in NATIVE_CELLS:
        model = native_sequence(network)
    else:
        model = loop_sequence(network)
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


def check_parity(network: Network, model_bytes: bytes, graph: Graph, seed: int = 0) -> ParityReport:
    """Run ONNX Runtime and PyTorch (a CPU network) on the same fresh random inputs and states.

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


def _session(model_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # the `state` default initializer is deliberate
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _torch_graph(network: Network, graph: Graph, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
    """What the ONNX graph must compute: the whole sequence, or one step."""
    return network(x, state) if graph == "model" else network.step(x, state)


def _max_abs(got: list[np.ndarray], expected: tuple[Tensor, Tensor] | list[Tensor]) -> float:
    return max(float(np.abs(np.asarray(g, dtype=np.float64) - e.double().numpy()).max()) for g, e in zip(got, expected))

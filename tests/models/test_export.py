"""ONNX export: parity for every cell and both graphs, dynamic axes, and a check that bites."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from warmzoo.models.network import build_network
from warmzoo.models.onnx import ExportError, check_parity, export_onnx
from warmzoo.models.onnx.scan import UNROLL
from warmzoo.models.spec import CELLS, RNNSpec


def _net(cell: str, double: bool = False, seed: int = 0) -> torch.nn.Module:
    spec = RNNSpec(cell=cell, input_size=2, hidden_size=6, num_layers=2, output_size=3, double=double)
    return build_network(spec, seed=seed)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("graph", ["model", "cell"])
def test_parity_for_every_cell_and_graph(cell: str, double: bool, graph: str) -> None:
    data, report = export_onnx(_net(cell, double), graph)  # type: ignore[arg-type]
    assert report.passed and report.max_abs_error <= 1e-4
    expected_lengths = {1, 7, 100, 500} if graph == "model" else {1}
    assert {c.length for c in report.cases} == expected_lengths
    assert len({c.batch for c in report.cases}) >= 2
    onnx.checker.check_model(onnx.load_from_string(data))


@pytest.mark.parametrize("cell", ["gru", "brc", "nbrc"])  # a native op, the per-layer Scans, loop cells on GRU ops
def test_sequence_graph_has_dynamic_axes_and_optional_state(cell: str) -> None:
    net = _net(cell)
    data, _ = export_onnx(net, "model")
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [i.name for i in session.get_overridable_initializers()] == ["state"]  # optional input
    assert [o.name for o in session.get_outputs()] == ["output", "state_out"]
    for batch, length in [(1, 3), (5, 40)]:
        x = np.random.default_rng(0).standard_normal((batch, length, 2)).astype(np.float32)
        y, state = session.run(None, {"input": x})  # state omitted: zeros broadcast to the batch
        with torch.no_grad():
            y_ref, state_ref = net(torch.from_numpy(x))
        np.testing.assert_allclose(y, y_ref.numpy(), atol=1e-5)
        np.testing.assert_allclose(state, state_ref.numpy(), atol=1e-5)


def _scan_bodies(graph: onnx.GraphProto) -> list[tuple[onnx.NodeProto, onnx.GraphProto]]:
    return [(node, a.g) for node in graph.node if node.op_type == "Scan" for a in node.attribute if a.name == "body"]


@pytest.mark.parametrize("double", [False, True])
def test_brc_scan_body_is_elementwise_and_unrolled(double: bool) -> None:
    """brc's recurrence is elementwise: every matmul of its model.onnx is outside the Scans (one
    Gemm per scan input group and layer, one readout), and each iteration runs UNROLL steps of at
    most 11 nodes, with no shape ops, split of the projection or torch's two-branch lerp inside."""
    data, _ = export_onnx(_net("brc", double), "model")
    graph = onnx.load_from_string(data).graph
    scans = _scan_bodies(graph)
    assert len(scans) == 2  # one Scan per layer
    ops = [n.op_type for n in graph.node]
    assert ops.count("Gemm") == 4 and ops.count("MatMul") == 1
    for node, body in scans:
        assert next(a.i for a in node.attribute if a.name == "num_scan_inputs") == 2 * UNROLL  # per gate group and step
        body_ops = [n.op_type for n in body.node]
        assert len(body_ops) <= 11 * UNROLL + 1  # + the Concat of the steps' outputs
        assert body_ops.count("Split") == UNROLL  # only the stacked gates [c, a], once per step
        assert not {"MatMul", "Gemm", "Where", "Reshape", "Squeeze", "Unsqueeze", "Slice", "Gather"} & set(body_ops)


def test_mgu_scan_body_is_two_gemms_a_step() -> None:
    """A single mgu layer runs on a Scan: per step its two matrix products (each fused with its
    activation by ONNX Runtime) and four elementwise nodes, the input projection outside."""
    data, _ = export_onnx(_net("mgu"), "model")
    graph = onnx.load_from_string(data).graph
    scans = _scan_bodies(graph)
    assert len(scans) == 2 and "GRU" not in {n.op_type for n in graph.node}
    for _, body in scans:
        body_ops = [n.op_type for n in body.node]
        assert body_ops.count("Gemm") == 2 * UNROLL and body_ops.count("MatMul") == 0
        assert len(body_ops) == 8 * UNROLL + 1


@pytest.mark.parametrize(("cell", "double"), [("nbrc", False), ("nbrc", True), ("mgu", True)])
def test_loop_cells_on_the_onnx_gru_op(cell: str, double: bool) -> None:
    """nbrc, and mgu in double layers, run on ONNX's GRU op, one per cell (the fastest graphs
    measured, docs/benchmarks.md): no Scan may creep back in."""
    data, _ = export_onnx(_net(cell, double), "model")
    ops = [n.op_type for n in onnx.load_from_string(data).graph.node]
    assert ops.count("GRU") == (4 if double else 2)  # a double layer is two cells of H/2
    assert "Scan" not in ops and "Loop" not in ops


@pytest.mark.parametrize("double", [False, True])
def test_lstm_cells_run_on_the_onnx_lstm_op(double: bool) -> None:
    """One ONNX LSTM node per cell and no Scan: the native op was the fastest LSTM graph
    measured (docs/benchmarks.md), so a hand-built loop must not creep back in."""
    data, _ = export_onnx(_net("lstm", double), "model")
    ops = [n.op_type for n in onnx.load_from_string(data).graph.node]
    assert ops.count("LSTM") == (4 if double else 2)  # a double layer is two cells of H/2
    assert "Scan" not in ops and "Loop" not in ops


def test_streaming_through_the_cell_graph_equals_the_sequence() -> None:
    net = _net("brc", double=True)
    cell, _ = export_onnx(net, "cell")
    session = ort.InferenceSession(cell, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((2, 9, 2)).astype(np.float32)
    state = np.zeros((2, 2, 6), dtype=np.float32)
    outputs = []
    for t in range(9):
        y_t, state = session.run(None, {"input": x[:, t], "state": state})
        outputs.append(y_t)
    with torch.no_grad():
        y_ref, _ = net(torch.from_numpy(x))
    np.testing.assert_allclose(np.stack(outputs, axis=1), y_ref.numpy(), atol=1e-5)


def test_parity_check_catches_a_wrong_graph() -> None:
    """A graph of other weights (as a wrong GRU convention would give) fails the check."""
    data, _ = export_onnx(_net("gru", seed=0), "model")
    report = check_parity(_net("gru", seed=1), data, "model")
    assert not report.passed and report.max_abs_error > 1e-2


def test_failed_parity_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    import warmzoo.models.onnx.export as export

    monkeypatch.setattr(export, "TOLERANCE", 0.0)  # nothing passes a zero tolerance on 500 steps
    monkeypatch.setattr(export, "DRIFT_FACTOR", 0.0)
    with pytest.raises(ExportError, match="disagrees") as caught:
        export_onnx(_net("lstm"), "model")
    assert caught.value.report is not None and not caught.value.report.passed

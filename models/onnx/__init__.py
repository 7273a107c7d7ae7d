"""ONNX export of any network, checked against PyTorch before it is accepted.

`cell.onnx` is the network's `step` (each cell's equations, plain matmuls and activations)
for one time step. `model.onnx` runs a whole sequence, time-major inside:

- gru, lstm, chrono: ONNX's own GRU/LSTM ops, as torch exports them (`tracing`);
- nbrc, and mgu in double layers: ONNX GRU ops with weights that make them compute the cell
  exactly (`gru_op`);
- single mgu layers and brc: the input projections of all steps (one Gemm per gate group and
  layer) and an ONNX `Scan` over time whose hand-built body runs a few steps of the recurrence
  per iteration (`scan`);

assembled for the loop cells in `loop_cells`, with a builder of hand-written graphs in `graph`.
Either way batch and time are dynamic and the initial state is an optional input that
broadcasts to any batch (`optional_state`). Every export is run in ONNX Runtime against
PyTorch at several lengths and batch sizes before it is accepted (`export`): that is what
catches the exporter's known traps (a frozen time axis, a GRU's reset-gate convention) and a
wrong mapping of a loop cell onto the GRU op.
"""

from warmzoo.models.onnx.export import ExportError, Graph, ParityCase, ParityReport, check_parity, export_onnx

__all__ = ["ExportError", "Graph", "ParityCase", "ParityReport", "check_parity", "export_onnx"]

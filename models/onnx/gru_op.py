"""Loop cells on ONNX's GRU op: weights with which the op's fused kernel computes nbrc, and mgu,
exactly, so a layer runs with no per-node cost at all.

ONNX's GRU: gates z, r, h; B = [Wb; Rb]; h' = (1 - z) n + z h, with n = tanh(W_h x + Wb_h
+ r * (R_h h + Rb_h)) when `linear_before_reset` is 1."""

from __future__ import annotations

import numpy as np

from warmzoo.models.cells import LoopCell, MGUCell, NBRCCell
from warmzoo.models.network import Network
from warmzoo.models.onnx.graph import Builder, array, cells_of, gates


def gru_weights(cell: LoopCell) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """W [1, 3H, I], R [1, 3H, H], B [1, 6H] and linear_before_reset with which ONNX's GRU op
    computes this cell's step exactly.

    nBRC: z = c; r = sigmoid(2 (Ua x + Wa h + ba)) and n = tanh(Uh x + bh + r * (2I h)), since
    2 sigmoid(2y) = 1 + tanh(y) = a. MGU: r = f, z = sigmoid(-y) = 1 - f, n = g."""
    H = cell.hidden_size
    if isinstance(cell, NBRCCell):
        (u_c, b_c), (u_a, b_a), (u_h, b_h) = gates([cell], 3)
        w_c, w_a = array(cell.weight_hh).reshape(2, H, H)
        weights = ([u_c, 2 * u_a, u_h], [w_c, 2 * w_a, 2 * np.eye(H, dtype=np.float32)], [b_c, 2 * b_a, b_h])
        linear_before_reset = 1
    else:
        assert isinstance(cell, MGUCell)
        (w_xf, b_f), (w_xh, b_h) = gates([cell], 2)
        w_hf, w_hh = array(cell.weight_hf), array(cell.weight_hh)
        weights = ([-w_xf, w_xf, w_xh], [-w_hf, w_hf, w_hh], [-b_f, b_f, b_h])
        linear_before_reset = 0
    w, r, b = (np.concatenate(blocks)[None] for blocks in weights)
    return w, r, np.concatenate([b, np.zeros_like(b)], axis=1), linear_before_reset


def gru_layers(graph: Builder, network: Network, x: str) -> tuple[str, list[str]]:
    """x [T, B, I] -> the last layer's outputs [T, B, H] and each layer's final state [1, B, S],
    one GRU op per cell (two of H/2 in a double layer: a quarter of the full width's weights each)."""
    finals = []
    for index, layer in enumerate(network.layers):
        cells = cells_of(layer)  # type: ignore[arg-type]
        state = graph.op("Gather", "state", graph.const([index]), axis=0)  # [1, B, S]
        starts = graph.ops("Split", len(cells), state, axis=2) if len(cells) > 1 else [state]
        outputs, ends = [], []
        for cell, start in zip(cells, starts):
            w, r, b, linear_before_reset = gru_weights(cell)
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

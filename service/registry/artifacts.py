"""The downloadable files of a version: which exist, their types, and how the derived ones are made.

`weights.safetensors` and `README.md` are stored when a version is published; the other
files are derived from the weights on first request and then stored like any blob.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from warmzoo.models.onnx import ExportError, export_onnx
from warmzoo.models.network import Network
from warmzoo.models.weights import state_dict_bytes
from warmzoo.service.core.errors import Reason, WarmzooError

OCTET_STREAM = "application/octet-stream"
Produced = tuple[bytes, dict[str, Any] | None]


def _state_dict(network: Network) -> Produced:
    return state_dict_bytes(network), None


def _onnx(graph: str) -> Callable[[Network], Produced]:
    def produce(network: Network) -> Produced:
        try:
            data, report = export_onnx(network, graph)  # type: ignore[arg-type]
        except ExportError as exc:  # its message carries the worst case's figures
            raise WarmzooError(
                Reason.INVALID,
                f"file {graph}.onnx cannot be served for these weights: {exc}."
                " Download weights.safetensors or state_dict.pt instead.",
                field="file",
                code="export_parity_failed",
            ) from exc
        return data, {"parity": report.model_dump()}

    return produce


@dataclass(frozen=True)
class FileKind:
    name: str
    content_type: str
    description: str
    produce: Callable[[Network], Produced] | None = None  # None: stored at publish time


FILE_KINDS: dict[str, FileKind] = {
    kind.name: kind
    for kind in (
        FileKind("weights.safetensors", OCTET_STREAM, "The weights, with the spec in the header metadata."),
        FileKind(
            "state_dict.pt", OCTET_STREAM, "PyTorch state dict; load with torch.load(weights_only=True).", _state_dict
        ),
        FileKind("model.onnx", OCTET_STREAM, "Whole-sequence ONNX graph, dynamic batch and time.", _onnx("model")),
        FileKind(
            "cell.onnx", OCTET_STREAM, "One-step ONNX graph: (input, state) -> (output, state_out).", _onnx("cell")
        ),
        FileKind("README.md", "text/markdown; charset=utf-8", "The model card."),
    )
}

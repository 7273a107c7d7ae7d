"""The downloadable files of a version: which exist, their types, and how the derived ones are made.

`weights.safetensors` and `README.md` are stored when a version is published; the other
files are derived from the version on first request and then stored like any blob.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from warmzoo.models.export import ExportError, export_onnx
from warmzoo.models.network import Network
from warmzoo.models.spec import RNNSpec
from warmzoo.models.torch_native import TORCH_CELLS, torch_native_bytes
from warmzoo.models.weights import network_from_weights, state_dict_bytes
from warmzoo.service.core.errors import Reason, WarmzooError
from warmzoo.service.registry.hub import hub_files, modeling_source, zip_folder
from warmzoo.service.registry.tables import VersionRow

OCTET_STREAM = "application/octet-stream"
Produced = tuple[bytes, dict[str, Any] | None]


class Source:
    """What a derived file is made from: the version, its weights file, and the network it holds."""

    def __init__(self, version: VersionRow, weights: bytes) -> None:
        self.version, self.weights = version, weights

    @cached_property
    def network(self) -> Network:
        return network_from_weights(self.weights)


def _state_dict(source: Source) -> Produced:
    return state_dict_bytes(source.network), None


def _torch_native(source: Source) -> Produced:
    return torch_native_bytes(source.network), None


def _modeling(source: Source) -> Produced:
    return modeling_source(), None


def _hub_zip(source: Source) -> Produced:
    return zip_folder(hub_files(source.version, source.weights, source.network)), None


def _onnx(graph: str) -> Callable[[Source], Produced]:
    def produce(source: Source) -> Produced:
        try:
            data, report = export_onnx(source.network, graph)  # type: ignore[arg-type]
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
    produce: Callable[[Source], Produced] | None = None  # None: stored at publish time
    cells: tuple[str, ...] | None = None  # the cells it exists for; None: every cell

    def exists_for(self, spec: RNNSpec) -> bool:
        return self.cells is None or spec.cell in self.cells


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
        FileKind(
            "torch.safetensors",
            OCTET_STREAM,
            "The weights under torch's names: they load into torch.nn.GRU / torch.nn.LSTM(num_layers=L,"
            " batch_first=True), and readout.* into torch.nn.Linear.",
            _torch_native,
            cells=TORCH_CELLS,
        ),
        FileKind(
            "modeling.py",
            "text/x-python; charset=utf-8",
            "The network in plain PyTorch (imports only torch and safetensors); load(\"weights.safetensors\").",
            _modeling,
        ),
        FileKind(
            "hf.zip",
            "application/zip",
            "Hugging Face Hub folder: config.json, model.safetensors, modeling.py, README.md with metadata.",
            _hub_zip,
        ),
        FileKind("README.md", "text/markdown; charset=utf-8", "The model card."),
    )
}

"""The downloadable files of a version: which exist, their types, and how the derived ones are made.

`weights.safetensors` and `README.md` are stored when a version is published; the other
files are derived from the version on first request and then stored like any blob.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from warmzoo.models.onnx import ExportError, export_onnx
from warmzoo.models.network import Network
from warmzoo.models.spec import RNNSpec
from warmzoo.models.torch_native import TORCH_CELLS, torch_native_bytes
from warmzoo.models.weights import network_from_weights, state_dict_bytes
from warmzoo.service.core.errors import Reason, WarmzooError
from warmzoo.service.registry.hub import hub_files, modeling_source, zip_folder
from warmzoo.service.registry.tables import VersionRow

OCTET_STREAM = "application/octet-stream"
Produced = tuple[bytes, dict[str, Any] | None]
REMEMBERED_FAILURES = 4096  # (weights, file) pairs whose refusal is kept; each holds one short message


class Source:
    """What a derived file is made from: the version, its weights file and the network it holds,
    the last two read only when a file needs them."""

    def __init__(self, version: VersionRow, read_weights: Callable[[], bytes]) -> None:
        self.version, self._read_weights = version, read_weights

    @cached_property
    def weights(self) -> bytes:
        return self._read_weights()

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

    def derive(self, source: Source) -> Produced:
        """The file made from `source`. A refusal (an export that fails its parity check) depends
        only on the weights and this file, so it is remembered: asking again answers the same
        error at once instead of loading and exporting the network anew."""
        assert self.produce is not None, f"{self.name} is stored at publish time, not derived"
        key = (source.version.sha256, self.name)
        known = _FAILURES.get(key)
        if known is not None:
            raise WarmzooError(known.reason, known.message, field=known.field, code=known.code)
        try:
            return self.produce(source)
        except WarmzooError as exc:
            _FAILURES.put(key, exc)
            raise


class _Failures:
    """A bounded, thread-safe map (weights sha256, file name) -> the refusal, oldest dropped first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._errors: OrderedDict[tuple[str, str], WarmzooError] = OrderedDict()

    def get(self, key: tuple[str, str]) -> WarmzooError | None:
        with self._lock:
            return self._errors.get(key)

    def put(self, key: tuple[str, str], error: WarmzooError) -> None:
        with self._lock:
            self._errors[key] = error.with_traceback(None)
            while len(self._errors) > self._size:
                self._errors.popitem(last=False)


_FAILURES = _Failures(REMEMBERED_FAILURES)


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

"""The downloadable files of a version: which exist, their types, and how the derived ones are made.

`weights.safetensors` and `README.md` are stored when a version is published; the other
files are derived from the weights on first request and then stored like any blob.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from warmzoo.models.onnx import ExportError, export_onnx
from warmzoo.models.network import Network
from warmzoo.models.weights import state_dict_bytes
from warmzoo.service.core.errors import Reason, WarmzooError

OCTET_STREAM = "application/octet-stream"
Produced = tuple[bytes, dict[str, Any] | None]
REMEMBERED_FAILURES = 4096  # (weights, file) pairs whose refusal is kept; each holds one short message


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

    def derive(self, weights_sha256: str, network: Callable[[], Network]) -> Produced:
        """The file made from the weights `weights_sha256`. A refusal (an export that fails its
        parity check) depends only on the weights and this file, so it is remembered: asking
        again answers the same error at once instead of loading and exporting the network anew."""
        assert self.produce is not None, f"{self.name} is stored at publish time, not derived"
        key = (weights_sha256, self.name)
        known = _FAILURES.get(key)
        if known is not None:
            raise WarmzooError(known.reason, known.message, field=known.field, code=known.code)
        try:
            return self.produce(network())
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
        FileKind("README.md", "text/markdown; charset=utf-8", "The model card."),
    )
}

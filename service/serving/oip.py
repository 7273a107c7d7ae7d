"""Pydantic data models of the Open Inference Protocol v2 (KServe) REST messages.

Kept apart from the data plane, as KServe keeps `v2_datamodels.py` apart from
`dataplane.py`: these classes describe the wire format only; what the values mean
(shapes, datatypes, sequences) is checked in `serving.dataplane`. The binary tensor data
extension (Triton's, which tritonclient uses by default) is framed here too: a JSON header of
`Inference-Header-Content-Length` bytes, then the raw tensors in the order of the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from warmzoo.service.core.errors import Reason, WarmzooError

Parameters = dict[str, bool | int | float | str]
"""OIP `$parameters`: free key/value pairs whose values are JSON booleans, numbers or strings."""


def _input(data: list[float]) -> dict[str, Any]:
    """The `input` tensor of an example: one sequence of len(data) steps of one feature."""
    return {"name": "input", "shape": [1, len(data), 1], "datatype": "FP32", "data": data}


INFER_EXAMPLES: dict[str, dict[str, Any]] = {
    "sequence": {
        "summary": "A whole sequence",
        "description": "One sequence of 3 steps of 1 feature; the answer has `output` and the final `state`.",
        "value": {"id": "42", "inputs": [_input([0.1, -0.4, 0.7])]},
    },
    "only output": {
        "summary": "Only the output tensor",
        "value": {"inputs": [_input([0.5, 0.0, -0.5, 1.0])], "outputs": [{"name": "output"}]},
    },
    "stream start": {
        "summary": "Streaming: first request of sequence 7",
        "description": "The server keeps the state for the next request of sequence 7.",
        "value": {"parameters": {"sequence_id": 7, "sequence_start": True}, "inputs": [_input([0.1])]},
    },
    "stream next": {
        "summary": "Streaming: a later request of sequence 7",
        "value": {"parameters": {"sequence_id": 7}, "inputs": [_input([-0.4])]},
    },
    "stream end": {
        "summary": "Streaming: last request of sequence 7",
        "description": "The server frees the sequence's state after answering.",
        "value": {"parameters": {"sequence_id": 7, "sequence_end": True}, "inputs": [_input([0.7])]},
    },
}
"""Named examples of infer requests (for the OpenAPI page), for a model with input_size 1 such as
the starter catalogue's `starter-gru`."""


class RequestInput(BaseModel):
    """One input tensor; `data` is row-major, either flat or nested to the tensor's shape."""

    name: str = Field(examples=["input"])
    shape: list[int] = Field(examples=[[1, 3, 1]])
    datatype: str = Field(examples=["FP32"])
    parameters: Parameters | None = None
    # Optional on the wire so that a tensor sent with the (unsupported) binary
    # extension gets a clear message from the data plane instead of a schema error.
    data: list[Any] | None = Field(default=None, examples=[[0.1, 0.2, 0.3]])


class RequestOutput(BaseModel):
    """An output the client wants back; without a request `outputs` list it gets all of them."""

    name: str = Field(examples=["output"])
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    """`$inference_request`. Sequence requests carry `sequence_id`/`sequence_start`/`sequence_end` in `parameters`."""

    model_config = ConfigDict(json_schema_extra={"examples": [INFER_EXAMPLES["sequence"]["value"]]})

    id: str | None = Field(default=None, examples=["42"])
    parameters: Parameters | None = Field(default=None, examples=[{"sequence_id": 7, "sequence_start": True}])
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    """One output tensor, its data flattened row-major."""

    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = Field(default=None, examples=[{"binary_data_size": 12}])
    data: list[float] | None = Field(default=None, description="Absent when the output is sent as binary data.")


class InferenceResponse(BaseModel):
    """`$inference_response`; `id` echoes the request's."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class MetadataTensor(BaseModel):
    """`$metadata_tensor`: -1 marks a dimension that varies between requests."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """`$metadata_model_response`."""

    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ServerMetadata(BaseModel):
    """`$metadata_server_response`."""

    name: str
    version: str
    extensions: list[str]


class ModelStatistics(BaseModel):
    """Triton's statistics extension: one `model_stats` entry per model version."""

    model_stats: list[dict[str, Any]]


class RepositoryIndexRequest(BaseModel):
    """Triton's model repository index request: `ready` lists only the versions loaded now."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"ready": False}]})

    ready: StrictBool = False  # a JSON boolean, as the schema says: 0 or "yes" is refused


class RepositoryIndexEntry(BaseModel):
    """One version in the repository index; `reason` says why it is not READY."""

    name: str
    version: str
    state: str
    reason: str


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


BINARY_HEADER = "Inference-Header-Content-Length"
"""The HTTP header of the binary tensor data extension: the length of the JSON part of a body."""
RawInputs = dict[int, bytes]
"""Index of a request input -> its tensor as raw little-endian bytes (binary extension, gRPC raw contents)."""


@dataclass(frozen=True)
class InferenceResult:
    """What a request computed, before any encoding: each protocol encodes it its own way."""

    model_name: str
    model_version: str
    id: str | None
    outputs: dict[str, np.ndarray]  # the requested outputs in the requested order (all, in graph order, by default)


def binary_inputs(request: InferenceRequest, tail: bytes) -> RawInputs:
    """Cut the binary part of a body into the inputs that declare `parameters.binary_data_size`, in order."""
    raw: RawInputs = {}
    offset = 0
    for i, tensor in enumerate(request.inputs):
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise WarmzooError(
                Reason.BAD_REQUEST,
                f"input {tensor.name!r}: binary_data_size must be a byte count, got {size!r}",
                field=f"inputs[{i}].parameters.binary_data_size",
                code="invalid_input",
            )
        if offset + size > len(tail):
            raise WarmzooError(
                Reason.BAD_REQUEST,
                f"input {tensor.name!r} declares {size} bytes of binary data at offset {offset}, but the body has "
                f"only {len(tail)} bytes after its {BINARY_HEADER} JSON bytes",
                field=f"inputs[{i}].parameters.binary_data_size",
                code="invalid_input",
            )
        raw[i] = tail[offset : offset + size]
        offset += size
    if offset != len(tail):
        raise WarmzooError(
            Reason.BAD_REQUEST,
            f"the body has {len(tail)} bytes of binary data after its JSON, but its inputs' binary_data_size "
            f"add up to {offset}; set {BINARY_HEADER} to the length of the JSON part",
            field="inputs",
            code="invalid_input",
        )
    return raw


def encode_response(result: InferenceResult, request: InferenceRequest) -> tuple[bytes, int | None]:
    """The HTTP body of a result, and the length of its JSON part when binary tensors follow it
    (None: a plain JSON body)."""
    # As Triton reads them: an output's own `binary_data`, else the request's `binary_data_output`.
    default = (request.parameters or {}).get("binary_data_output") is True
    own = {output.name: (output.parameters or {}).get("binary_data") for output in request.outputs or []}
    outputs, tail = [], []
    for name, array in result.outputs.items():
        shape, datatype = list(array.shape), "FP32"
        if default if own.get(name) is None else own[name] is True:
            data = np.ascontiguousarray(array, dtype="<f4").tobytes()
            tail.append(data)
            sized = {"binary_data_size": len(data)}
            outputs.append(ResponseOutput(name=name, shape=shape, datatype=datatype, parameters=sized))
        else:
            outputs.append(ResponseOutput(name=name, shape=shape, datatype=datatype, data=array.ravel().tolist()))
    response = InferenceResponse(
        model_name=result.model_name, model_version=result.model_version, id=result.id, outputs=outputs
    )
    header = response.model_dump_json(exclude_none=True).encode()
    if not tail:
        return header, None
    return b"".join([header, *tail]), len(header)

"""Pydantic data models of the Open Inference Protocol v2 (KServe) REST messages.

Kept apart from the data plane, as KServe keeps `v2_datamodels.py` apart from
`dataplane.py`: these classes describe the wire format only; what the values mean
(shapes, datatypes, sequences) is checked in `serving.dataplane`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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
    parameters: Parameters | None = None
    data: list[float]


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


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool

"""Weights on disk and on the wire: safetensors in, safetensors (or a state dict) out.

User data is never unpickled: uploads are read with safetensors only, and every
tensor is checked against the spec before it reaches a network.
"""

from __future__ import annotations

import io
import json

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import Tensor

from warmzoo.models.network import Network, build_network
from warmzoo.models.shapes import tensor_shapes
from warmzoo.models.spec import RNNSpec

SPEC_KEY = "spec"


class WeightsError(ValueError):
    """Weights that do not fit their spec; `tensor` names the culprit when there is one."""

    def __init__(self, message: str, tensor: str | None = None) -> None:
        super().__init__(message)
        self.tensor = tensor


def weights_bytes(network: Network, metadata: dict[str, str] | None = None) -> bytes:
    """safetensors bytes of the network, with its spec in the header metadata."""
    header = {SPEC_KEY: network.spec.model_dump_json(), **(metadata or {})}
    tensors = {name: t.detach().cpu().contiguous() for name, t in network.state_dict().items()}
    return save_safetensors(tensors, metadata=header)


def read_safetensors(data: bytes) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and header metadata of a safetensors file; malformed files raise WeightsError."""
    try:
        tensors = load_safetensors(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise WeightsError(f"not a valid safetensors file: {exc}") from exc
    return tensors, metadata


def check_tensors(spec: RNNSpec, tensors: dict[str, Tensor]) -> None:
    """Names, shapes, dtypes and finiteness must match a network of `spec`: checked against the
    spec's tensor table (models.shapes), so that no network is built for a file that does not fit."""
    expected = tensor_shapes(spec)
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise WeightsError(f"tensor {missing[0]!r} is missing ({len(missing)} missing in all)", tensor=missing[0])
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise WeightsError(f"tensor {unexpected[0]!r} is not part of a {spec.cell} network", tensor=unexpected[0])
    for name, shape in expected.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != shape:
            raise WeightsError(f"tensor {name!r} has shape {list(tensor.shape)}, the spec needs {list(shape)}", tensor=name)
        if tensor.dtype != torch.float32:  # a silent cast would lose precision (float64) or invent it (int)
            raise WeightsError(
                f"tensor {name!r} has dtype {tensor.dtype}, the network is {torch.float32}: convert it first",
                tensor=name,
            )
        if not torch.isfinite(tensor).all():
            raise WeightsError(f"tensor {name!r} contains NaN or Inf", tensor=name)


def metadata_spec(metadata: dict[str, str]) -> RNNSpec | None:
    """The spec a file's header metadata declares, if any (pydantic's ValidationError if malformed)."""
    return RNNSpec.model_validate_json(metadata[SPEC_KEY]) if SPEC_KEY in metadata else None


def network_from_weights(data: bytes, spec: RNNSpec | None = None) -> Network:
    """A network from safetensors bytes; the spec comes from the file's metadata when not given."""
    tensors, metadata = read_safetensors(data)
    spec = spec or metadata_spec(metadata)
    if spec is None:
        raise WeightsError("the file carries no spec in its metadata; pass the spec explicitly")
    check_tensors(spec, tensors)  # before building: a file that does not fit costs no network
    network = build_network(spec)
    network.load_state_dict(tensors)
    return network.eval()


def state_dict_bytes(network: Network) -> bytes:
    """A PyTorch state dict file, for users who load with torch.load(weights_only=True)."""
    buffer = io.BytesIO()
    torch.save({name: t.detach().cpu() for name, t in network.state_dict().items()}, buffer)
    return buffer.getvalue()

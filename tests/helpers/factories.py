"""Tiny specs and weights for the service tests."""

from __future__ import annotations

from warmzoo.models.network import build_network
from warmzoo.models.spec import RNNSpec
from warmzoo.models.weights import weights_bytes


def tiny_spec(**fields: object) -> RNNSpec:
    """A network small enough that building, exporting and checking it takes milliseconds."""
    return RNNSpec.model_validate({"cell": "gru", "input_size": 2, "hidden_size": 4, "output_size": 1, **fields})


def tiny_weights(spec: RNNSpec | None = None, seed: int = 0) -> bytes:
    return weights_bytes(build_network(spec or tiny_spec(), seed=seed))

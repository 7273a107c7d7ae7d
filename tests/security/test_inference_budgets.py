"""What one inference client may cost the server (issue 14, points 2 and 3), over a real app with
auth on: one request's tensors are bounded in bytes from the spec's widths before any is built,
a streaming sequence belongs to whoever started it (an API key, or an anonymous client's
address), and each owner's open sequences are bounded in count and state bytes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests.helpers.factories import tiny_spec, tiny_weights
from warmzoo.service.api.app import create_app
from warmzoo.service.core.config import Settings
from warmzoo.service.registry.db import make_engine, session_factory, upgrade_database
from warmzoo.service.security import auth
from warmzoo.service.security.budgets import inference_bytes

SPEC = tiny_spec()  # gru, input 2, hidden 4, output 1: 16 bytes of state per sequence of a batch
BUDGET = inference_bytes(SPEC, batch=100, steps=10)  # one request's tensors
PER_OWNER_BYTES = 100 * 16  # the state of batch 100


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        auth="on",
        rate_limit_per_s=0,
        max_inference_bytes=BUDGET,
        max_sequences_per_owner=2,
        max_sequence_bytes_per_owner=PER_OWNER_BYTES,
        sequence_idle_timeout_s=60,
    )


@pytest.fixture
def keys(settings: Settings) -> dict[str, str]:
    upgrade_database(settings)
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        made = {owner: auth.create_key(session, owner, "write")[1] for owner in ("alice", "bob")}
    engine.dispose()
    return made


@pytest.fixture
def api(settings: Settings, keys: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        files = {"weights": ("w.safetensors", tiny_weights(SPEC))}
        published = client.post("/v1/models/tiny/versions", files=files, headers=as_(keys["alice"]))
        assert published.status_code == 201, published.text
        yield client


def as_(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def infer(
    api: TestClient, x: np.ndarray, key: str | None = None, data: list[float] | None = None, **parameters: Any
) -> Response:
    body: dict[str, Any] = {
        "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": data or x.ravel().tolist()}]
    }
    if parameters:
        body["parameters"] = parameters
    return api.post("/v2/models/tiny/versions/1/infer", json=body, headers=as_(key))


def chunk(batch: int, steps: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, steps, SPEC.input_size)).astype(np.float32)


def error(response: Response, status: int, code: str, field: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["code"], body["field"]) == (code, field), body
    return body


def test_one_request_is_bounded_in_tensor_bytes_before_its_data_is_read(api: TestClient) -> None:
    """The reproduction: `[100000, 1, 1]` to a 1 x 512 GRU is 195 KiB of JSON but 410 MB of state."""
    assert infer(api, chunk(100, 10)).status_code == 200  # exactly the budget
    wide = chunk(101, 10)
    body = error(infer(api, wide), 400, "limit_exceeded", "inputs[0].shape")
    assert f"{inference_bytes(SPEC, 101, 10)} bytes" in body["error"] and "WARMZOO_MAX_INFERENCE_BYTES" in body["error"]
    # refused on its shape alone: data that would be refused for its length is never looked at
    body = error(infer(api, wide, data=[0.0]), 400, "limit_exceeded", "inputs[0].shape")


def test_a_sequence_belongs_to_whoever_started_it(api: TestClient, keys: dict[str, str]) -> None:
    alice, bob = keys["alice"], keys["bob"]
    first, second = chunk(2, 3, seed=1), chunk(2, 3, seed=2)
    assert infer(api, first, alice, sequence_id=7, sequence_start=True).status_code == 200
    never = error(infer(api, second, sequence_id=8), 400, "unknown_sequence", "parameters.sequence_id")
    for stranger in (None, bob):  # the same answer as for a sequence that never existed
        for parameters in ({}, {"sequence_end": True}):
            body = error(infer(api, second, stranger, sequence_id=7, **parameters), 400, "unknown_sequence", "parameters.sequence_id")
            assert body["error"] == never["error"].replace("8", "7")
    # another owner's sequence of the same id is a sequence of its own, not a takeover
    assert infer(api, chunk(2, 3, seed=3), bob, sequence_id=7, sequence_start=True).status_code == 200
    continued = infer(api, second, alice, sequence_id=7, sequence_end=True)
    whole = infer(api, np.concatenate([first, second], axis=1))
    assert continued.status_code == whole.status_code == 200
    outputs = {o["name"]: o["data"] for o in continued.json()["outputs"]}
    expected = {o["name"]: o["data"] for o in whole.json()["outputs"]}
    np.testing.assert_allclose(outputs["state"], expected["state"], atol=1e-5)


def test_open_sequences_are_bounded_per_owner_in_count_and_bytes(api: TestClient, keys: dict[str, str]) -> None:
    alice, bob = keys["alice"], keys["bob"]
    x = chunk(10, 1)
    for sequence_id in (1, 2):
        assert infer(api, x, alice, sequence_id=sequence_id, sequence_start=True).status_code == 200
    third = infer(api, x, alice, sequence_id=3, sequence_start=True)
    body = error(third, 429, "too_many_sequences", "parameters.sequence_start")
    assert "limit of 2" in body["error"] and "WARMZOO_MAX_SEQUENCES_PER_OWNER" in body["error"]
    assert int(third.headers["retry-after"]) == 60
    assert infer(api, x, alice, sequence_id=1, sequence_start=True).status_code == 200  # a restart needs no room
    for other in (bob, None):  # the others are not locked out
        assert infer(api, x, other, sequence_id=1, sequence_start=True).status_code == 200
    assert infer(api, x, alice, sequence_id=2, sequence_end=True).status_code == 200
    assert infer(api, x, alice, sequence_id=3, sequence_start=True).status_code == 200  # ending one made room

    # bytes: bob holds the state of batch 10; batch 91 more would pass the state of batch 100
    big = error(infer(api, chunk(91, 1), bob, sequence_id=2, sequence_start=True), 429, "sequence_bytes_exceeded", "parameters.sequence_start")
    assert f"{PER_OWNER_BYTES} bytes" in big["error"] and "WARMZOO_MAX_SEQUENCE_BYTES_PER_OWNER" in big["error"]
    assert infer(api, chunk(90, 1), bob, sequence_id=2, sequence_start=True).status_code == 200

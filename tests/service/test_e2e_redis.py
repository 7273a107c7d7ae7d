"""Two `warmzoo serve` replicas (one data dir, one Redis) serve alternate requests of one sequence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.service.factories import tiny_spec, tiny_weights
from tests.service.test_e2e import outputs, start_server, stop_server, tensor

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def test_replicas_share_streaming_sequences_through_redis(tmp_path: Path, redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    shared = {
        "WARMZOO_SEQUENCE_STORE": "redis",
        "WARMZOO_REDIS_URL": url,
        "WARMZOO_REDIS_KEY_PREFIX": prefix,
        "WARMZOO_WORKERS": "0",
    }
    # One after the other: the second finds the database already migrated.
    first = start_server(tmp_path, "first.log", **shared)
    try:
        second = start_server(tmp_path, "second.log", **shared)
        try:
            spec = tiny_spec(input_size=2, hidden_size=4, num_layers=2)
            published = first.http.post(
                "/v1/models/e2e-redis/versions",
                data={"spec": spec.model_dump_json()},
                files={"weights": ("w.safetensors", tiny_weights(spec))},
            )
            assert published.status_code in (200, 201), published.text
            path = "/v2/models/e2e-redis/versions/1/infer"

            x = np.random.default_rng(0).standard_normal((3, 6, 2)).astype(np.float32)
            whole = outputs(second.http.post(path, json={"inputs": [tensor(x)]}))
            steps = x.shape[1]
            streamed = []
            for t in range(steps):
                replica = (first, second)[t % 2]
                parameters = {"sequence_id": "shared", "sequence_start": t == 0, "sequence_end": t == steps - 1}
                request = {"parameters": parameters, "inputs": [tensor(x[:, t : t + 1])]}
                step = outputs(replica.http.post(path, json=request))
                streamed.append(step["output"])
            np.testing.assert_allclose(np.concatenate(streamed, axis=1), whole["output"], atol=1e-5)
            np.testing.assert_allclose(step["state"], whole["state"], atol=1e-5)

            # Ended on the second replica, so the first no longer knows it either.
            request = {"parameters": {"sequence_id": "shared"}, "inputs": [tensor(x[:, :1])]}
            after_end = first.http.post(path, json=request)
            assert after_end.status_code == 400 and after_end.json()["code"] == "unknown_sequence"
        finally:
            stop_server(second)
    finally:
        stop_server(first)

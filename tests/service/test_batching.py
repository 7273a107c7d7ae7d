"""Dynamic batching: concurrent requests share one ONNX Runtime call and get the answers they would alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from warmzoo.models.onnx import export_onnx
from warmzoo.models.network import build_network
from warmzoo.models.spec import RNNSpec
from warmzoo.service.core.config import Batching, BatchingOverride, Settings
from warmzoo.service.core.errors import WarmzooError
from warmzoo.service.serving.dataplane import InferenceService, ServedModel
from warmzoo.service.serving.oip import InferenceRequest, InferenceResult

SPECS = {
    "gru": RNNSpec(cell="gru", input_size=3, hidden_size=16, num_layers=2, output_size=2),
    "brc": RNNSpec(cell="brc", input_size=3, hidden_size=8, num_layers=2, output_size=2),
}
EXACT = 1e-6
WAIT_US = 300_000  # long enough that requests gathered at once always meet in one batch


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ServedModel]:
    root = tmp_path_factory.mktemp("batching")
    models = {}
    for name, spec in SPECS.items():
        path = root / f"{name}.onnx"
        path.write_bytes(export_onnx(build_network(spec, seed=3).eval())[0])
        models[name] = ServedModel(name=name, version=1, spec=spec, onnx_path=path)
    return models


@pytest.fixture
def service(served: dict[str, ServedModel]) -> Iterator[Callable[[Batching], InferenceService]]:
    """A maker of services with these batching settings, every version loaded (so that requests
    are checked on the event loop); their batchers are stopped afterwards."""
    made: list[InferenceService] = []

    def make(batching: Batching) -> InferenceService:
        inference = InferenceService(lambda name, version: served[name], batching=lambda name, version: batching)
        for name in served:
            inference.metadata(name, "1")
        made.append(inference)
        return inference

    yield make
    for inference in made:
        inference.close()


Maker = Callable[[Batching], InferenceService]


def request(x: np.ndarray, state: np.ndarray | None = None, **parameters: Any) -> InferenceRequest:
    inputs = [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]
    if state is not None:
        inputs.append({"name": "state", "shape": list(state.shape), "datatype": "FP32", "data": state.ravel().tolist()})
    return InferenceRequest.model_validate({"inputs": inputs, "parameters": parameters or None})


def batch_sizes(inference: InferenceService, name: str) -> dict[int, int]:
    """Batch size -> executions of that size, from the version's statistics."""
    (stats,) = inference.statistics(name, "1")
    return {entry["batch_size"]: entry["compute_infer"]["count"] for entry in stats["batch_stats"]}


def assert_same(batched: InferenceResult, alone: InferenceResult) -> None:
    assert list(batched.outputs) == list(alone.outputs)
    for name, array in alone.outputs.items():
        assert batched.outputs[name].shape == array.shape
        np.testing.assert_allclose(batched.outputs[name], array, atol=EXACT, rtol=0)


async def gather(inference: InferenceService, name: str, requests: list[InferenceRequest]) -> list[InferenceResult]:
    return list(await asyncio.gather(*(inference.infer_async(name, "1", r) for r in requests)))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_concurrent_requests_share_a_batch_and_answer_as_alone(service: Maker, name: str) -> None:
    """Lengths 5 and 7 arrive together: two calls, one per length; batches of 2 and 3 sequences
    and a client-sent state among them."""
    spec = SPECS[name]
    rng = np.random.default_rng(0)

    def x(batch: int, steps: int) -> np.ndarray:
        return rng.normal(size=(batch, steps, spec.input_size)).astype(np.float32)

    state = rng.normal(size=(spec.num_layers, 2, spec.state_size)).astype(np.float32)
    requests = [request(x(2, 5)), request(x(1, 7)), request(x(1, 5)), request(x(2, 5), state), request(x(3, 7))]
    batched_service = service(Batching(max_queue_delay_us=WAIT_US))
    batched = asyncio.run(gather(batched_service, name, requests))
    assert batch_sizes(batched_service, name) == {5: 1, 4: 1}  # 2 + 1 + 2 of length 5, 1 + 3 of length 7

    alone_service = service(Batching(enabled=False))
    for one, answer in zip(requests, batched, strict=True):
        assert_same(answer, alone_service.infer(name, "1", one))
    assert batch_sizes(alone_service, name) == {1: 2, 2: 2, 3: 1}


def test_batches_hold_at_most_max_batch_size(service: Maker) -> None:
    inference = service(Batching(max_batch_size=4, max_queue_delay_us=WAIT_US))
    x = np.zeros((1, 3, 3), np.float32)
    big = np.zeros((6, 3, 3), np.float32)  # above the limit: runs, alone
    asyncio.run(gather(inference, "gru", [request(x)] * 5 + [request(big)]))
    assert batch_sizes(inference, "gru") == {1: 1, 4: 1, 6: 1}


def test_steps_of_different_sequences_share_a_batch_each_with_its_state(service: Maker) -> None:
    spec = SPECS["gru"]
    rng = np.random.default_rng(1)
    streams = {f"s{k}": rng.normal(size=(1 + k % 2, 4, spec.input_size)).astype(np.float32) for k in range(3)}

    async def stream(inference: InferenceService) -> dict[str, list[InferenceResult]]:
        answers: dict[str, list[InferenceResult]] = {key: [] for key in streams}
        for t in range(4):
            steps = [
                request(x[:, t : t + 1], sequence_id=key, sequence_start=t == 0, sequence_end=t == 3)
                for key, x in streams.items()
            ]
            for key, answer in zip(streams, await gather(inference, "gru", steps), strict=True):
                answers[key].append(answer)
        return answers

    batched_service = service(Batching(max_queue_delay_us=WAIT_US))
    batched = asyncio.run(stream(batched_service))
    assert batch_sizes(batched_service, "gru") == {4: 4}  # each step: the three sequences (1 + 2 + 1 rows) at once
    alone_service = service(Batching(enabled=False))
    alone = asyncio.run(stream(alone_service))
    for key in streams:
        for got, expected in zip(batched[key], alone[key], strict=True):
            assert_same(got, expected)
    whole = alone_service.infer("gru", "1", request(streams["s1"]))
    np.testing.assert_allclose(batched["s1"][-1].outputs["state"], whole.outputs["state"], atol=1e-5)
    assert len(batched_service.sequences) == 0  # type: ignore[arg-type]


def test_statistics_count_requests_queues_and_batches(service: Maker) -> None:
    inference = service(Batching(max_queue_delay_us=WAIT_US))
    x = np.zeros((1, 2, 3), np.float32)
    asyncio.run(gather(inference, "brc", [request(x), request(x)]))
    with pytest.raises(WarmzooError):
        inference.infer("brc", "1", request(np.zeros((1, 2, 4), np.float32)))  # wrong input size
    (stats,) = inference.statistics("brc", None)
    counts = {key: value["count"] for key, value in stats["inference_stats"].items()}
    assert counts == {
        "success": 2, "fail": 1, "queue": 2, "compute_input": 2, "compute_infer": 2, "compute_output": 2,
        "cache_hit": 0, "cache_miss": 0,
    }  # fmt: skip
    assert (stats["inference_count"], stats["execution_count"]) == (2, 1)
    assert stats["inference_stats"]["queue"]["ns"] > 0 and stats["last_inference"] > 0
    assert stats["inference_stats"]["success"]["ns"] >= stats["inference_stats"]["compute_infer"]["ns"]
    every = inference.statistics(None, None)  # every loaded version, as Triton lists them
    successes = [(entry["name"], entry["inference_stats"]["success"]["count"]) for entry in every]
    assert successes == [("brc", 2), ("gru", 0)]


def test_batching_settings_per_model_and_version() -> None:
    settings = Settings(
        max_batch_size=32,
        model_batching={"a": BatchingOverride(max_batch_size=8, instances=1), "a/2": BatchingOverride(enabled=False)},
    )
    assert settings.batching_for("b", 1) == Batching(max_batch_size=32)
    assert settings.batching_for("a", 1) == Batching(max_batch_size=8, instances=1)
    assert settings.batching_for("a", 2) == Batching(enabled=False, max_batch_size=8, instances=1)


def test_model_batching_reads_json_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WARMZOO_MODEL_BATCHING", '{"a/3": {"max_queue_delay_us": 500}}')
    monkeypatch.setenv("WARMZOO_BATCHING", "false")
    settings = Settings(data_dir=tmp_path)
    assert settings.batching_for("a", 3) == Batching(enabled=False, max_queue_delay_us=500)


def test_closing_the_service_stops_its_batchers(service: Maker) -> None:
    def batcher_threads() -> int:
        return sum(thread.name == "warmzoo-batcher" for thread in threading.enumerate())

    before = batcher_threads()
    inference = service(Batching(instances=2))
    asyncio.run(gather(inference, "gru", [request(np.zeros((1, 2, 3), np.float32))] * 4))
    assert batcher_threads() > before
    inference.close()
    for thread in threading.enumerate():
        if thread.name == "warmzoo-batcher":
            thread.join(timeout=5)
    assert batcher_threads() == before

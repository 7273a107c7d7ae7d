"""`/v1/warmups`, `/v1/jobs`, `/v1/datasets` and the measure/export endpoints over HTTP (in process)."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save as save_safetensors

from tests.helpers.payloads import warmup
from warmzoo.service.api.app import create_app
from warmzoo.service.core.config import Settings
from warmzoo.service.jobs.worker import Worker

# HTTP shapes do not depend on the database: test_jobs.py covers both backends.
pytestmark = pytest.mark.parametrize("settings", ["sqlite"], indirect=True)


@pytest.fixture
def job_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"vaa_steps": 20, "vaa_repeats": 1, "max_hidden_size": 64, "max_seq_length": 500})


@pytest.fixture
def api(job_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(job_settings)) as client:
        yield client


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def test_submit_returns_202_with_the_job_and_its_location(api: TestClient) -> None:
    answer = api.post("/v1/warmups", json=warmup())
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert answer.headers["location"] == f"/v1/jobs/{job['id']}"
    assert (job["kind"], job["status"], job["result"], job["error"]) == ("warmup", "queued", None, None)
    assert job["progress"] | {"phases": []} == {
        "phase": None, "phases": [], "step": 0, "total": 2, "vaa_star": None, "vaa_star_curve": []
    }  # fmt: skip
    assert job["priority"] == 0 and job["queue"]["position"] == 1  # nothing ahead of it
    assert job["request"]["warmup"]["learning_rate"] == 0.01 and job["request"]["seed"] == 0  # defaults filled in
    assert api.get(answer.headers["location"]).json()["id"] == job["id"]


def test_idempotent_retry(api: TestClient) -> None:
    first = api.post("/v1/warmups", json=warmup(), headers={"Idempotency-Key": "abc"})
    again = api.post("/v1/warmups", json=warmup(), headers={"Idempotency-Key": "abc"})
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = api.post("/v1/warmups", json=warmup(seed=5), headers={"Idempotency-Key": "abc"})
    assert other.status_code == 409 and other.json()["field"] == "Idempotency-Key"
    assert api.get("/v1/jobs").json()["total"] == 1


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"spec": {"cell": "rnn", "input_size": 1, "hidden_size": 4}}, 422, "spec.cell"),
        ({"spec": {"cell": "gru", "input_size": 1, "hidden_size": 65}}, 422, "spec.hidden_size"),
        ({"data": {"task": "copy_first_input", "seq_length": 0, "num_samples": 16}}, 422, "data.seq_length"),
        ({"data": {"task": "copy_first_input", "seq_length": 501, "num_samples": 16}}, 422, "data.seq_length"),
        ({"data": {"dataset": "no-such-data-set"}}, 404, "data.dataset"),
        ({"data": {"task": "denoising", "seq_length": 20, "num_samples": 16}}, 422, "spec.input_size"),
        ({"warmup": {"steps": 2, "momentum": 0.9}}, 422, "warmup.momentum"),
        ({"base": {"model": "nobody"}, "spec": None}, 404, "base.model"),
        ({"spec": None}, 422, "spec"),
        ({"name": "Not A Name"}, 422, "name"),
        ({"device": "tpu"}, 422, "device"),
    ],
)
def test_bad_requests_name_the_field_and_create_no_job(
    api: TestClient, change: dict[str, Any], status: int, field: str
) -> None:
    answer = api.post("/v1/warmups", json=warmup(**change))
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field and answer.json()["error"]
    assert api.get("/v1/jobs").json()["total"] == 0


def test_jobs_list_get_and_cancel(api: TestClient) -> None:
    ids = [api.post("/v1/warmups", json=warmup()).json()["id"] for _ in range(2)]
    canceled = api.post(f"/v1/jobs/{ids[0]}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    again = api.post(f"/v1/jobs/{ids[0]}/cancel")
    assert again.status_code == 409 and again.json()["field"] == "id"
    assert [j["id"] for j in api.get("/v1/jobs", params={"status": "queued"}).json()["items"]] == [ids[1]]
    assert api.get("/v1/jobs", params={"status": "done"}).json()["field"] == "status"
    missing = api.get("/v1/jobs/nope")
    assert missing.status_code == 404 and missing.json()["field"] == "id"


def test_events_stream_progress_then_the_final_status(api: TestClient, job_settings: Settings) -> None:
    job_id = api.post("/v1/warmups", json=warmup()).json()["id"]
    Worker(job_settings).run_once()
    with api.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())
    events = [block.split("\n") for block in text.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    assert names == ["progress", "status"]  # the job had already ended: its last state, then the stream closes
    last = json.loads(events[0][1].removeprefix("data: "))
    assert (last["phase"], last["step"], last["total"]) == ("exporting", 1, 1)  # every phase done
    assert json.loads(events[1][1].removeprefix("data: "))["status"] == "succeeded"
    assert api.get("/v1/jobs/nope/events").status_code == 404


def test_measure_and_export_endpoints(api: TestClient, job_settings: Settings) -> None:
    api.post("/v1/warmups", json=warmup())
    Worker(job_settings).run_once()
    measure = api.post("/v1/models/tiny/versions/latest/measure", json={"repeats": 2})
    assert measure.status_code == 202 and measure.json()["request"]["version"] == 1
    export = api.post("/v1/models/tiny/versions/1/export")
    assert export.status_code == 202 and export.json()["request"]["files"] == ["model.onnx", "cell.onnx"]
    missing = api.post("/v1/models/tiny/versions/7/measure")
    assert missing.status_code == 404 and missing.json()["field"] == "version"


def test_dataset_upload_and_use(api: TestClient, job_settings: Settings) -> None:
    data = npy(np.random.default_rng(0).standard_normal((6, 10, 1)).astype(np.float32))
    answer = api.post("/v1/datasets", files={"file": ("noise.npy", data)})
    assert answer.status_code == 201, answer.text
    dataset = answer.json()
    assert dataset["shape"] == [6, 10, 1] and dataset["sha256"] == hashlib.sha256(data).hexdigest()
    assert dataset["name"] == "noise.npy" and answer.headers["location"] == f"/v1/datasets/{dataset['id']}"
    assert api.get(f"/v1/datasets/{dataset['id']}").json() == dataset
    assert api.get("/v1/datasets").json()["total"] == 1
    job = api.post("/v1/warmups", json=warmup(data={"dataset": dataset["id"]})).json()
    Worker(job_settings).run_once()
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (npy(np.array([{"evil": 1}], dtype=object)), "pickle"),
        (npy(np.zeros((4, 5), np.float32)), "shape"),
        (npy(np.ones((4, 5, 1), np.int64)), "dtype"),
        (npy(np.full((4, 5, 1), np.nan, np.float32)), "NaN"),
        (npy(np.zeros((4, 501, 1), np.float32)), "at most 500"),
        (save_safetensors({"a": torch.zeros(2, 3, 1), "b": torch.zeros(2, 3, 1)}), "exactly one tensor"),
        (b"not a tensor file at all", "safetensors"),
    ],
)
def test_bad_datasets_are_refused_and_not_stored(api: TestClient, content: bytes, words: str) -> None:
    answer = api.post("/v1/datasets", files={"file": ("d.npy", content)})
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "file" and words in answer.json()["error"]
    assert api.get("/v1/datasets").json()["total"] == 0


def test_a_compare_job_stores_both_learning_curves_on_the_version(api: TestClient, job_settings: Settings) -> None:
    api.post("/v1/warmups", json=warmup(name="cmp"))
    Worker(job_settings).run_once()
    card_before = api.get("/v1/models/cmp/versions/1/files/README.md").text
    assert api.get("/v1/models/cmp/versions/1/comparisons").json() == []
    body = {"seeds": [0, 1], "steps": 4, "evaluations": 2, "num_train": 32, "num_test": 32}
    answer = api.post("/v1/models/cmp/versions/latest/compare", json=body)
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert (job["kind"], job["request"]["version"], job["progress"]["phases"]) == (
        "compare", 1, ["training_warmed", "training_cold"]
    )
    assert "warmed up from (seed 0)" in job["request"]["cold_init"]  # the very initialisation of the warm-up
    Worker(job_settings).run_once()
    done = api.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    assert set(done["result"]["summary"]) == {"chance_loss", "warmed", "cold"}
    [comparison] = api.get("/v1/models/cmp/versions/1/comparisons").json()
    assert comparison["job_id"] == job["id"] and comparison["config"]["seeds"] == [0, 1]
    for arm in ("warmed", "cold"):
        runs = comparison["result"]["runs"][arm]
        assert [r["seed"] for r in runs] == [0, 1] and [p["step"] for p in runs[0]["history"]] == [0, 2, 4]
    warmed, cold = (comparison["result"]["runs"][arm][0]["history"][0] for arm in ("warmed", "cold"))
    assert warmed["test_loss"] != cold["test_loss"]  # different starting weights, same test data
    card = api.get("/v1/models/cmp/versions/1/files/README.md").text
    assert "## Warmed versus cold" in card and "## Warmed versus cold" not in card_before
    too_many = api.post("/v1/models/cmp/versions/1/compare", json={"seeds": list(range(6))})
    assert too_many.status_code == 422 and too_many.json()["field"] == "seeds"

"""Jobs end to end inside one process, on SQLite and PostgreSQL: submit, claim under a lease,
run with the real models package, publish exactly once, cancel, recover lost workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import torch
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.factories import tiny_spec
from tests.helpers.jobs import job, submit, warmup_body
from warmzoo.models.warmup import WarmupDiverged
from warmzoo.service.api.errors import HTTP_STATUS
from warmzoo.service.core.config import Settings
from warmzoo.service.core.errors import WarmzooError
from warmzoo.service.jobs import lifecycle, queue, runner
from warmzoo.service.jobs.requests import ExportIn, MeasureIn, check_export, check_measure, check_warmup
from warmzoo.service.jobs.starter import seed_starter_catalogue, starter_requests
from warmzoo.service.jobs.worker import Worker
from warmzoo.service.registry.blobs import LocalBlobStore
from warmzoo.service.registry.db import make_engine, session_factory, upgrade_database
from warmzoo.service.registry.registry import Registry
from warmzoo.service.registry.tables import VersionRow, utcnow


@pytest.fixture
def job_settings(settings: Settings) -> Settings:
    """Tiny exact-VAA figures and short leases: jobs take well under a second."""
    return settings.model_copy(update={"vaa_steps": 20, "vaa_repeats": 2, "job_lease_s": 1.0, "worker_poll_s": 0.05})


@pytest.fixture
def sessions(job_settings: Settings) -> Iterator[sessionmaker[Session]]:
    upgrade_database(job_settings)
    engine = make_engine(job_settings.database_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def blobs(job_settings: Settings) -> LocalBlobStore:
    return LocalBlobStore(job_settings.blob_store)


@pytest.fixture
def worker(job_settings: Settings, sessions: sessionmaker[Session], blobs: LocalBlobStore) -> Worker:
    return Worker(job_settings, sessions, blobs)


def run_until_first_step(worker: Worker, sessions: sessionmaker[Session], job_id: str) -> threading.Thread:
    """Run the worker in a thread and return once the job has made its first step."""
    running = threading.Thread(target=worker.run_once)
    running.start()
    deadline = time.monotonic() + 60
    while (job(sessions, job_id).progress or {}).get("step", 0) < 1:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    return running


def version_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(VersionRow)) or 0


def test_a_warmup_job_publishes_a_measured_version(
    worker: Worker, sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings
) -> None:
    job_id = submit(sessions, blobs, job_settings, warmup_body(steps=3))
    queued = job(sessions, job_id)
    assert queued.status == "queued"
    phases = ["measuring_before", "warming_up", "measuring_after", "exporting"]
    assert queued.progress == {
        "phase": None, "phases": phases, "step": 0, "total": 3, "vaa_star": None, "vaa_star_curve": []
    }  # fmt: skip

    assert worker.run_once()
    done = job(sessions, job_id)
    assert done.status == "succeeded", done.error
    assert done.result is not None and (done.result["model"], done.result["version"]) == ("tiny", 1)
    assert done.result["outcome"]["kind"] in ("multistable", "monostable", "lowered")
    assert done.progress is not None and done.progress["phase"] == "exporting" and done.progress["vaa_star"] is not None
    assert [step for step, _ in done.progress["vaa_star_curve"]] == [1, 2, 3]  # every step, however fast
    assert done.progress["vaa_star_curve"][-1][1] == done.progress["vaa_star"]
    assert done.lease_owner is None and done.finished_at is not None and done.attempts == 1
    with sessions() as session:
        version = Registry(session, blobs).resolve("tiny", 1)
        assert len(version.metrics["vaa_star_history"]) == 3
        assert len(version.metrics["vaa_before_estimates"]) == 2 and version.metrics["vaa_steps"] == 20
        assert 0 < version.metrics["vaa_before"] <= 1 and 0 < version.metrics["vaa_after"] <= 1
        assert version.seed == 1 and version.device == "cpu" and version.task == "copy_first_input"
        assert set(version.libraries or {}) >= {"torch", "onnx", "onnxruntime", "warmzoo"}
    assert not worker.run_once()  # the queue is empty


def test_the_progress_curve_stays_small_and_ends_at_the_last_step() -> None:
    curve = [(step, step / 1000) for step in range(1, 100_001)]
    kept = lifecycle.thinned(curve)
    assert len(kept) <= lifecycle.CURVE_POINTS and kept[-1] == curve[-1] and kept[0][0] <= 200
    steps = [step for step, _ in kept]
    assert len({b - a for a, b in zip(steps, steps[1:])}) == 1  # evenly spaced
    assert lifecycle.thinned(curve[:10]) == curve[:10] and lifecycle.thinned([]) == []


def test_a_warmup_from_a_base_records_its_lineage(
    worker: Worker, sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings
) -> None:
    submit(sessions, blobs, job_settings, warmup_body())
    worker.run_once()
    body = warmup_body(name=None, spec=None, base={"model": "tiny"})  # default name: the base's
    job_id = submit(sessions, blobs, job_settings, body)
    assert job(sessions, job_id).request["base"] == {"model": "tiny", "version": 1}  # the alias, resolved
    worker.run_once()
    assert (job(sessions, job_id).result or {}).get("version") == 2
    with sessions() as session:
        version = Registry(session, blobs).resolve("tiny", 2)
        assert version.base is not None and version.base.number == 1


def test_idempotency_key_returns_the_same_job_and_refuses_another_request(
    sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings
) -> None:
    first = submit(sessions, blobs, job_settings, warmup_body(), key="k-1")
    assert submit(sessions, blobs, job_settings, warmup_body(), key="k-1") == first
    with pytest.raises(WarmzooError) as refused:
        submit(sessions, blobs, job_settings, warmup_body(steps=4), key="k-1")
    assert (HTTP_STATUS[refused.value.reason], refused.value.field) == (409, "Idempotency-Key")
    assert submit(sessions, blobs, job_settings, warmup_body()) != first  # no key: a new job


def test_a_job_is_claimed_by_one_worker_only(
    sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings
) -> None:
    job_id = submit(sessions, blobs, job_settings, warmup_body())
    with sessions() as session:
        claimed = queue.claim(session, "host:1:a", 30)
        assert claimed is not None and claimed.id == job_id and claimed.attempts == 1
        assert queue.claim(session, "host:2:b", 30) is None
        assert not queue.heartbeat(session, job_id, "host:2:b", 30)
        assert queue.heartbeat(session, job_id, "host:1:a", 30)


def test_cancel_a_queued_job_at_once_and_refuse_to_cancel_a_finished_one(
    sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings, worker: Worker
) -> None:
    job_id = submit(sessions, blobs, job_settings, warmup_body())
    with sessions() as session:
        assert lifecycle.cancel(session, job_id).status == "canceled"
        assert not worker.run_once()  # nothing left to run
        with pytest.raises(WarmzooError) as refused:
            lifecycle.cancel(session, job_id)
        assert HTTP_STATUS[refused.value.reason] == 409


def test_cancel_a_running_job_stops_it_between_steps(
    sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings, worker: Worker
) -> None:
    job_id = submit(sessions, blobs, job_settings, warmup_body(steps=100_000))
    running = run_until_first_step(worker, sessions, job_id)
    with sessions() as session:
        flagged = lifecycle.cancel(session, job_id)
    assert (flagged.status, flagged.cancel_requested) == ("running", True)
    running.join(timeout=30)
    assert not running.is_alive()
    done = job(sessions, job_id)
    assert done.status == "canceled" and done.progress is not None and done.progress["step"] < 100_000
    assert version_count(sessions) == 0


def test_cancel_reaches_inside_a_long_vaa_roll(
    sessions: sessionmaker[Session],
    blobs: LocalBlobStore,
    job_settings: Settings,
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A roll that never ends on its own (the exact VAA before the warm-up): cancel was once
    read only between estimates and steps; now the job's stop reaches into the roll's chunks."""
    rolling = threading.Event()

    def endless_roll(*args: object, stop: Callable[[], None], **kwargs: object) -> list[float]:
        rolling.set()
        while True:
            stop()
            time.sleep(0.01)

    monkeypatch.setattr(runner, "measure_vaa", endless_roll)
    job_id = submit(sessions, blobs, job_settings, warmup_body())
    running = threading.Thread(target=worker.run_once)
    running.start()
    assert rolling.wait(timeout=60), "the roll never started"
    with sessions() as session:
        lifecycle.cancel(session, job_id)
    running.join(timeout=30)
    assert not running.is_alive() and job(sessions, job_id).status == "canceled"


def test_a_job_past_its_wall_time_limit_fails_naming_the_setting(
    sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings
) -> None:
    limited = job_settings.model_copy(update={"job_max_seconds": 0.5})
    worker = Worker(limited, sessions, LocalBlobStore(limited.blob_store))
    job_id = submit(sessions, blobs, limited, warmup_body(steps=100_000))
    started = time.monotonic()
    assert worker.run_once()
    failed = job(sessions, job_id)
    assert failed.status == "failed" and failed.error is not None, failed.error
    assert failed.error["code"] == "job_time_limit" and "WARMZOO_JOB_MAX_SECONDS" in failed.error["error"]
    assert time.monotonic() - started < 30 and version_count(sessions) == 0


def test_a_worker_shutting_down_returns_its_job_to_the_queue(
    sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings, worker: Worker
) -> None:
    job_id = submit(sessions, blobs, job_settings, warmup_body(steps=100_000))
    running = run_until_first_step(worker, sessions, job_id)
    worker.stopping.set()
    running.join(timeout=30)
    back = job(sessions, job_id)
    assert (back.status, back.attempts, back.lease_owner) == ("queued", 0, None)


def test_an_expired_lease_requeues_the_job_then_fails_it_after_the_last_attempt(
    sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings, worker: Worker
) -> None:
    job_id = submit(sessions, blobs, job_settings, warmup_body())
    later = utcnow() + timedelta(seconds=5)
    with sessions() as session:
        for attempt in range(1, job_settings.job_max_attempts + 1):
            assert queue.claim(session, f"host:{attempt}:dead", lease_s=1) is not None  # then the worker "dies"
            settled = queue.reap(session, now=later)
            expected = "queued" if attempt < job_settings.job_max_attempts else "failed"
            assert settled == [(job_id, expected)]
    failed = job(sessions, job_id)
    assert failed.error is not None and failed.error["code"] == "worker_lost"
    assert failed.attempts == job_settings.job_max_attempts


def test_a_worker_that_lost_its_lease_publishes_nothing(
    sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings, worker: Worker
) -> None:
    """The race behind exactly-once: worker A's lease expires mid-job and B re-runs the job;
    when A reaches its publish, the version and A's success must both be refused."""
    job_id = submit(sessions, blobs, job_settings, warmup_body())
    with sessions() as session:
        claimed = queue.claim(session, "host:1:a", lease_s=0.01)
    assert claimed is not None
    time.sleep(0.05)
    assert worker.run_once()  # B reaps the expired lease, claims the job and publishes it
    assert job(sessions, job_id).attempts == 2 and version_count(sessions) == 1

    class LateWorker:  # A, finishing after all
        settings, blobs = job_settings, LocalBlobStore(job_settings.blob_store)

        def __init__(self) -> None:
            self.sessions = sessions

        def phase(self, name: str, total: int) -> None: ...

        def progress(self, step: int, total: int, vaa_star: float | None = None) -> None: ...

        def should_stop(self) -> bool:
            return False

        def succeed(self, session: Session, result: dict[str, object]) -> None:
            queue.finish(session, job_id, "host:1:a", "succeeded", result=result)

    with pytest.raises(queue.LeaseLost):
        runner.run("warmup", claimed.request, LateWorker())
    assert version_count(sessions) == 1
    assert (job(sessions, job_id).result or {}).get("version") == 1


def test_jobs_of_a_dead_process_are_recovered_on_restart(
    sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings
) -> None:
    job_id = submit(sessions, blobs, job_settings, warmup_body())
    with sessions() as session:
        queue.claim(session, "here:999999999:gone", lease_s=3600)  # no such pid
        assert queue.recover_orphans(session, "elsewhere") == 0
        assert queue.recover_orphans(session, "here") == 1
        assert queue.reap(session) == [(job_id, "queued")]


def test_a_diverged_warmup_fails_with_a_clear_error(
    sessions: sessionmaker[Session],
    blobs: LocalBlobStore,
    job_settings: Settings,
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def diverge(*args: object, **kwargs: object) -> None:
        raise WarmupDiverged("VAA* became NaN at step 0: lower warmup.learning_rate")

    monkeypatch.setattr(runner, "warmup", diverge)
    job_id = submit(sessions, blobs, job_settings, warmup_body())
    worker.run_once()
    failed = job(sessions, job_id)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error["code"] == "warmup_diverged" and "learning_rate" in failed.error["error"]
    assert version_count(sessions) == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_a_missing_gpu_fails_the_job_naming_the_device(
    sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings, worker: Worker
) -> None:
    job_id = submit(sessions, blobs, job_settings, warmup_body(device="cuda"))
    worker.run_once()
    failed = job(sessions, job_id)
    assert failed.status == "failed" and failed.error is not None
    assert (failed.error["code"], failed.error["field"]) == ("device_unavailable", "device")


def test_measure_and_export_jobs(
    sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings, worker: Worker
) -> None:
    submit(sessions, blobs, job_settings, warmup_body())
    worker.run_once()
    with sessions() as session:
        registry = Registry(session, blobs)
        measure = lifecycle.submit(
            session, check_measure("tiny", "latest", MeasureIn(repeats=3), job_settings, registry), job_settings
        )[0]
        export = lifecycle.submit(session, check_export("tiny", "1", ExportIn(), registry), job_settings)[0]
    worker.run_once()
    worker.run_once()
    measured = job(sessions, measure.id)
    assert measured.status == "succeeded", measured.error
    assert measured.result is not None and len(measured.result["vaa_estimates"]) == 3
    assert measured.result["vaa_steps"] == 20 and measured.result["vaa_samples"] == 32
    exported = job(sessions, export.id)
    assert exported.status == "succeeded", exported.error
    assert exported.result is not None and [f["name"] for f in exported.result["files"]] == ["model.onnx", "cell.onnx"]


def test_a_warmup_on_an_uploaded_dataset(
    sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings, worker: Worker
) -> None:
    import io

    import numpy as np

    from warmzoo.service.registry import datasets

    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(0).standard_normal((10, 8, 2)).astype(np.float32))
    with sessions() as session:
        row = datasets.store(session, blobs, job_settings, buffer.getvalue(), "noise", None)
    body = warmup_body(spec=tiny_spec(input_size=2).model_dump(), data={"dataset": row.id})
    job_id = submit(sessions, blobs, job_settings, body)
    worker.run_once()
    done = job(sessions, job_id)
    assert done.status == "succeeded", done.error
    assert done.request["data"] == {"dataset": row.id, "sha256": row.sha256, "shape": [10, 8, 2]}


def test_the_starter_catalogue_is_queued_once_on_an_empty_zoo(
    sessions: sessionmaker[Session], job_settings: Settings
) -> None:
    assert [body.name for body in starter_requests()] == [
        f"starter-{cell}" for cell in ("gru", "lstm", "chrono", "mgu", "brc", "nbrc")
    ]
    assert seed_starter_catalogue(job_settings) == 6
    assert seed_starter_catalogue(job_settings) == 0
    with sessions() as session:
        page = lifecycle.list_jobs(session, limit=100, offset=0, kind="warmup", status="queued")
    assert page.total == 6


def test_a_user_job_submitted_after_the_starters_starts_before_them(
    sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings
) -> None:
    assert seed_starter_catalogue(job_settings) == 6
    mine = submit(sessions, blobs, job_settings, warmup_body())
    with sessions() as session:
        where = lifecycle.standings(session, job_settings)
        assert where[mine].position == 1 and sorted(s.position for s in where.values()) == list(range(1, 8))
        assert (where[mine].starts_in_s, where[mine].ends_in_s) == (0.0, None)  # a worker is free; its pace unknown
        assert all(s.starts_in_s is None for s in where.values() if s.position > 1)  # no estimate, not a made-up one
        first = queue.claim(session, "w", 60)
        assert first is not None and first.id == mine
        second = queue.claim(session, "w", 60)
        assert second is not None and second.request["name"] == "starter-gru"  # then the starters, in order
        assert lifecycle.standings(session, job_settings)[mine].position == 0


def test_list_filters_and_pages(sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings) -> None:
    ids = [submit(sessions, blobs, job_settings, warmup_body()) for _ in range(3)]
    with sessions() as session:
        lifecycle.cancel(session, ids[0])
        assert lifecycle.list_jobs(session, 10, 0, status="canceled").total == 1
        page = lifecycle.list_jobs(session, 2, 0, status="queued")
        assert (page.total, len(page.items)) == (2, 2)
        assert lifecycle.list_jobs(session, 10, 0, kind="export").total == 0


def test_data_checks_name_the_field(
    sessions: sessionmaker[Session], blobs: LocalBlobStore, job_settings: Settings
) -> None:
    cases = {
        "data.seq_length": {"task": "copy_first_input", "num_samples": 4},
        "data.pad": {"task": "copy_first_input", "seq_length": 10, "num_samples": 4, "pad": 3},
        "data": {"task": "digits", "seq_length": 10, "num_samples": 4},  # the task itself refuses
        "spec.input_size": {"task": "denoising", "seq_length": 20, "num_samples": 4},
        "data.task": {"dataset": "abc", "task": "denoising"},
    }
    with sessions() as session:
        for field, data in cases.items():
            with pytest.raises(WarmzooError) as refused:
                check_warmup(warmup_body(data=data), job_settings, Registry(session, blobs))
            assert refused.value.field == field, (data, refused.value.message)

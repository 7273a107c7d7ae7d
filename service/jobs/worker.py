"""A worker: claim a queued job, run it under a heartbeating lease, record how it ended, repeat.

`warmzoo serve` starts a few of these as processes (`warmzoo worker`); each runs one job at
a time. Progress is written to the job row as the job goes, and the cancel flag is read
between two warm-up steps, so the API (another process) sees both through the database.
The Ray executor runs each job it claims through `Worker.execute` too, inside a Ray task.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from warmzoo.service.core.config import Settings
from warmzoo.service.core.errors import WarmzooError
from warmzoo.service.jobs import lifecycle, queue, runner
from warmzoo.service.registry.blobs import BlobStore, open_blob_store
from warmzoo.service.registry.db import make_engine, session_factory
from warmzoo.service.registry.tables import JobRow

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.2  # at most this often a progress write (the last step is always written)
PROGRESS_LOG_EVERY = 10  # a debug `job.progress` log line every this many steps (and at the last)
HEARTBEATS_PER_LEASE = 3  # a lease survives two missed heartbeats


class _Lease:
    """Keeps one job's lease alive from a background thread; `lost` is set if it lapses anyway."""

    def __init__(self, sessions: sessionmaker[Session], job_id: str, owner: str, lease_s: float) -> None:
        self.sessions, self.job_id, self.owner, self.lease_s = sessions, job_id, owner, lease_s
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._done.wait(self.lease_s / HEARTBEATS_PER_LEASE):
            try:
                with self.sessions() as session:
                    alive = queue.heartbeat(session, self.job_id, self.owner, self.lease_s)
            except SQLAlchemyError:  # transient (e.g. a locked database): the lease covers a missed beat
                log.warning("heartbeat of job %s failed; retrying", self.job_id, exc_info=True)
                continue
            if not alive:
                log.warning("job %s: lease lost; stopping it", self.job_id)
                self.lost.set()
                return


class _Attempt:
    """The `runner.JobContext` of one attempt at one job by this worker."""

    def __init__(self, worker: Worker, job: JobRow, lease: _Lease) -> None:
        self.settings, self.sessions, self.blobs = worker.settings, worker.sessions, worker.blobs
        self.worker, self.job_id, self.kind, self.lease = worker, job.id, job.kind, lease
        self._last_write = 0.0
        self._phase: str | None = None
        self._total = 0  # units of the current phase
        self._vaa_star: float | None = None  # the last warm-up step's, kept through the phases after it
        self._curve: list[tuple[int, float]] = []  # every step's VAA*; the progress carries it thinned

    def phase(self, name: str, total: int) -> None:
        self._phase, self._total = name, total
        self._write(0, total)

    def progress(self, step: int, total: int, vaa_star: float | None = None) -> None:
        if step % PROGRESS_LOG_EVERY == 0 or step == total:
            log.debug(
                "job %s: %s step %d of %d",
                self.job_id,
                self._phase,
                step,
                total,
                extra=job_event(
                    "job.progress", self.job_id, self.kind, phase=self._phase, step=step, total=total, vaa_star=vaa_star
                ),
            )
        if vaa_star is not None:
            self._vaa_star = vaa_star
            self._curve.append((step, vaa_star))
        if step < total and time.monotonic() - self._last_write < PROGRESS_INTERVAL_S:
            return
        self._write(step, total)

    def _write(self, step: int, total: int) -> None:
        self._last_write = time.monotonic()
        progress = lifecycle.progress_of(self.kind, self._phase, step, total, self._vaa_star, self._curve)
        with self.sessions() as session:
            queue.report_progress(session, self.job_id, self.worker.owner, progress)

    def cancel_requested(self) -> bool:
        with self.sessions() as session:
            return queue.cancel_requested(session, self.job_id)

    def should_stop(self) -> bool:
        return self.worker.stopping.is_set() or self.lease.lost.is_set() or self.cancel_requested()

    def succeed(self, session: Session, result: dict[str, Any]) -> None:
        done = lifecycle.progress_of(self.kind, self._phase, self._total, self._total, self._vaa_star, self._curve)
        queue.finish(session, self.job_id, self.worker.owner, "succeeded", result=result, progress=done)


class Worker:
    """One worker's loop over the shared jobs table; `stopping` ends it (and its job) early."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session] | None = None,
        blobs: BlobStore | None = None,
        owner: str | None = None,
    ) -> None:
        """`owner`: the lease holder's id when someone else claimed the job (the Ray dispatcher)."""
        self.settings = settings
        self.sessions = sessions or session_factory(make_engine(settings.database_url))
        self.blobs = blobs or open_blob_store(settings.blob_store, s3_endpoint_url=settings.s3_endpoint_url)
        self.owner = owner or queue.owner_id()
        self.stopping = threading.Event()

    def serve(self, parent_pid: int | None = None) -> None:
        """Run jobs until `stopping` is set, or until the parent process (`warmzoo serve`) is gone."""
        log.info("worker %s ready", self.owner)
        while not self.stopping.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                log.warning("worker %s: the server process is gone; exiting", self.owner)
                return
            try:
                busy = self.run_once()
            except SQLAlchemyError:
                log.exception("worker %s: database error; retrying", self.owner)
                busy = False
            if not busy:
                self.stopping.wait(self.settings.worker_poll_s)

    def run_once(self) -> bool:
        """Settle expired leases, then claim and run one job; False when the queue was empty."""
        reap_lost_jobs(self.sessions)
        with self.sessions() as session:
            job = queue.claim(session, self.owner, self.settings.job_lease_s)
        if job is None:
            return False
        self.execute(job)
        return True

    def execute(self, job: JobRow) -> None:
        started = time.monotonic()
        log.info(
            "job %s (%s): attempt %d by %s",
            job.id,
            job.kind,
            job.attempts,
            self.owner,
            extra=job_event("job.claimed", job.id, job.kind, attempt=job.attempts, worker=self.owner),
        )
        with _Lease(self.sessions, job.id, self.owner, self.settings.job_lease_s) as lease:
            attempt = _Attempt(self, job, lease)
            try:
                runner.run(job.kind, job.request, attempt)
                seconds = round(time.monotonic() - started, 3)
                log.info(
                    "job %s succeeded in %.1f s",
                    job.id,
                    seconds,
                    extra=job_event("job.succeeded", job.id, job.kind, attempt=job.attempts, seconds=seconds),
                )
                return
            except runner.JobStopped:
                self._stopped(job, lease, attempt)
                return
            except queue.LeaseLost:
                log.warning(
                    "job %s: lease lost before it could finish; another attempt will run it",
                    job.id,
                    extra=job_event("job.lease_lost", job.id, job.kind, attempt=job.attempts),
                )
                return
            except (runner.JobFailed, WarmzooError) as exc:
                error = exc.body()
            except Exception as exc:  # a bug or a resource limit: the job fails, the worker lives on
                log.exception("job %s failed", job.id)
                error = runner.unexpected_failure(exc).body()
            self._end(job, "failed", error)

    def _stopped(self, job: JobRow, lease: _Lease, attempt: _Attempt) -> None:
        if lease.lost.is_set():
            return
        if attempt.cancel_requested():
            self._end(job, "canceled")
        elif self.stopping.is_set():
            with self.sessions() as session:
                queue.requeue(session, job.id, self.owner)
            log.info(
                "job %s returned to the queue (worker shutting down)",
                job.id,
                extra=job_event("job.requeued", job.id, job.kind, attempt=job.attempts),
            )

    def _end(self, job: JobRow, status: str, error: dict[str, Any] | None = None) -> None:
        with self.sessions() as session:
            try:
                queue.finish(session, job.id, self.owner, status, error=error)
                session.commit()
            except queue.LeaseLost:
                log.warning(
                    "job %s: lease lost; its %s outcome is dropped",
                    job.id,
                    status,
                    extra=job_event("job.lease_lost", job.id, job.kind, attempt=job.attempts),
                )
                return
        log.log(
            logging.WARNING if status == "failed" else logging.INFO,
            "job %s %s%s",
            job.id,
            status,
            f": {error['error']}" if error else "",
            extra=job_event(
                f"job.{status}", job.id, job.kind, attempt=job.attempts, error_code=error and error.get("code")
            ),
        )


def reap_lost_jobs(sessions: sessionmaker[Session]) -> None:
    """Settle the jobs whose lease expired (their worker is gone), logging each; every
    executor's claiming loop calls it before it claims."""
    with sessions() as session:
        for job_id, status in queue.reap(session):
            log.warning(
                "job %s lost its worker; now %s",
                job_id,
                status,
                extra={"event": "job.worker_lost", "job_id": job_id, "status": status},
            )


def job_event(event: str, job_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    """The `extra=` of a job lifecycle log record (see service.logs)."""
    return {"event": event, "job_id": job_id, "kind": kind, **fields}

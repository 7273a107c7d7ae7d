"""The Ray executor: every queued job runs as one Ray task, on one GPU when it runs on CUDA.

The jobs table stays the queue and the record. A dispatcher thread in each `warmzoo serve`
process claims jobs (`jobs.queue`, as an embedded worker does) while this server has fewer
than `ray_max_tasks` on the cluster, and submits each as a task that runs it with the embedded
worker's own code (`Worker.execute`: lease heartbeats, progress, cancel between steps,
exactly-once publish). Ray is only transport: its retries are off, so when a task's worker
process or node dies the dispatcher expires the job's lease and the queue retries the job as a
new attempt (up to `job_max_attempts`).

A claimed job can wait in Ray's scheduler for a free GPU: the dispatcher heartbeats the leases
of all its tasks, so waiting never counts as a lost worker. Cancel: the task sees the flag
between two steps, and the dispatcher `ray.cancel`s the task too, which removes it at once if it
has not started yet.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import ray
from sqlalchemy.orm import Session, sessionmaker

from warmzoo.service.core.config import Settings
from warmzoo.service.core.logs import configure_logging
from warmzoo.service.jobs import queue
from warmzoo.service.jobs.worker import HEARTBEATS_PER_LEASE, Worker, job_event, reap_lost_jobs
from warmzoo.service.registry.blobs import BlobStore, open_blob_store
from warmzoo.service.registry.db import make_engine, session_factory
from warmzoo.service.registry.tables import JobRow

log = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def _runtime(settings_json: str) -> tuple[Settings, sessionmaker[Session], BlobStore]:
    """The settings, database sessions and blob store of this Ray worker process, made once:
    Ray runs many tasks in one worker process, which keeps its connection pool between them."""
    settings = Settings.model_validate_json(settings_json)
    configure_logging(settings.log_level)
    sessions = session_factory(make_engine(settings.database_url))
    return settings, sessions, open_blob_store(settings.blob_store, s3_endpoint_url=settings.s3_endpoint_url)


@ray.remote(max_retries=0)  # a retry is a new attempt of the queue's, never Ray's
def run_job(settings_json: str, job_id: str, owner: str) -> None:
    """Run one job that the dispatcher claimed for `owner`, as an embedded worker runs it."""
    settings, sessions, blobs = _runtime(settings_json)
    with sessions() as session:
        job = session.get(JobRow, job_id)
    if job is None or job.status != "running" or job.lease_owner != owner:
        return  # handed back (or canceled) while this task waited for a worker
    Worker(settings, sessions, blobs, owner=owner).execute(job)


def task_options(job: JobRow, cluster_has_gpus: bool) -> dict[str, Any]:
    """One GPU for a job on `cuda` (or `auto`, on a cluster with GPUs), else one CPU. A GPU task
    gets a fresh worker process, so its GPU memory and CUDA_VISIBLE_DEVICES are its own. A
    `cuda` job on a cluster without GPUs runs on a CPU, where it fails naming the device,
    rather than waiting forever for a GPU."""
    uses_gpu = cluster_has_gpus and job.request.get("device", "cpu") in ("cuda", "auto")
    gpu = {"num_gpus": 1, "max_calls": 1} if uses_gpu else {"num_gpus": 0}
    return {"name": f"warmzoo-{job.kind}-{job.id}", "num_cpus": 1, **gpu}


@dataclass
class _Task:
    ref: ray.ObjectRef
    owner: str
    kind: str
    cancel_sent: bool = False


class RayExecutor:
    """Claims queued jobs and runs each as a Ray task; `stop` hands unfinished ones back."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions = session_factory(make_engine(settings.database_url))
        self._settings_json = settings.model_dump_json()  # what each task gets: this server's settings
        self._tasks: dict[str, _Task] = {}  # job id -> its task, for the jobs this server claimed
        self._last_beat = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._dispatch, name="ray-dispatcher", daemon=True)

    def start(self) -> None:
        ray.init(address=self.settings.ray_address or None, logging_level=logging.WARNING)
        queue.recover_orphaned_jobs(self.sessions)
        self._thread.start()
        log.info("Ray executor started on a cluster with %s", ray.cluster_resources())

    def stop(self) -> None:
        """Hand every unfinished job back to the queue (the attempt does not count), then cancel
        its task: Ray would end the tasks of a disconnected driver anyway."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        with self.sessions() as session:
            for job_id, task in self._tasks.items():
                if queue.requeue(session, job_id, task.owner):
                    log.info(
                        "job %s returned to the queue (server shutting down)",
                        job_id,
                        extra=job_event("job.requeued", job_id, task.kind),
                    )
        for task in self._tasks.values():
            ray.cancel(task.ref)
        self._tasks.clear()
        ray.shutdown()

    def _dispatch(self) -> None:
        while not self._stopping.is_set():
            try:
                reap_lost_jobs(self.sessions)
                self._submit()
                self._tend()
                self._settle(self._finished())
            except Exception:  # the database or the cluster is unreachable: the dispatcher lives on
                log.exception("Ray dispatcher: error; retrying")
                self._stopping.wait(self.settings.worker_poll_s)

    def _capacity(self, resources: dict[str, float]) -> int:
        """Jobs this server keeps on the cluster: `ray_max_tasks`, else its GPUs, else its CPUs."""
        return self.settings.ray_max_tasks or max(1, int(resources.get("GPU") or resources.get("CPU", 1)))

    def _submit(self) -> None:
        resources = ray.cluster_resources()
        while len(self._tasks) < self._capacity(resources):
            owner = queue.owner_id()  # one lease holder per task, so one dead task expires one job
            with self.sessions() as session:
                job = queue.claim(session, owner, self.settings.job_lease_s)
            if job is None:
                return
            try:
                ref = run_job.options(**task_options(job, resources.get("GPU", 0) > 0)).remote(
                    self._settings_json, job.id, owner
                )
            except Exception:
                with self.sessions() as session:
                    queue.requeue(session, job.id, owner)
                raise
            self._tasks[job.id] = _Task(ref, owner, job.kind)

    def _tend(self) -> None:
        """Keep the leases of this server's tasks alive (a task waiting for a GPU has no other
        heartbeat) and cancel the tasks of jobs whose cancel was asked."""
        lease_s = self.settings.job_lease_s
        beat = time.monotonic() - self._last_beat >= lease_s / HEARTBEATS_PER_LEASE
        with self.sessions() as session:
            for job_id, task in self._tasks.items():
                if beat:
                    queue.heartbeat(session, job_id, task.owner, lease_s)
                if not task.cancel_sent and queue.cancel_requested(session, job_id):
                    ray.cancel(task.ref)
                    task.cancel_sent = True
        if beat:
            self._last_beat = time.monotonic()

    def _finished(self) -> list[ray.ObjectRef]:
        """The refs of the tasks that ended, waiting up to worker_poll_s for the first one."""
        refs = [task.ref for task in self._tasks.values()]
        if not refs:
            self._stopping.wait(self.settings.worker_poll_s)
            return []
        ready, _ = ray.wait(refs, num_returns=1, timeout=self.settings.worker_poll_s)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        return ready

    def _settle(self, ready: list[ray.ObjectRef]) -> None:
        """A task that ended without settling its job (its process or node died, or it was
        canceled) leaves the job leased: expire the lease, so that the next reap re-queues the
        job (or cancels it, or fails it after its last attempt)."""
        for job_id, task in list(self._tasks.items()):
            if task.ref not in ready:
                continue
            del self._tasks[job_id]
            try:
                ray.get(task.ref)
            except ray.exceptions.TaskCancelledError:
                pass
            except Exception as exc:
                log.warning(
                    "job %s: its Ray task died (%s); the job goes back to the queue",
                    job_id,
                    type(exc).__name__,
                    extra=job_event("job.worker_lost", job_id, task.kind),
                )
            with self.sessions() as session:
                queue.expire_leases(session, task.owner)

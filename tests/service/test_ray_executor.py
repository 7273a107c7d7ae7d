"""Jobs on a Ray cluster (WARMZOO_EXECUTOR=ray): each job is one Ray task that writes its
progress and outcome to the jobs table; cancel, a killed Ray worker and a task still waiting
for a CPU all end the way the queue says.

The cluster is RAY_ADDRESS when set (CI starts a head, see .ci/run), else the one `ray start`
made on this machine, else a local one that the executor starts in this process. The
worker-death test kills the Ray worker process, so the cluster must have its workers on this
machine. Without Ray these tests are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.jobs import job, submit, warmup_body
from tests.helpers.skips import unavailable
from warmzoo.service.core.config import Settings
from warmzoo.service.jobs import lifecycle
from warmzoo.service.jobs.executors import make_executor
from warmzoo.service.jobs.requests import ExportIn, MeasureIn, check_export, check_measure
from warmzoo.service.registry.blobs import LocalBlobStore
from warmzoo.service.registry.db import make_engine, session_factory, upgrade_database
from warmzoo.service.registry.registry import Registry
from warmzoo.service.registry.tables import JobRow, ModelRow, VersionRow

pytestmark = pytest.mark.ray

HOW_TO_RUN_RAY = (
    "install it with `pip install 'warmzoo[ray]'` (`make install` does); the tests use the cluster of "
    "RAY_ADDRESS (with RAY_AUTH_MODE=token when it has token auth, as after `RAY_AUTH_MODE=token "
    "ray start --head --port=6380 --num-cpus=2`), else start their own"
)
DEADLINE_S = 60.0


class Zoo:
    """The registry and executor shared by this module's tests (one cluster connection)."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings, self.sessions = settings, sessions
        self.blobs = LocalBlobStore(settings.blob_store)

    def warmup(self, name: str, steps: int) -> str:
        return submit(self.sessions, self.blobs, self.settings, warmup_body(steps=steps, name=name))

    def wait(self, job_id: str, done: Callable[[JobRow], bool], what: str) -> JobRow:
        deadline = time.monotonic() + DEADLINE_S
        while not done(row := job(self.sessions, job_id)):
            assert time.monotonic() < deadline, f"job {job_id} never {what}: {row.status} {row.progress}"
            time.sleep(0.05)
        return row

    def ended(self, job_id: str) -> JobRow:
        return self.wait(job_id, lambda row: row.status in ("succeeded", "failed", "canceled"), "ended")

    def stepped(self, job_id: str) -> JobRow:
        return self.wait(job_id, lambda row: (row.progress or {}).get("step", 0) >= 1, "made a step")

    def versions(self, name: str) -> list[int]:
        """The version numbers published under `name` (none when the model does not exist)."""
        with self.sessions() as session:
            query = select(VersionRow.number).join(ModelRow).where(ModelRow.name == name)
            return list(session.scalars(query.order_by(VersionRow.number)))


@pytest.fixture(scope="module")
def ray_module() -> ModuleType:
    """The `ray` package, or a skip (a failure under CI) saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        unavailable(f"Ray is not installed ({exc}); {HOW_TO_RUN_RAY}")
    return ray


@pytest.fixture(scope="module")
def zoo(ray_module: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zoo]:
    """A SQLite zoo whose jobs run on the cluster; tiny exact-VAA figures keep each job short."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        executor="ray",
        ray_address=os.environ.get("RAY_ADDRESS", ""),
        ray_max_tasks=4,
        vaa_steps=20,
        vaa_repeats=1,
        job_lease_s=10.0,
        worker_poll_s=0.05,
    )
    upgrade_database(settings)
    engine = make_engine(settings.database_url)
    executor = make_executor(settings)
    try:
        executor.start()
    except Exception as exc:  # no cluster at RAY_ADDRESS, or a local one cannot start
        unavailable(f"Ray cannot start or connect ({type(exc).__name__}: {exc}); {HOW_TO_RUN_RAY}")
    try:
        yield Zoo(settings, session_factory(engine))
    finally:
        executor.stop()
        engine.dispose()


@pytest.mark.parametrize(
    ("device", "cluster_has_gpus", "gpus"),
    [("cuda", True, 1), ("auto", True, 1), ("cpu", True, 0), ("auto", False, 0), ("cuda", False, 0), (None, True, 0)],
)
def test_a_job_asks_ray_for_a_gpu_only_when_it_runs_on_cuda(
    ray_module: ModuleType, device: str | None, cluster_has_gpus: bool, gpus: int
) -> None:
    """A `cuda` job on a cluster without GPUs asks for a CPU (and fails there, naming the
    device) instead of waiting forever; export jobs have no device and run on a CPU."""
    from warmzoo.service.jobs.executors.ray_cluster import task_options

    kind, request = ("export", {}) if device is None else ("warmup", {"device": device})
    options = task_options(JobRow(id="j", kind=kind, request=request), cluster_has_gpus)
    assert (options["num_gpus"], options["num_cpus"], options.get("max_calls")) == (gpus, 1, 1 if gpus else None)


def test_warmup_measure_and_export_jobs_run_as_ray_tasks(zoo: Zoo) -> None:
    done = zoo.ended(zoo.warmup("on-ray", steps=3))
    assert done.status == "succeeded", done.error
    assert done.result is not None and (done.result["model"], done.result["version"]) == ("on-ray", 1)
    assert (done.attempts, done.lease_owner) == (1, None)
    assert done.progress is not None and (done.progress["phase"], done.progress["step"]) == ("exporting", 1)  # all done
    with zoo.sessions() as session:
        registry = Registry(session, zoo.blobs)
        measure = check_measure("on-ray", "1", MeasureIn(repeats=2), zoo.settings, registry)
        export = check_export("on-ray", "1", ExportIn(files=["cell.onnx"]), registry)
        ids = [lifecycle.submit(session, new, zoo.settings)[0].id for new in (measure, export)]
    measured, exported = (zoo.ended(job_id) for job_id in ids)
    assert measured.status == "succeeded", measured.error
    assert measured.result is not None and len(measured.result["vaa_estimates"]) == 2
    assert exported.status == "succeeded", exported.error
    assert exported.result is not None and [f["name"] for f in exported.result["files"]] == ["cell.onnx"]


def test_cancel_stops_a_running_ray_task(zoo: Zoo) -> None:
    job_id = zoo.warmup("ray-cancel", steps=100_000)
    zoo.stepped(job_id)
    with zoo.sessions() as session:
        lifecycle.cancel(session, job_id)
    done = zoo.ended(job_id)
    assert done.status == "canceled" and done.progress is not None and done.progress["step"] < 100_000
    assert zoo.versions("ray-cancel") == []


def test_cancel_removes_a_ray_task_still_waiting_for_a_cpu(zoo: Zoo, ray_module: ModuleType) -> None:
    """Every CPU of the cluster is reserved, so the job's task cannot start: only `ray.cancel`
    can end it (its cancel flag is read by a running task only)."""
    from ray.util.placement_group import placement_group, remove_placement_group

    cpus = ray_module.cluster_resources()["CPU"]
    everything = placement_group([{"CPU": cpus}])
    ray_module.get(everything.ready(), timeout=DEADLINE_S)
    try:
        job_id = zoo.warmup("ray-waiting", steps=3)
        zoo.wait(job_id, lambda row: row.status == "running", "was claimed")
        with zoo.sessions() as session:
            lifecycle.cancel(session, job_id)
        done = zoo.ended(job_id)
    finally:
        remove_placement_group(everything)
    assert done.status == "canceled" and (done.progress["step"], done.progress["phase"]) == (0, None)  # never started


def test_a_killed_ray_worker_means_one_retry_and_one_version(zoo: Zoo) -> None:
    job_id = zoo.warmup("ray-killed", steps=400)
    zoo.stepped(job_id)
    os.kill(_task_pid(f"warmzoo-warmup-{job_id}"), signal.SIGKILL)
    done = zoo.ended(job_id)
    assert done.status == "succeeded", done.error
    assert done.attempts == 2 and (done.result or {}).get("version") == 1
    assert zoo.versions("ray-killed") == [1]


def _task_pid(task_name: str) -> int:
    """The pid of the local Ray worker process running the task (Ray titles it `ray::<name>`)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(f"ray::{task_name}".encode()):
                return int(cmdline.parent.name)
        except OSError:  # the process ended meanwhile
            continue
    raise AssertionError(f"no local Ray worker runs {task_name}: is the cluster on this machine?")

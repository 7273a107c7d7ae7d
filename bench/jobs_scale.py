"""Warm-up jobs per minute on Ray with 1 and 2 concurrent tasks, and what the Ray path adds
per job over the embedded executor: measured side by side in one run. Asserts nothing.

    .venv/bin/python bench/jobs_scale.py [--jobs 8] [--steps 100] [--rounds 3]

Each configuration gets a fresh SQLite zoo and an executor of its own: one embedded worker
process, then a Ray executor with `ray_max_tasks` 1 and 2 (on RAY_ADDRESS, else on a local
Ray that the executor starts, with one CPU per core). One untimed job per slot first starts
the worker processes; then N jobs are queued at once and timed from submission to the last
one's end. "In job" is the mean time between a job's claim and its end (the jobs table's
started_at and finished_at); "overhead" is the rest of a job's share of the slots' time
(slots x wall / N - in job): queue polling, task start, result hand-back. On Ray, "in job"
also holds the task's scheduling and start, since the dispatcher claims a job before it
submits the task. The configurations take turns, round after round, and each figure is the
median over the rounds (the spread of jobs per minute is printed), so that a neighbour's load
on a shared machine weighs on all of them alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Settings come from the environment, which the embedded worker processes inherit (the Ray
# tasks get the executor's settings); one thread per job, as Ray gives a one-CPU task. The
# queue is polled at the default rate (WARMZOO_WORKER_POLL_S, 1 s) by both executors.
os.environ.update(OMP_NUM_THREADS="1", WARMZOO_VAA_STEPS="20", WARMZOO_VAA_REPEATS="1", WARMZOO_LOG_LEVEL="warning")

from warmzoo.service.core.config import Settings  # noqa: E402
from warmzoo.service.jobs import lifecycle  # noqa: E402  (after the environment it reads)
from warmzoo.service.jobs.executors.embedded import EmbeddedExecutor, Executor  # noqa: E402
from warmzoo.service.jobs.requests import WarmupIn, check_warmup  # noqa: E402
from warmzoo.service.registry.blobs import open_blob_store  # noqa: E402
from warmzoo.service.registry.db import make_engine, session_factory, upgrade_database  # noqa: E402
from warmzoo.service.registry.registry import Registry  # noqa: E402
from warmzoo.service.registry.tables import JobRow  # noqa: E402


@dataclass
class Run:
    slots: int
    wall_s: float
    in_job_s: float
    jobs: int

    @property
    def per_minute(self) -> float:
        return 60 * self.jobs / self.wall_s

    @property
    def per_job_s(self) -> float:
        return self.wall_s / self.jobs

    @property
    def overhead_s(self) -> float:
        """A job's share of the slots' time not spent between its claim and its end."""
        return self.slots * self.per_job_s - self.in_job_s


def body(index: int, steps: int) -> WarmupIn:
    return WarmupIn.model_validate(
        {
            "name": f"bench-{index}",
            "spec": {"cell": "gru", "input_size": 1, "hidden_size": 4, "num_layers": 1},
            "data": {"task": "copy_first_input", "seq_length": 20, "num_samples": 32},
            "warmup": {"steps": steps, "batch_size": 16},
            "seed": index,
            "device": "cpu",
        }
    )


def run_jobs(settings: Settings, first: int, count: int, steps: int) -> list[JobRow]:
    """Queue `count` jobs at once and wait until every one has succeeded."""
    sessions = session_factory(make_engine(settings.database_url))
    blobs = open_blob_store(settings.blob_store)
    with sessions() as session:
        registry = Registry(session, blobs)
        ids = [
            lifecycle.submit(session, check_warmup(body(i, steps), settings, registry), settings)[0].id
            for i in range(first, first + count)
        ]
    while True:
        with sessions() as session:
            rows = [lifecycle.get(session, job_id) for job_id in ids]
        if all(row.status in ("succeeded", "failed", "canceled") for row in rows):
            failed = [row.error for row in rows if row.status != "succeeded"]
            assert not failed, failed
            return rows
        time.sleep(0.02)


def measure(settings: Settings, executor: Executor, slots: int, count: int, steps: int) -> Run:
    upgrade_database(settings)
    executor.start()
    try:
        run_jobs(settings, 0, slots, steps)  # untimed: worker processes start, imports, first connections
        started = time.perf_counter()
        rows = run_jobs(settings, slots, count, steps)
        wall = time.perf_counter() - started
    finally:
        executor.stop()
    in_job = [(row.finished_at - row.started_at).total_seconds() for row in rows]  # type: ignore[operator]
    return Run(slots, wall, statistics.fmean(in_job), count)


def median_run(runs: list[Run]) -> Run:
    """The run of median wall time (rounds: an odd count gives a real run)."""
    return sorted(runs, key=lambda run: run.wall_s)[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8, help="timed jobs per configuration and round")
    parser.add_argument("--steps", type=int, default=100, help="warm-up steps per job")
    parser.add_argument("--rounds", type=int, default=3, help="turns of every configuration")
    args = parser.parse_args()

    from warmzoo.service.jobs.executors.ray_cluster import RayExecutor  # needs the `ray` extra

    configurations = (("embedded, 1 worker", 1), ("ray, 1 task", 1), ("ray, 2 tasks", 2))
    runs: dict[str, list[Run]] = {name: [] for name, _ in configurations}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name, slots in configurations:
                settings = Settings(data_dir=Path(tmp) / f"{round_}-{slots}-{name[:3]}")
                if name.startswith("ray"):
                    settings = settings.model_copy(update={"executor": "ray", "ray_max_tasks": slots})
                    executor: Executor = RayExecutor(settings)
                else:
                    executor = EmbeddedExecutor(settings, slots)
                runs[name].append(measure(settings, executor, slots, args.jobs, args.steps))

    print(f"{args.jobs} warm-up jobs (gru 1 x 4, {args.steps} steps, exact VAA S = 20) per configuration and round")
    print(f"{os.cpu_count()} cores; 1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"median of {args.rounds} rounds")
    print(f"{'configuration':<20} {'jobs/min':>9} {'(range)':>13} {'s/job':>7} {'in job s':>9} {'overhead s':>11}")
    for name, turns in runs.items():
        run = median_run(turns)
        spread = f"{min(t.per_minute for t in turns):.0f}-{max(t.per_minute for t in turns):.0f}"
        print(
            f"{name:<20} {run.per_minute:>9.1f} {spread:>13} {run.per_job_s:>7.2f} {run.in_job_s:>9.2f}"
            f" {run.overhead_s:>11.2f}"
        )
    embedded, ray1, ray2 = (median_run(turns) for turns in runs.values())
    print(f"ray, 2 tasks / ray, 1 task (jobs per minute): {ray2.per_minute / ray1.per_minute:.2f}x")
    print(f"ray, 1 task / embedded (time per job): {ray1.per_job_s / embedded.per_job_s:.2f}x")
    print(f"Ray path overhead per job over embedded: {ray1.per_job_s - embedded.per_job_s:+.2f} s")


if __name__ == "__main__":
    main()

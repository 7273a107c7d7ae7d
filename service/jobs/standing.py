"""Where each unfinished job stands: its place in the queue and when it should start and end.

The estimate replays the queue on the workers: each running job holds a worker for its
remaining time, then the queued jobs start in claim order (priority, then age) on whichever
worker frees first. A job's duration is its size in work units (warm-up steps, VAA
estimates, files) times the seconds per unit of the recent finished jobs of its kind; with
no such job yet there is no estimate (None), never a made-up figure.
"""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

RECENT_JOBS = 20  # finished jobs of a kind whose pace estimates the next ones


@dataclass(frozen=True)
class Pending:
    """An unfinished job as the estimate needs it (`started_at` None: still queued)."""

    id: str
    kind: str
    units: int
    started_at: datetime | None


@dataclass(frozen=True)
class Standing:
    position: int  # 0: running; 1: the next job to start, and so on
    starts_in_s: float | None  # 0 for a running job; None: no recent job of a kind ahead to estimate from
    ends_in_s: float | None
    basis: str  # how the estimate was made, in words


def units(kind: str, request: dict[str, Any]) -> int:
    """A job's size in its kind's work units: what its seconds per unit multiply."""
    if kind == "warmup":
        return max(1, int(request["warmup"]["steps"]))
    if kind == "measure":
        return int(request["repeats"])
    if kind == "export":
        return len(request["files"])
    if kind == "compare":
        return 2 * len(request["seeds"]) * int(request["steps"])
    return 1


def pace(finished: Sequence[tuple[float, int]]) -> float | None:
    """Median seconds per unit over (seconds, units) of finished jobs; None without any."""
    rates = [seconds / max(1, size) for seconds, size in finished if seconds >= 0]
    return statistics.median(rates) if rates else None


def standings(
    running: Sequence[Pending],
    queued: Sequence[Pending],
    paces: dict[str, float | None],
    workers: int,
    now: datetime,
) -> dict[str, Standing]:
    """The standing of every running and queued job; `queued` in claim order, `paces` in
    seconds per unit by kind, `workers` the jobs that run at once (at least the running ones)."""

    def duration(job: Pending) -> float | None:
        rate = paces.get(job.kind)
        return None if rate is None else rate * job.units

    free: list[float] = []  # when each worker frees up, in seconds from now
    unknown = False
    result: dict[str, Standing] = {}
    for job in running:
        total = duration(job)
        elapsed = (now - job.started_at).total_seconds() if job.started_at else 0.0
        left = None if total is None else max(0.0, total - elapsed)
        unknown = unknown or left is None
        free.append(left or 0.0)
        result[job.id] = Standing(0, 0.0, left, _basis(paces))
    free += [0.0] * max(0, workers - len(free))
    heapq.heapify(free)
    for position, job in enumerate(queued, start=1):
        start = heapq.heappop(free)
        took = duration(job)
        known = not unknown
        result[job.id] = Standing(
            position,
            start if known else None,
            start + took if known and took is not None else None,
            _basis(paces),
        )
        unknown = unknown or took is None
        heapq.heappush(free, start + (took or 0.0))
    return result


def _basis(paces: dict[str, float | None]) -> str:
    known = ", ".join(f"{k} {rate:.3g} s per unit" for k, rate in sorted(paces.items()) if rate is not None)
    if not known:
        return "no job has finished yet: no estimate"
    return f"median pace of the last {RECENT_JOBS} finished jobs of each kind ({known})"

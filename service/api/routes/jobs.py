"""`/v1/jobs`: follow, list and cancel jobs; and the measure and export jobs of a version."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
import anyio
from pydantic import BaseModel
from sqlalchemy.orm import Session

from warmzoo.service.api.deps import (
    OwnedJob,
    PaginationDep,
    ReaderDep,
    RegistryDep,
    SessionDep,
    SettingsDep,
    WriterDep,
)
from warmzoo.service.api.errors import error_responses
from warmzoo.service.api.job_schemas import JobOut, JobStatus, QueueOut
from warmzoo.service.api.routing import GuardedRoute
from warmzoo.service.api.schemas import PageOut
from warmzoo.service.jobs import lifecycle
from warmzoo.models.comparison import ComparisonConfig
from warmzoo.service.core.config import Settings
from warmzoo.service.jobs.queue import TERMINAL
from warmzoo.service.jobs.requests import ExportIn, JobKind, MeasureIn, check_compare, check_export, check_measure
from warmzoo.service.jobs.watch import JobWatch
from warmzoo.service.registry.tables import JobRow
from warmzoo.service.security.auth import Principal

router = APIRouter(tags=["jobs"], route_class=GuardedRoute)

QUEUE_EVENT_S = 5.0  # a `queue` event when an estimate moved this much (or the position changed)
KEEPALIVE_S = 15.0  # an SSE comment line after this much silence keeps proxies from closing the stream

JobIdPath = Annotated[str, Path(description="Job id.", max_length=36)]
KeyHeader = Annotated[
    str | None,
    Header(
        alias=lifecycle.KEY_HEADER,
        min_length=1,
        max_length=200,
        pattern=lifecycle.KEY_PATTERN,
        description="Makes a retry of the same request return the same job: 1-200 visible ASCII characters,"
        " one owner's keys apart from another's.",
    ),
]
NamePath = Annotated[str, Path(description="Model name.")]
VersionPath = Annotated[str, Path(description="Version number or alias.", examples=["1", "latest"])]
JOB_CREATED = error_responses(404, 409, 422)


def accepted(
    session: Session, settings: Settings, job: JobRow, created: bool, response: Response, who: Principal
) -> JobOut:
    """202 with the job, its place in the queue and where to follow it; an idempotent replay says
    so in a header."""
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return JobOut.from_row(job, who, lifecycle.standings(session, settings).get(job.id))


@router.get("/jobs", responses=error_responses(422))
def list_jobs(
    session: SessionDep,
    settings: SettingsDep,
    page: PaginationDep,
    who: ReaderDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this state.")] = None,
    kind: Annotated[JobKind | None, Query(description="Only jobs of this kind.")] = None,
) -> PageOut[JobOut]:
    """Jobs, newest first."""
    found = lifecycle.list_jobs(session, page.limit, page.offset, status, kind)
    standings = lifecycle.standings(session, settings)
    return PageOut.of(found, [JobOut.from_row(row, who, standings.get(row.id)) for row in found.items])


@router.get("/jobs/{job_id}", responses=error_responses(404))
def get_job(job_id: JobIdPath, session: SessionDep, settings: SettingsDep, who: ReaderDep) -> JobOut:
    """The job; while queued or running, `queue` says where it stands and when it should start and end."""
    job = lifecycle.get(session, job_id)
    return JobOut.from_row(job, who, lifecycle.standings(session, settings).get(job.id))


@router.post(
    "/jobs/{job_id}/cancel", responses={202: {"model": JobOut}} | error_responses(404, 409), dependencies=[OwnedJob]
)
def cancel_job(job_id: JobIdPath, session: SessionDep, response: Response, who: WriterDep) -> JobOut:
    """A queued job is canceled at once (200); a running one stops within one step (202: follow it)."""
    job = lifecycle.cancel(session, job_id)
    if job.status != "canceled":
        response.status_code = 202
    return JobOut.from_row(job, who)


def _event(name: str, payload: BaseModel) -> str:
    return f"event: {name}\ndata: {payload.model_dump_json()}\n\n"


def _moved(before: QueueOut | None, now: QueueOut | None) -> bool:
    """A new place in the queue, or an estimate off by QUEUE_EVENT_S from the one last sent."""
    if before is None or now is None:
        return before is not now
    if before.position != now.position:
        return True
    return any(
        (a is None) != (b is None) or (a is not None and b is not None and abs(a - b) >= QUEUE_EVENT_S)
        for a, b in ((before.starts_in_s, now.starts_in_s), (before.ends_in_s, now.ends_in_s))
    )


async def _events(
    first: JobRow, rest: AsyncIterator[JobRow], who: Principal, request: Request
) -> AsyncIterator[str]:
    """`queue` events when the job's place or estimated times change, `progress` events when the
    progress moves, `status` events when the state changes; the stream ends after the status
    event of the finished job."""
    progress, state, sent, quiet_since = None, None, None, time.monotonic()
    sessions, settings = request.app.state.sessions, request.app.state.settings

    async def snapshots() -> AsyncIterator[JobRow]:
        yield first
        async for row in rest:
            yield row

    async for row in snapshots():
        where = None
        if row.status not in TERMINAL:
            where = await anyio.to_thread.run_sync(lifecycle.standing_of, sessions, settings, row.id)
        job = JobOut.from_row(row, who, where)
        chunk = ""
        if job.queue is not None and _moved(sent, job.queue):
            sent, chunk = job.queue, chunk + _event("queue", job.queue)
        if job.progress != progress:
            progress, chunk = job.progress, chunk + _event("progress", job.progress)
        if (job.status, job.cancel_requested) != state:
            state, chunk = (job.status, job.cancel_requested), chunk + _event("status", job)
        if not chunk and time.monotonic() - quiet_since > KEEPALIVE_S:
            chunk = ": keep-alive\n\n"
        if chunk:
            quiet_since = time.monotonic()
            yield chunk


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."}}
    | error_responses(404),
)
async def job_events(job_id: JobIdPath, request: Request, who: ReaderDep) -> StreamingResponse:
    """Server-sent events: `queue` (`{position, starts_in_s, ends_in_s, basis}`) while it waits or runs,
    `progress` (`{phase, phases, step, total, vaa_star, vaa_star_curve}`) as the job advances and
    `status` (the whole job) when its state changes; the stream closes once the job has ended.
    An open stream holds no database connection: the job is polled in short sessions, once per
    poll for all the streams of one job."""
    watch: JobWatch = request.app.state.job_watch
    followed = watch.follow(job_id)
    first = await anext(followed)  # a 404 before the stream starts
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_events(first, followed, who, request), media_type="text/event-stream", headers=headers)


@router.post("/models/{name}/versions/{version}/measure", status_code=202, responses=JOB_CREATED, tags=["models"])
def measure_version(
    name: NamePath,
    version: VersionPath,
    registry: RegistryDep,
    settings: SettingsDep,
    who: WriterDep,
    response: Response,
    idempotency_key: KeyHeader = None,
    body: MeasureIn | None = None,
) -> JobOut:
    """Queue a measure job: the exact VAA of the version (n = 32, S = the server's vaa_steps)."""
    new = check_measure(name, version, body or MeasureIn(), settings, registry)
    return accepted(
        registry.session, settings, *lifecycle.submit(registry.session, new, settings, idempotency_key, who), response, who
    )


@router.post("/models/{name}/versions/{version}/export", status_code=202, responses=JOB_CREATED, tags=["models"])
def export_version(
    name: NamePath,
    version: VersionPath,
    registry: RegistryDep,
    settings: SettingsDep,
    who: WriterDep,
    response: Response,
    idempotency_key: KeyHeader = None,
    body: ExportIn | None = None,
) -> JobOut:
    """Queue an export job: produce model.onnx and cell.onnx (checked against PyTorch) ahead of downloads."""
    new = check_export(name, version, body or ExportIn(), registry)
    return accepted(
        registry.session, settings, *lifecycle.submit(registry.session, new, settings, idempotency_key, who), response, who
    )


@router.post("/models/{name}/versions/{version}/compare", status_code=202, responses=JOB_CREATED, tags=["models"])
def compare_version(
    name: NamePath,
    version: VersionPath,
    registry: RegistryDep,
    settings: SettingsDep,
    who: WriterDep,
    response: Response,
    idempotency_key: KeyHeader = None,
    body: ComparisonConfig | None = None,
) -> JobOut:
    """Queue a compare job: train the version's weights and a cold initialisation of its spec alike
    (same seeds, batches and budget) on its task; both learning curves and test losses are stored
    on the version (`GET .../comparisons`) and quoted by its card. The default budget takes a
    minute or two on a CPU."""
    new = check_compare(name, version, body or ComparisonConfig(), registry)
    return accepted(
        registry.session, settings, *lifecycle.submit(registry.session, new, settings, idempotency_key, who), response, who
    )

"""Jobs as the API sees them: queue a checked request (idempotently), read, list, cancel (`jobs.watch` follows).

Workers take it from there through `jobs.queue`; this module never runs a job.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from warmzoo.service.core.config import Settings
from warmzoo.service.core.errors import Reason, WarmzooError
from warmzoo.service.jobs import standing
from warmzoo.service.jobs.queue import TERMINAL, USER_PRIORITY, claim_order
from warmzoo.service.jobs.requests import PHASES, NewJob
from warmzoo.service.registry.registry import Page
from warmzoo.service.registry.tables import ApiKeyRow, JobRow, utcnow
from warmzoo.service.security.auth import Principal

KEY_HEADER = "Idempotency-Key"
KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"  # visible ASCII, as in HTTP header tokens
_KEY_RE = re.compile(KEY_PATTERN)


CURVE_POINTS = 512  # most [step, VAA*] pairs a job's progress carries, however long the warm-up


def progress_of(
    kind: str,
    phase: str | None,
    step: int,
    total: int,
    vaa_star: float | None = None,
    curve: list[tuple[int, float]] | None = None,
) -> dict[str, Any]:
    """A job's progress: `step` of `total` units within `phase` (None while queued), one of the
    kind's `phases`; the VAA* curve of the warm-up so far rides along, thinned."""
    return {
        "phase": phase,
        "phases": list(PHASES.get(kind, ())),
        "step": step,
        "total": total,
        "vaa_star": vaa_star,
        "vaa_star_curve": thinned(curve or []),
    }


def thinned(curve: list[tuple[int, float]], limit: int = CURVE_POINTS) -> list[tuple[int, float]]:
    """At most `limit` points of `curve`, evenly spaced, always ending at its last point: the
    progress of a 100 000-step warm-up stays as small as that of a 500-step one."""
    if not curve:
        return []
    stride = -(-len(curve) // limit)  # ceil
    return curve[len(curve) - 1 :: -stride][::-1]


def _by_key(session: Session, key: str, owner: str | None) -> JobRow | None:
    """The job `owner` submitted with `key`: keys are per owner, so that one owner can neither
    replay nor block another's."""
    scoped = (JobRow.idempotency_scope == (owner or ""), JobRow.idempotency_key == key)
    return session.scalar(select(JobRow).where(*scoped))


def _same_request(job: JobRow, new: NewJob, key: str) -> JobRow:
    if job.kind != new.kind or job.request != new.request:
        raise WarmzooError(
            Reason.CONFLICT,
            f"{KEY_HEADER} {key!r} was already used for your job {job.id} with a different request;"
            " send a new key for a new job",
            field=KEY_HEADER,
            code="idempotency_conflict",
        )
    return job


def _check_active_jobs(session: Session, key_id: str, settings: Settings) -> None:
    """429 once the key has max_active_jobs_per_key jobs queued or running. The count runs in the
    transaction that inserts the job, after a write to the key's row: that write takes the row
    lock on PostgreSQL and the database's write lock on SQLite (the first write of a transaction
    waits for the lock, where a read first would then fail), so that concurrent submissions with
    one key are counted one after the other and the cap is exact."""
    session.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(owner=ApiKeyRow.owner))
    active = session.scalar(
        select(func.count()).select_from(JobRow).where(JobRow.key_id == key_id, JobRow.status.not_in(TERMINAL))
    )
    if (active or 0) >= settings.max_active_jobs_per_key:
        session.rollback()
        raise WarmzooError(
            Reason.TOO_MANY,
            f"API key {key_id} has {active} jobs queued or running, the most this server allows"
            " (setting WARMZOO_MAX_ACTIVE_JOBS_PER_KEY); wait for one to end or cancel one",
            code="too_many_active_jobs",
        )


def submit(
    session: Session,
    new: NewJob,
    settings: Settings,
    idempotency_key: str | None = None,
    by: Principal | None = None,
    priority: int = USER_PRIORITY,
) -> tuple[JobRow, bool]:
    """Queue `new` for `by` (None: the server itself) at `priority`; with a key already used for
    the same request, return that job instead. Returns (job, created)."""
    owner, key_id = (by.owner, by.key_id) if by is not None else (None, None)
    if idempotency_key is not None:
        if not _KEY_RE.fullmatch(idempotency_key):
            raise WarmzooError(Reason.INVALID, f"{KEY_HEADER} must be 1-200 visible ASCII characters", field=KEY_HEADER)
        existing = _by_key(session, idempotency_key, owner)
        if existing is not None:
            return _same_request(existing, new, idempotency_key), False
    if key_id is not None:
        _check_active_jobs(session, key_id, settings)
    job = JobRow(
        id=str(uuid.uuid4()),
        kind=new.kind,
        status="queued",
        priority=priority,
        request=new.request,
        progress=progress_of(new.kind, None, 0, new.total),
        idempotency_key=idempotency_key,
        idempotency_scope=owner or "",
        owner=owner,
        key_id=key_id,
        attempts=0,
        max_attempts=settings.job_max_attempts,
        cancel_requested=False,
    )
    session.add(job)
    try:
        session.commit()
    except IntegrityError:  # the same key, submitted concurrently: the first one wins
        session.rollback()
        existing = _by_key(session, idempotency_key, owner) if idempotency_key else None
        if existing is None:
            raise
        return _same_request(existing, new, idempotency_key or ""), False
    return job, True


def get(session: Session, job_id: str) -> JobRow:
    job = session.get(JobRow, job_id, populate_existing=True)
    if job is None:
        raise WarmzooError(Reason.NOT_FOUND, f"job {job_id!r} not found", field="id", code="job_not_found")
    return job


def list_jobs(
    session: Session, limit: int, offset: int, status: str | None = None, kind: str | None = None
) -> Page[JobRow]:
    """Newest first."""
    conditions: list[ColumnElement[bool]] = []
    if status is not None:
        conditions.append(JobRow.status == status)
    if kind is not None:
        conditions.append(JobRow.kind == kind)
    total = session.scalar(select(func.count()).select_from(JobRow).where(*conditions)) or 0
    newest_first = select(JobRow).where(*conditions).order_by(JobRow.created_at.desc(), JobRow.id)
    return Page(list(session.scalars(newest_first.limit(limit).offset(offset))), total, limit, offset)


def standings(session: Session, settings: Settings) -> dict[str, standing.Standing]:
    """Queue position and estimated start and end of every queued and running job (see jobs.standing)."""
    columns = (JobRow.id, JobRow.kind, JobRow.request, JobRow.started_at)
    running = session.execute(select(*columns).where(JobRow.status == "running").order_by(JobRow.started_at)).all()
    queued = session.execute(select(*columns).where(JobRow.status == "queued").order_by(*claim_order())).all()
    paces: dict[str, float | None] = {}
    for kind in {row.kind for row in (*running, *queued)}:
        finished = session.execute(
            select(JobRow.request, JobRow.started_at, JobRow.finished_at)
            .where(JobRow.kind == kind, JobRow.status == "succeeded", JobRow.started_at.is_not(None))
            .order_by(JobRow.finished_at.desc())
            .limit(standing.RECENT_JOBS)
        ).all()
        paces[kind] = standing.pace(
            [((end - start).total_seconds(), standing.units(kind, request)) for request, start, end in finished]
        )

    def pending(rows: Sequence[Row[Any]]) -> list[standing.Pending]:
        return [standing.Pending(r.id, r.kind, standing.units(r.kind, r.request), r.started_at) for r in rows]

    workers = max(settings.workers or 1, len(running))
    return standing.standings(pending(running), pending(queued), paces, workers, utcnow())


def cancel(session: Session, job_id: str) -> JobRow:
    """A queued job is canceled at once; a running one is flagged, and its worker stops it
    between two steps. Canceling a finished job is a conflict."""
    job = get(session, job_id)
    now = utcnow()
    for status, values in (
        ("queued", dict(status="canceled", cancel_requested=True, finished_at=now)),
        ("running", dict(cancel_requested=True)),
    ):
        changed = session.execute(
            update(JobRow).where(JobRow.id == job_id, JobRow.status == status).values(**values)
        ).rowcount  # type: ignore[attr-defined]
        session.commit()
        if changed:
            return get(session, job_id)
    job = get(session, job_id)
    raise WarmzooError(
        Reason.CONFLICT,
        f"job {job_id} is already {job.status}; only queued or running jobs can be canceled",
        field="id",
        code="job_finished",
    )


def standing_of(sessions: sessionmaker[Session], settings: Settings, job_id: str) -> standing.Standing | None:
    """One job's standing, in a short session of its own (for event streams, in a worker thread)."""
    with sessions() as session:
        return standings(session, settings).get(job_id)


def counts(session: Session) -> dict[tuple[str, str], int]:
    """How many jobs are in each (status, kind), read from the jobs table (for `/metrics`)."""
    rows = session.execute(select(JobRow.status, JobRow.kind, func.count()).group_by(JobRow.status, JobRow.kind))
    return {(status, kind): count for status, kind, count in rows}


def oldest_queued_at(session: Session) -> datetime | None:
    """When the job that has waited longest in the queue was created; None for an empty queue."""
    return session.scalar(select(func.min(JobRow.created_at)).where(JobRow.status == "queued"))

"""The jobs table as a work queue: claim under a lease, heartbeat, finish, recover lost jobs.

Every transition is one conditional UPDATE (`... WHERE id = :id AND status = ... AND
lease_owner = ...`) whose row count says whether this caller won the race, so claiming is
atomic on SQLite and PostgreSQL alike, without table locks. A running job belongs to the
worker holding its lease; a worker that stops heartbeating loses it when the lease expires,
and the job goes back to the queue until it has used up `max_attempts`.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session, sessionmaker

from warmzoo.service.registry.tables import JobRow, utcnow

log = logging.getLogger(__name__)

TERMINAL = ("succeeded", "failed", "canceled")
USER_PRIORITY = 0  # jobs that people submit
STARTER_PRIORITY = -10  # the starter catalogue: it never keeps a user's job waiting behind it
CLAIM_CANDIDATES = 8  # queued jobs tried per claim: enough to get past rivals claiming at the same time


class LeaseLost(RuntimeError):
    """This worker no longer owns the job (its lease expired, or the job ended): drop its result."""


def owner_id() -> str:
    """`host:pid:token` of this process: who holds a lease, and enough to tell when it is gone."""
    return f"{owner_prefix(socket.gethostname(), os.getpid())}{uuid.uuid4().hex[:8]}"


def owner_prefix(host: str, pid: int) -> str:
    return f"{host}:{pid}:"


def _transition(
    session: Session, job_id: str, conditions: Iterable[ColumnElement[bool]], values: dict[str, Any]
) -> bool:
    result = session.execute(
        update(JobRow)
        .where(JobRow.id == job_id, *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def _owned(owner: str) -> list[ColumnElement[bool]]:
    return [JobRow.status == "running", JobRow.lease_owner == owner]


def claim_order() -> tuple[ColumnElement[Any], ...]:
    """The order in which queued jobs start: highest priority first, then oldest first."""
    return JobRow.priority.desc(), JobRow.created_at, JobRow.id


def claim(session: Session, owner: str, lease_s: float) -> JobRow | None:
    """Take the next queued job (see `claim_order`) for `owner`, or None when the queue is empty."""
    candidates = session.scalars(
        select(JobRow.id).where(JobRow.status == "queued").order_by(*claim_order()).limit(CLAIM_CANDIDATES)
    ).all()
    session.rollback()  # end the read transaction: on SQLite a reader cannot upgrade to a writer
    for job_id in candidates:
        now = utcnow()
        won = _transition(
            session,
            job_id,
            [JobRow.status == "queued"],
            dict(
                status="running",
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_s),
                attempts=JobRow.attempts + 1,
                started_at=now,
            ),
        )
        session.commit()
        if won:
            return session.get(JobRow, job_id, populate_existing=True)
    return None


def heartbeat(session: Session, job_id: str, owner: str, lease_s: float) -> bool:
    """Extend the lease; False when the job is no longer this worker's."""
    alive = _transition(session, job_id, _owned(owner), dict(lease_expires_at=utcnow() + timedelta(seconds=lease_s)))
    session.commit()
    return alive


def report_progress(session: Session, job_id: str, owner: str, progress: dict[str, Any]) -> bool:
    alive = _transition(session, job_id, _owned(owner), dict(progress=progress))
    session.commit()
    return alive


def cancel_requested(session: Session, job_id: str) -> bool:
    flag = session.scalar(select(JobRow.cancel_requested).where(JobRow.id == job_id))
    session.rollback()
    return bool(flag)


def finish(
    session: Session,
    job_id: str,
    owner: str,
    status: str,
    *,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    progress: dict[str, Any] | None = None,
) -> None:
    """Record the outcome (and, when given, the final progress) in the caller's transaction (the
    caller commits), so that a result and what it points at (a published version) commit together
    or not at all."""
    values = dict(status=status, result=result, error=error, finished_at=utcnow(), lease_owner=None)
    ended = _transition(
        session,
        job_id,
        _owned(owner),
        values | dict(lease_expires_at=None) | ({"progress": progress} if progress is not None else {}),
    )
    if not ended:
        raise LeaseLost(f"job {job_id} is no longer leased by {owner}; its outcome is dropped")


def requeue(session: Session, job_id: str, owner: str) -> bool:
    """Give a job back untouched (its worker is shutting down): the attempt does not count."""
    given_back = _transition(
        session,
        job_id,
        _owned(owner),
        dict(status="queued", lease_owner=None, lease_expires_at=None, attempts=JobRow.attempts - 1),
    )
    session.commit()
    return given_back


def expire_leases(session: Session, owner_prefix: str) -> int:
    """End now the leases of workers known to be dead (owner ids start with `host:pid:`)."""
    result = session.execute(
        update(JobRow)
        .where(JobRow.status == "running", JobRow.lease_owner.startswith(owner_prefix, autoescape=True))
        .values(lease_expires_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount  # type: ignore[attr-defined]


def reap(session: Session, now: datetime | None = None) -> list[tuple[str, str]]:
    """Settle running jobs whose lease expired: back to the queue, or failed after the last
    attempt, or canceled when that was asked. Returns (job id, new status) pairs."""
    now = now or utcnow()
    expired = session.execute(
        select(JobRow.id, JobRow.lease_owner, JobRow.attempts, JobRow.max_attempts, JobRow.cancel_requested).where(
            JobRow.status == "running", JobRow.lease_expires_at < now
        )
    ).all()
    session.rollback()
    settled = []
    for job_id, owner, attempts, max_attempts, canceled in expired:
        values: dict[str, Any] = dict(lease_owner=None, lease_expires_at=None)
        if canceled:
            values.update(status="canceled", finished_at=now)
        elif attempts >= max_attempts:
            message = (
                f"the worker running this job stopped responding (its lease expired) on each of {attempts} "
                "attempts; giving up. The worker log says why (out of memory is the usual cause): "
                "submit a smaller job or give the worker more memory"
            )
            values.update(
                status="failed", finished_at=now, error={"error": message, "field": None, "code": "worker_lost"}
            )
        else:
            values.update(status="queued")
        conditions = [JobRow.status == "running", JobRow.lease_owner == owner, JobRow.lease_expires_at < now]
        if _transition(session, job_id, conditions, values):
            settled.append((job_id, values["status"]))
        session.commit()
    return settled


def recover_orphans(session: Session, host: str) -> int:
    """After a crash and restart: expire the leases of this host's workers whose process is gone."""
    owners = session.scalars(
        select(JobRow.lease_owner).where(
            JobRow.status == "running", JobRow.lease_owner.startswith(f"{host}:", autoescape=True)
        )
    ).all()
    session.rollback()
    pids = {owner: owner.split(":")[1] for owner in owners if owner}
    dead = {owner for owner, pid in pids.items() if pid.isdigit() and not _process_alive(int(pid))}
    return sum(expire_leases(session, owner) for owner in dead)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_orphaned_jobs(sessions: sessionmaker[Session]) -> None:
    """At start-up: re-queue the jobs whose lease holder was a process of this host that is gone
    (a previous server that crashed), without waiting for their leases to run out."""
    with sessions() as session:
        recovered = recover_orphans(session, socket.gethostname())
    if recovered:
        log.warning("%d job(s) left running by a previous server will be re-queued", recovered)

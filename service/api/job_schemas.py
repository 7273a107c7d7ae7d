"""JSON bodies of the jobs and data set API (`/v1/jobs`, `/v1/warmups`, `/v1/datasets`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from warmzoo.service.jobs.standing import Standing
from warmzoo.service.registry.tables import DatasetRow, JobRow
from warmzoo.service.security.auth import Principal, owns_job

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]


class ProgressOut(BaseModel):
    phase: str | None = Field(
        None, description="What the job is doing now, one of `phases`; null while queued. Each phase counts its own units."
    )
    phases: list[str] = Field(
        default_factory=list,
        description="The job's phases in order; a warm-up: measuring_before, warming_up, measuring_after, exporting.",
    )
    step: int = Field(
        description="Units of the phase done: steps rolled by the exact VAA, warm-up steps, training steps or files."
    )
    total: int
    vaa_star: float | None = Field(None, description="Mean VAA* over the layers at the last warm-up step.")
    vaa_star_curve: list[tuple[int, float]] = Field(
        default_factory=list,
        description="[step, VAA*] of the warm-up so far: every step, or at most 512 evenly spaced ones "
        "ending at the last (a page that opens mid-job draws the whole curve).",
    )


class QueueOut(BaseModel):
    """Where an unfinished job stands (estimates from the recent finished jobs' pace)."""

    position: int = Field(description="0: running; 1: the next job to start; and so on.")
    starts_in_s: float | None = Field(description="Estimated seconds until it starts; null: no estimate yet.")
    ends_in_s: float | None = Field(description="Estimated seconds until it ends; null: no estimate yet.")
    basis: str = Field(description="How the estimate was made.")

    @classmethod
    def of(cls, standing: Standing | None) -> QueueOut | None:
        if standing is None:
            return None
        return cls(
            position=standing.position,
            starts_in_s=_rounded(standing.starts_in_s),
            ends_in_s=_rounded(standing.ends_in_s),
            basis=standing.basis,
        )


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


class JobOut(BaseModel):
    """A warm-up, measure or export job; poll it, or follow `/v1/jobs/{id}/events`."""

    id: str
    kind: Literal["warmup", "measure", "export", "compare"]
    status: JobStatus
    progress: ProgressOut
    result: dict[str, Any] | None = Field(
        description="On success: `model` and `version` (plus figures for a measure job)."
    )
    error: dict[str, Any] | None = Field(description="On failure: `{error, field, code}`, like the API's error bodies.")
    request: dict[str, Any] = Field(description="The normalised request the job runs (defaults filled in).")
    priority: int = Field(description="Higher starts first; the starter catalogue runs at the lowest.")
    queue: QueueOut | None = Field(None, description="Position and estimated start and end; null once ended.")
    cancel_requested: bool
    attempts: int = Field(description="Times a worker took the job (a worker lost mid-job costs one).")
    max_attempts: int
    worker: str | None = Field(
        description="`host:pid:token` of the worker running it now; shown to the job's owner and to admins only."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: JobRow, viewer: Principal, standing: Standing | None = None) -> JobOut:
        """The job as `viewer` may see it (where it runs, host and process id, is the owner's and
        the admins' business, not every reader's), with its standing while unfinished."""
        return cls(
            id=row.id,
            kind=row.kind,  # type: ignore[arg-type]
            status=row.status,  # type: ignore[arg-type]
            progress=ProgressOut.model_validate(row.progress or {"step": 0, "total": 0}),
            result=row.result,
            error=row.error,
            request=row.request,
            priority=row.priority,
            queue=QueueOut.of(standing),
            cancel_requested=row.cancel_requested,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            worker=row.lease_owner if owns_job(viewer, row) else None,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            updated_at=row.updated_at,
        )


class DatasetOut(BaseModel):
    """An uploaded data set: `shape` is [sequences, time steps, features]."""

    id: str
    name: str
    owner: str | None = Field(description="Who uploaded it (null: uploaded with auth off).")
    shape: list[int]
    sha256: str = Field(description="sha256 of the uploaded file, as sent.")
    size: int = Field(description="Bytes.")
    created_at: datetime

    @classmethod
    def from_row(cls, row: DatasetRow) -> DatasetOut:
        return cls(
            id=row.id,
            name=row.name,
            owner=row.owner,
            shape=row.shape,
            sha256=row.sha256,
            size=row.size,
            created_at=row.created_at,
        )

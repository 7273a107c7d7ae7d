"""JSON bodies of the jobs and data set API (`/v1/jobs`, `/v1/warmups`, `/v1/datasets`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from warmzoo.service.registry.tables import DatasetRow, JobRow
from warmzoo.service.security.auth import Principal, owns_job

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]


class ProgressOut(BaseModel):
    step: int = Field(description="Units done: warm-up steps, VAA estimates or files.")
    total: int
    vaa_star: float | None = Field(None, description="Mean VAA* over the layers at the last warm-up step.")
    vaa_star_curve: list[tuple[int, float]] = Field(
        default_factory=list,
        description="[step, VAA*] of the warm-up so far: every step, or at most 512 evenly spaced ones "
        "ending at the last (a page that opens mid-job draws the whole curve).",
    )


class JobOut(BaseModel):
    """A warm-up, measure or export job; poll it, or follow `/v1/jobs/{id}/events`."""

    id: str
    kind: Literal["warmup", "measure", "export"]
    status: JobStatus
    progress: ProgressOut
    result: dict[str, Any] | None = Field(
        description="On success: `model` and `version` (plus figures for a measure job)."
    )
    error: dict[str, Any] | None = Field(description="On failure: `{error, field, code}`, like the API's error bodies.")
    request: dict[str, Any] = Field(description="The normalised request the job runs (defaults filled in).")
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
    def from_row(cls, row: JobRow, viewer: Principal) -> JobOut:
        """The job as `viewer` may see it: where it runs (host and process id) is the owner's and
        the admins' business, not every reader's."""
        return cls(
            id=row.id,
            kind=row.kind,  # type: ignore[arg-type]
            status=row.status,  # type: ignore[arg-type]
            progress=ProgressOut.model_validate(row.progress or {"step": 0, "total": 0}),
            result=row.result,
            error=row.error,
            request=row.request,
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

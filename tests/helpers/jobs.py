"""Jobs submitted and read in process, without HTTP: for the worker and executor tests."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.payloads import warmup
from warmzoo.service.core.config import Settings
from warmzoo.service.jobs import lifecycle
from warmzoo.service.jobs.requests import WarmupIn, check_warmup
from warmzoo.service.registry.blobs import LocalBlobStore
from warmzoo.service.registry.registry import Registry
from warmzoo.service.registry.tables import JobRow


def warmup_body(steps: int = 3, **fields: object) -> WarmupIn:
    """The checked body of a seeded tiny warm-up (`payloads.warmup`) named "tiny"."""
    return WarmupIn.model_validate({**warmup("tiny", steps), "seed": 1, **fields})


def submit(
    sessions: sessionmaker[Session], blobs: LocalBlobStore, settings: Settings, body: WarmupIn, key: str | None = None
) -> str:
    with sessions() as session:
        new = check_warmup(body, settings, Registry(session, blobs))
        return lifecycle.submit(session, new, settings, key)[0].id


def job(sessions: sessionmaker[Session], job_id: str) -> JobRow:
    with sessions() as session:
        return lifecycle.get(session, job_id)

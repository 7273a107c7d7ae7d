"""`/v1/warmups`: queue a warm-up job; its version is published when the job succeeds."""

from __future__ import annotations

from fastapi import APIRouter, Response

from warmzoo.service.api.deps import RegistryDep, SettingsDep, WriterDep
from warmzoo.service.api.job_schemas import JobOut
from warmzoo.service.api.routing import GuardedRoute
from warmzoo.service.api.routes.jobs import JOB_CREATED, KeyHeader, accepted
from warmzoo.service.jobs import lifecycle
from warmzoo.service.jobs.requests import WarmupIn, check_warmup, owned_warmup

router = APIRouter(prefix="/warmups", tags=["jobs"], route_class=GuardedRoute)


@router.post("", status_code=202, responses=JOB_CREATED)
def submit_warmup(
    body: WarmupIn,
    registry: RegistryDep,
    settings: SettingsDep,
    who: WriterDep,
    response: Response,
    idempotency_key: KeyHeader = None,
) -> JobOut:
    """Check the request (limits, base, data, who owns the target name) and queue it; follow the
    job at the `Location` header. The version is published as the model's owner."""
    new = owned_warmup(who, registry.session, check_warmup(body, settings, registry))
    return accepted(
        registry.session, settings, *lifecycle.submit(registry.session, new, settings, idempotency_key, who), response, who
    )

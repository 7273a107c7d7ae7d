"""The starter catalogue: on the first start of an empty zoo, queue one tiny warm-up per cell
type, so that a new user can browse, download and run something at once.

They are ordinary warm-up jobs (named `starter-<cell>`), submitted with idempotency keys so
that servers starting together on one database queue them once.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from warmzoo.models.spec import CELLS, RNNSpec
from warmzoo.models.warmup import WarmupConfig
from warmzoo.service.core.config import Settings
from warmzoo.service.jobs import lifecycle, queue
from warmzoo.service.jobs.requests import DataIn, WarmupIn, check_warmup
from warmzoo.service.registry.blobs import open_blob_store
from warmzoo.service.registry.db import make_engine, session_factory
from warmzoo.service.registry.registry import Registry
from warmzoo.service.registry.tables import JobRow, ModelRow

log = logging.getLogger(__name__)

# The setting in which the paper's effect is tested (tests/models/test_warmup.py): 2 x 64 on
# copy_first_input, T = 100, the default warm-up. Smaller starters (16 units, 50 steps)
# often stayed monostable: a catalogue of "warmed" networks with VAA = 1/n.
HIDDEN_SIZE = 64
NUM_LAYERS = 2
SEQ_LENGTH = 100
NUM_SAMPLES = 256
# One exact-VAA estimate before and one after (users' jobs take the server's vaa_repeats, 3 by
# default), same n and S: the whole catalogue is browsable within a few minutes on two cores.
STARTER_VAA_REPEATS = 1


def starter_requests() -> list[WarmupIn]:
    return [
        WarmupIn(
            name=f"starter-{cell}",
            spec=RNNSpec(cell=cell, input_size=1, hidden_size=HIDDEN_SIZE, num_layers=NUM_LAYERS),
            data=DataIn(task="copy_first_input", seq_length=SEQ_LENGTH, num_samples=NUM_SAMPLES),
            warmup=WarmupConfig(),
        )
        for cell in CELLS
    ]


def _is_empty(session: Session) -> bool:
    return all(session.scalar(select(row.id).limit(1)) is None for row in (JobRow, ModelRow))


def catalogue_summary(settings: Settings) -> str:
    """What the starter catalogue is doing, in words, for the start-up line of `warmzoo serve`."""
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            models = session.scalar(select(func.count()).select_from(ModelRow)) or 0
            pending = session.execute(
                select(JobRow.status, func.count())
                .where(JobRow.priority == queue.STARTER_PRIORITY, JobRow.status.in_(("queued", "running")))
                .group_by(JobRow.status)
            ).all()
    finally:
        engine.dispose()
    counts = dict(pending)
    if counts:
        warming = sum(counts.values())
        return (
            f"the starter catalogue is warming up {warming} of {len(CELLS)} starter models"
            f" ({models} in the zoo so far; they run at the lowest priority, so your jobs go first)"
        )
    if not settings.starter_catalogue and not models:
        return "the zoo is empty and the starter catalogue is off (WARMZOO_STARTER_CATALOGUE)"
    return f"the zoo holds {models} model(s)"


def seed_starter_catalogue(settings: Settings) -> int:
    """Queue the starter warm-ups if the zoo has never had a model or a job; returns how many."""
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            if not _is_empty(session):
                return 0
            blobs = open_blob_store(settings.blob_store, s3_endpoint_url=settings.s3_endpoint_url)
            registry = Registry(session, blobs)
            queued = 0
            for body in starter_requests():
                new = check_warmup(body, settings, registry, vaa_repeats=STARTER_VAA_REPEATS)
                queued += lifecycle.submit(
                    session, new, settings, idempotency_key=body.name, priority=queue.STARTER_PRIORITY
                )[1]
    finally:
        engine.dispose()
    log.info("queued %d starter warm-up(s) for an empty zoo", queued)
    return queued

"""The starter catalogue: on the first start of an empty zoo, queue one tiny warm-up per cell
type, so that a new user can browse, download and run something at once.

They are ordinary warm-up jobs (named `starter-<cell>`), submitted with idempotency keys so
that servers starting together on one database queue them once.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.spec import CELLS, RNNSpec
from models.warmup import WarmupConfig
from service import jobs
from service.blobs import open_blob_store
from service.config import Settings
from service.db import make_engine, session_factory
from service.job_requests import DataIn, WarmupIn, check_warmup
from service.registry import Registry
from service.tables import JobRow, ModelRow

log = logging.getLogger(__name__)

HIDDEN_SIZE = 16
SEQ_LENGTH = 50
NUM_SAMPLES = 256
STEPS = 50
TWO_LAYERS = ("gru", "lstm")  # the rest have one: the catalogue shows both shapes and stays cheap


def starter_requests() -> list[WarmupIn]:
    return [
        WarmupIn(
            name=f"starter-{cell}",
            spec=RNNSpec(cell=cell, input_size=1, hidden_size=HIDDEN_SIZE, num_layers=2 if cell in TWO_LAYERS else 1),
            data=DataIn(task="copy_first_input", seq_length=SEQ_LENGTH, num_samples=NUM_SAMPLES),
            warmup=WarmupConfig(steps=STEPS),
        )
        for cell in CELLS
    ]


def _is_empty(session: Session) -> bool:
    return all(session.scalar(select(row.id).limit(1)) is None for row in (JobRow, ModelRow))


def seed_starter_catalogue(settings: Settings) -> int:
    """Queue the starter warm-ups if the zoo has never had a model or a job; returns how many."""
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            if not _is_empty(session):
                return 0
            registry = Registry(session, open_blob_store(settings.blob_store))
            queued = 0
            for body in starter_requests():
                new = check_warmup(body, settings, registry)
                queued += jobs.submit(session, new, settings, idempotency_key=body.name)[1]
    finally:
        engine.dispose()
    log.info("queued %d starter warm-up(s) for an empty zoo", queued)
    return queued

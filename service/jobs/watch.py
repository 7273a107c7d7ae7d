"""Following jobs without holding the database: one poller per followed job, shared by its followers.

An open event stream may last as long as its job (hours). Holding a session for it would hold
a pooled connection, and some thirty idle streams would exhaust the pool and stall every other
request. Here each poll reads the job in a session of its own, closed at once, and all the
followers of one job share its poller: 200 streams of one job cost one short query per poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
from sqlalchemy.orm import Session, sessionmaker

from warmzoo.service.jobs import lifecycle
from warmzoo.service.jobs.queue import TERMINAL
from warmzoo.service.registry.tables import JobRow


@dataclass
class _Feed:
    """The latest snapshot of one job, and an event set each time a new one arrives."""

    followers: int = 0
    latest: JobRow | None = None
    failure: BaseException | None = None
    serial: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    poller: asyncio.Task[None] | None = None

    def publish(self, job: JobRow | None, failure: BaseException | None = None) -> None:
        self.latest, self.failure, self.serial = job, failure, self.serial + 1
        arrived, self.arrived = self.arrived, asyncio.Event()
        arrived.set()


class JobWatch:
    """Snapshots of followed jobs every `poll_s` seconds, read in short sessions."""

    def __init__(self, sessions: sessionmaker[Session], poll_s: float) -> None:
        self._sessions = sessions
        self._poll_s = poll_s
        self._feeds: dict[str, _Feed] = {}

    def snapshot(self, job_id: str) -> JobRow:
        """The job now, read in a session that is closed before this returns (404 if there is none)."""
        with self._sessions() as session:
            return lifecycle.get(session, job_id)

    async def follow(self, job_id: str) -> AsyncIterator[JobRow]:
        """The job at each poll until it has ended (the last snapshot is the ended job); raises
        what the poll raised (an unknown job, the database unreachable)."""
        feed = self._feeds.get(job_id)
        if feed is None:
            feed = self._feeds[job_id] = _Feed()
            feed.poller = asyncio.create_task(self._poll(job_id, feed))
        feed.followers += 1
        try:
            seen = 0
            while True:
                if feed.serial == seen:
                    await feed.arrived.wait()
                seen = feed.serial
                job, failure = feed.latest, feed.failure
                if failure is not None:
                    raise failure
                assert job is not None
                yield job
                if job.status in TERMINAL:
                    return
        finally:
            feed.followers -= 1
            if feed.followers == 0:
                if self._feeds.get(job_id) is feed:
                    del self._feeds[job_id]
                if feed.poller is not None:
                    feed.poller.cancel()

    async def _poll(self, job_id: str, feed: _Feed) -> None:
        """Publish a snapshot every poll until the job ends or the poll fails; the feed is then
        dropped, so that a later follower starts afresh."""
        try:
            while True:
                job = await anyio.to_thread.run_sync(self.snapshot, job_id)
                feed.publish(job)
                if job.status in TERMINAL:
                    break
                await anyio.sleep(self._poll_s)
        except Exception as exc:  # noqa: BLE001 - handed to every follower, which re-raises it
            feed.publish(None, exc)
        finally:
            if self._feeds.get(job_id) is feed:
                del self._feeds[job_id]

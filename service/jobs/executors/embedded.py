"""Where queued jobs run. The jobs table is the queue; an executor only supplies workers.

`embedded` (the default): `warmzoo worker` processes beside the API, one per visible GPU
(else one), each pinned to its GPU and restarted when it dies. `ray`: each job is a task on a
Ray cluster (`ray_cluster`, imported only then: Ray is an optional extra).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Protocol

import torch

from warmzoo.service.core.config import Settings
from warmzoo.service.jobs import queue
from warmzoo.service.registry.db import make_engine, session_factory

log = logging.getLogger(__name__)

SUPERVISE_INTERVAL_S = 0.5
STOP_GRACE_S = 15.0  # a stopping worker returns its job to the queue at the next step; then it is killed
QUICK_DEATH_S = 30.0  # a worker dying sooner than this after its start is restarted with a growing delay
MAX_RESTART_DELAY_S = 60.0


class Executor(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def visible_gpus() -> list[str]:
    """The GPU ids a worker may be pinned to, honouring an existing CUDA_VISIBLE_DEVICES."""
    count = torch.cuda.device_count()
    declared = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return declared[:count] if declared else [str(i) for i in range(count)]


class EmbeddedExecutor:
    """`count` worker processes started by this (server) process and kept alive by a supervisor thread."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.gpus = visible_gpus()
        self.host = socket.gethostname()
        self.sessions = session_factory(make_engine(settings.database_url))
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._started: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        queue.recover_orphaned_jobs(self.sessions)
        for slot in range(self.count):
            self._spawn(slot)
        self._thread.start()

    def _spawn(self, slot: int) -> None:
        env = dict(os.environ)
        env.update(
            WARMZOO_DATA_DIR=str(self.settings.data_dir),
            WARMZOO_DATABASE_URL=self.settings.database_url,
            WARMZOO_BLOB_STORE=self.settings.blob_store,
        )
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        command = [sys.executable, "-m", "warmzoo.service.cli.main", "worker", "--parent-pid", str(os.getpid())]
        # Own session: a Ctrl-C in the server's terminal reaches the server, which stops workers gracefully.
        self._procs[slot] = subprocess.Popen(command, env=env, start_new_session=True)
        self._started[slot] = time.monotonic()
        log.info("worker %d started (pid %d)", slot, self._procs[slot].pid)

    def _supervise(self) -> None:
        restart_at: dict[int, float] = {}
        while not self._stopping.wait(SUPERVISE_INTERVAL_S):
            for slot, proc in list(self._procs.items()):
                if slot in restart_at:
                    if time.monotonic() >= restart_at[slot]:
                        del restart_at[slot]
                        self._spawn(slot)
                    continue
                if proc.poll() is None:
                    continue
                lived = time.monotonic() - self._started[slot]
                self._failures[slot] = self._failures.get(slot, 0) + 1 if lived < QUICK_DEATH_S else 0
                delay = min(MAX_RESTART_DELAY_S, 0.5 * 2 ** self._failures[slot])
                log.warning(
                    "worker %d (pid %d) exited with code %s; restarting in %.1f s",
                    slot,
                    proc.pid,
                    proc.returncode,
                    delay,
                )
                self._release(proc.pid)
                restart_at[slot] = time.monotonic() + delay

    def _release(self, pid: int) -> None:
        """A dead worker's job goes back to the queue now rather than when its lease runs out."""
        with self.sessions() as session:
            queue.expire_leases(session, queue.owner_prefix(self.host, pid))

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        procs = list(self._procs.values())
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in %.0f s; killing it", proc.pid, STOP_GRACE_S)
                proc.kill()
                proc.wait()
            self._release(proc.pid)


def worker_count(settings: Settings) -> int:
    """Settings.workers, else one per visible GPU, else one."""
    return settings.workers if settings.workers is not None else max(1, len(visible_gpus()))

"""Dynamic batching with Triton's semantics, and the inference statistics Triton reports.

A `DynamicBatcher` per loaded model version queues the runs of concurrent requests. Each of
its instances (a thread) takes, whenever it is free, the oldest queued run together with every
later one of the same time length, up to `max_batch_size` sequences, runs them as one ONNX
Runtime call over the concatenated batch and hands each request its own rows back. With
`max_queue_delay_us` = 0 nothing waits for a fuller batch: an idle server answers at once, and
batches form from the requests that queue while the instances are busy, which is exactly when
batching pays. A streaming-sequence step is a run like any other, its state part of the batch,
so the steps of different sequences that arrive together share one call, each with its own
state (what Triton's sequence batcher does).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from warmzoo.service.core.config import Batching

Run = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]
"""(input [batch, time, input_size], state [num_layers, batch, state_size]) -> every output by name."""
Outputs = dict[str, np.ndarray]
INPUT_AXIS, STATE_AXIS = 0, 1  # the batch axis of `input` and of `state`


@dataclass
class _Queued:
    x: np.ndarray
    state: np.ndarray
    future: Future[Outputs]
    enqueued_ns: int = field(default_factory=time.perf_counter_ns)


class _Duration:
    """A count and cumulative nanoseconds, as Triton's `StatisticDuration`."""

    __slots__ = ("count", "ns")

    def __init__(self) -> None:
        self.count = 0
        self.ns = 0

    def add(self, ns: int, count: int = 1) -> None:
        self.count += count
        self.ns += ns

    def report(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


class StatisticsRecorder:
    """Triton's statistics of one model version: requests that succeeded or failed (their whole
    time in the data plane), and for each request its time queued and its batch's compute time
    (input assembly, the ONNX Runtime run, output split); per batch size, the executions."""

    PHASES = ("compute_input", "compute_infer", "compute_output")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._durations = {name: _Duration() for name in ("success", "fail", "queue", *self.PHASES)}
        self._batches: dict[int, dict[str, _Duration]] = {}
        self.inference_count = 0  # sequences run (the batch sizes, summed)
        self.execution_count = 0  # ONNX Runtime calls
        self.last_inference_ms = 0

    def request(self, succeeded: bool, ns: int) -> None:
        with self._lock:
            self._durations["success" if succeeded else "fail"].add(ns)

    def execution(self, queued_ns: list[int], batch_size: int, phases_ns: tuple[int, int, int]) -> None:
        """One ONNX Runtime call serving len(queued_ns) requests of `batch_size` sequences in all."""
        with self._lock:
            for ns in queued_ns:
                self._durations["queue"].add(ns)
            per_size = self._batches.setdefault(batch_size, {phase: _Duration() for phase in self.PHASES})
            for phase, ns in zip(self.PHASES, phases_ns, strict=True):
                self._durations[phase].add(ns * len(queued_ns), len(queued_ns))
                per_size[phase].add(ns)
            self.inference_count += batch_size
            self.execution_count += 1
            self.last_inference_ms = time.time_ns() // 1_000_000

    def report(self, name: str, version: int) -> dict[str, Any]:
        """Triton's `model_stats` entry."""
        with self._lock:
            durations = {key: duration.report() for key, duration in self._durations.items()}
            batches = [
                {"batch_size": size, **{phase: duration.report() for phase, duration in phases.items()}}
                for size, phases in sorted(self._batches.items())
            ]
            return {
                "name": name,
                "version": str(version),
                "last_inference": self.last_inference_ms,
                "inference_count": self.inference_count,
                "execution_count": self.execution_count,
                "inference_stats": {**durations, "cache_hit": _Duration().report(), "cache_miss": _Duration().report()},
                "response_stats": {},
                "batch_stats": batches,
                "memory_usage": [],
            }


class DynamicBatcher:
    """The queue and instances of one model version; `run` is its ONNX Runtime call and
    `output_axes` the batch axis of each output (0 unless named)."""

    def __init__(self, run: Run, output_axes: Mapping[str, int], settings: Batching, stats: StatisticsRecorder) -> None:
        self.settings = settings
        self.stats = stats
        self._run = run
        self._axes = output_axes
        self._queue: deque[_Queued] = deque()
        self._ready = threading.Condition()
        self._instances: list[threading.Thread] = []
        self._closed = False

    def submit(self, x: np.ndarray, state: np.ndarray) -> Future[Outputs]:
        """Queue one request's run; the future holds its outputs (its rows of the batch)."""
        queued = _Queued(x, state, Future())
        with self._ready:
            closed = self._closed
            if not closed:
                self._queue.append(queued)
                if len(self._instances) < self.settings.instances:
                    instance = threading.Thread(target=self._serve, name="warmzoo-batcher", daemon=True)
                    self._instances.append(instance)
                    instance.start()
                self._ready.notify()
        if closed:  # the session was evicted after this request found it: the request runs alone, here
            queued.future.set_running_or_notify_cancel()
            self._execute([queued])
        return queued.future

    def run_now(self, x: np.ndarray, state: np.ndarray) -> Outputs:
        """Run one request alone in the calling thread (batching off), counted in the same statistics."""
        queued = _Queued(x, state, Future())
        queued.future.set_running_or_notify_cancel()
        self._execute([queued])
        return queued.future.result()

    def close(self) -> None:
        """Stop the instances once the queue is empty (the session left the cache)."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    return
                batch = self._take()
            if batch:
                self._execute(batch)

    def _take(self) -> list[_Queued]:
        """The oldest run and the later ones of its time length, up to max_batch_size sequences;
        waits up to max_queue_delay_us after the oldest arrived for the batch to fill. Empty when
        another instance took the queue meanwhile."""
        limit = self.settings.max_batch_size
        while True:
            if not self._queue:
                return []
            steps = self._queue[0].x.shape[1]
            size = sum(queued.x.shape[0] for queued in self._queue if queued.x.shape[1] == steps)
            wait_ns = self._queue[0].enqueued_ns + self.settings.max_queue_delay_us * 1000 - time.perf_counter_ns()
            if size >= limit or wait_ns <= 0 or self._closed:
                break
            self._ready.wait(wait_ns / 1e9)
        batch: list[_Queued] = []
        kept: deque[_Queued] = deque()
        size = 0
        for queued in self._queue:
            if queued.x.shape[1] != steps or (batch and size + queued.x.shape[0] > limit):
                kept.append(queued)
            elif queued.future.set_running_or_notify_cancel():  # False: cancelled while queued, dropped
                batch.append(queued)
                size += queued.x.shape[0]
        self._queue = kept
        return batch

    def _execute(self, batch: list[_Queued]) -> None:
        started = time.perf_counter_ns()
        try:
            if len(batch) == 1:
                x, state = batch[0].x, batch[0].state
            else:
                x = np.concatenate([q.x for q in batch], axis=INPUT_AXIS)
                state = np.concatenate([q.state for q in batch], axis=STATE_AXIS)
            assembled = time.perf_counter_ns()
            outputs = self._run(x, state)
            ran = time.perf_counter_ns()
            results, offset = [], 0
            for queued in batch:
                rows = slice(offset, offset + queued.x.shape[0])
                offset = rows.stop
                results.append({name: _rows(array, self._axes.get(name, 0), rows) for name, array in outputs.items()})
            split = time.perf_counter_ns()
        except Exception as exc:  # the checks came before: an ONNX Runtime failure fails its whole batch
            for queued in batch:
                queued.future.set_exception(exc)
            return
        queued_ns = [started - queued.enqueued_ns for queued in batch]
        self.stats.execution(queued_ns, int(x.shape[0]), (assembled - started, ran - assembled, split - ran))
        for queued, result in zip(batch, results, strict=True):
            queued.future.set_result(result)


def _rows(array: np.ndarray, axis: int, rows: slice) -> np.ndarray:
    """A request's rows of a batched output; off the first axis (the `state` a sequence keeps) a
    copy, so that what a sequence holds is its own rows, not a view keeping the whole batch alive."""
    return array[rows] if axis == 0 else np.ascontiguousarray(array[(slice(None),) * axis + (rows,)])

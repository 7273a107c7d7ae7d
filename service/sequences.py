"""Where open streaming sequences keep their recurrent state between requests.

A sequence (Triton's sequence extension) is a run of inference requests that
continue one another: the final state of one request is the initial state of the
next. The data plane reads and writes that state through `SequenceStore`, so the
embedded server can keep it in memory and API replicas can share it in Redis.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class SequenceState:
    """What a sequence carries between requests; the batch size is `state.shape[1]`."""

    version: int  # the model version the sequence started on, and stays on
    state: np.ndarray  # FP32 [num_layers, batch, state_size], never mutated in place


class SequenceStoreFull(Exception):
    """A new sequence cannot start because the store already holds `limit` open ones."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} sequences are open")
        self.limit = limit


class SequenceStore(Protocol):
    """Open sequences by key; an entry expires `idle_timeout_s` after its last `put`."""

    idle_timeout_s: float

    def get(self, key: str) -> SequenceState | None:
        """The sequence's state, or None if it was never started, was deleted or expired."""
        ...

    def put(self, key: str, value: SequenceState) -> None:
        """Store (or replace) a sequence's state and restart its idle timer.

        Raises SequenceStoreFull when `key` is not open and no more sequences fit.
        """
        ...

    def delete(self, key: str) -> None:
        """Forget a sequence; deleting an unknown key is not an error."""
        ...


class MemorySequenceStore:
    """A thread-safe in-process `SequenceStore` with an idle timeout and a bound on open sequences.

    Entries are kept in order of last `put`, so the expired ones are always at the
    front and are swept in amortised O(1) on every write.
    """

    def __init__(
        self,
        *,
        idle_timeout_s: float = 300.0,
        max_sequences: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if idle_timeout_s <= 0 or max_sequences < 1:
            raise ValueError("idle_timeout_s must be > 0 and max_sequences >= 1")
        self.idle_timeout_s = idle_timeout_s
        self.max_sequences = max_sequences
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, SequenceState]] = OrderedDict()  # key -> (deadline, value)

    def get(self, key: str) -> SequenceState | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: str, value: SequenceState) -> None:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            if key not in self._entries and len(self._entries) >= self.max_sequences:
                raise SequenceStoreFull(self.max_sequences)
            self._entries[key] = (now + self.idle_timeout_s, value)
            self._entries.move_to_end(key)

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        """Open sequences, not counting those that expired since the last write."""
        with self._lock:
            self._sweep(self._clock())
            return len(self._entries)

    def _sweep(self, now: float) -> None:
        while self._entries:
            key, (deadline, _) = next(iter(self._entries.items()))
            if deadline > now:
                break
            del self._entries[key]

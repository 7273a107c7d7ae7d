"""The in-memory sequence store: idle timeout, bound on open sequences, thread safety."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.clock import Clock
from tests.helpers.threads import run_in_threads
from warmzoo.service.serving.sequences import MemorySequenceStore, SequenceState, SequenceStoreFull


def state(version: int = 1) -> SequenceState:
    return SequenceState(version, np.zeros((1, 1, 2), dtype=np.float32))


def test_entries_expire_after_idle_timeout_from_their_last_put() -> None:
    clock = Clock()
    store = MemorySequenceStore(idle_timeout_s=10, max_sequences=4, clock=clock)
    store.put("a", state(1))
    store.put("b", state(2))
    clock.now = 8
    store.put("a", state(3))
    clock.now = 12
    assert store.get("b") is None
    kept = store.get("a")
    assert kept is not None and kept.version == 3
    assert len(store) == 1
    clock.now = 18
    assert store.get("a") is None and len(store) == 0


def test_bound_counts_only_open_sequences() -> None:
    clock = Clock()
    store = MemorySequenceStore(idle_timeout_s=10, max_sequences=2, clock=clock)
    store.put("a", state())
    store.put("b", state())
    store.put("a", state(2))  # replacing an open one needs no room
    with pytest.raises(SequenceStoreFull) as full:
        store.put("c", state())
    assert full.value.limit == 2
    store.delete("b")
    store.delete("b")  # deleting twice is fine
    store.put("c", state())
    clock.now = 11
    store.put("d", state())  # the expired ones made room
    assert len(store) == 1


def test_concurrent_puts_never_exceed_the_bound() -> None:
    store = MemorySequenceStore(idle_timeout_s=60, max_sequences=50)
    refused = []

    def worker(k: int) -> None:
        for j in range(20):
            try:
                store.put(f"{k}-{j}", state())
            except SequenceStoreFull:
                refused.append(1)

    run_in_threads(worker, 8)
    assert len(store) == 50 and len(refused) == 8 * 20 - 50


def test_each_owner_is_bounded_in_sequences_and_state_bytes() -> None:
    clock = Clock()
    store = MemorySequenceStore(idle_timeout_s=10, max_sequences=5, max_per_owner=2, max_bytes_per_owner=24, clock=clock)
    store.put("a1", state(), owner="a")  # 8 bytes each
    store.put("a2", state(), owner="a")
    with pytest.raises(SequenceStoreFull) as full:
        store.put("a3", state(), owner="a")
    assert (full.value.limit, full.value.scope) == (2, "owner")
    store.put("b1", state(), owner="b")  # another owner is not locked out
    wide = SequenceState(1, np.zeros((1, 2, 2), dtype=np.float32))  # 16 bytes
    store.put("a2", wide, owner="a")  # replacing 8 by 16 bytes: 24 in all fit
    with pytest.raises(SequenceStoreFull):
        store.put("a2", SequenceState(1, np.zeros((1, 2, 3), dtype=np.float32)), owner="a")  # 8 + 24 do not
    with pytest.raises(SequenceStoreFull) as full:
        store.put("b2", SequenceState(1, np.zeros((1, 2, 4), dtype=np.float32)), owner="b")  # 8 + 32 bytes
    assert (full.value.limit, full.value.scope) == (24, "owner_bytes")
    assert store.held("a") == (2, 24) and store.held("b") == (1, 8) and store.get("a2") == wide
    store.delete("a1", owner="a")
    assert store.held("a") == (1, 16)
    clock.now = 10.0  # everything expires: the owners' budgets are free again
    assert store.held("a") == (0, 0) and len(store) == 0
    store.put("a3", state(), owner="a")

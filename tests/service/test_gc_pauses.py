"""The long-lived objects of a server process leave the garbage collector's full passes."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from warmzoo.service.core.gc_pauses import freeze_long_lived


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_garbage_is_collected_and_the_living_frozen(unfrozen: None) -> None:
    dead, alive = Node(), Node()
    dead.other, alive.other = Node(), Node()
    dead.other.other = dead  # a reference cycle that only the collector can free
    gone = weakref.ref(dead)
    del dead
    frozen_before = gc.get_freeze_count()
    freeze_long_lived()
    assert gone() is None
    assert gc.get_freeze_count() > frozen_before
    assert all(obj is not alive for obj in gc.get_objects())  # out of every generation
    assert alive.other is not None  # and still alive

"""Stopping a long computation from outside, between two chunks of its work.

A `Stop` is called by the loops of the warm-up and of the VAA rolls (each warm-up step, each
layer of a VAA* roll, each chunk of an exact-VAA roll): it returns to go on, or raises to end
the computation there. What it raises is the caller's (a canceled job, a time limit) and
propagates unchanged; `Stopped` is there for callers without an exception of their own.
"""

from __future__ import annotations

from collections.abc import Callable

Stop = Callable[[], None]


class Stopped(Exception):
    """The computation was asked to stop; nothing it produced is complete."""


def never() -> None:
    """The `Stop` of a computation nobody stops."""

"""Keeping the garbage collector's full passes short in a long-running server process.

A full (generation 2) collection walks every object the interpreter tracks. With torch,
ONNX Runtime, SQLAlchemy and FastAPI loaded, a `warmzoo serve` process holds about
320 000 of them, and each full pass stopped every request for 120-200 ms, ten times in
a 15 s load run: that was the p99 of `bench/load.py`. Almost all of those objects live as
long as the process (modules, classes, the ONNX exporter once it has run), so they are
moved out of the collector's sight once they exist; full passes then walk only what came
later (3-6 ms measured).
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Collect the garbage there is now, then exempt every surviving object from later
    collections (`gc.freeze`). Objects still referenced are freed as usual when their last
    reference goes; only a reference cycle among them that becomes garbage later is never
    reclaimed, so call this where what is alive is long-lived: after start-up, after loading
    a model."""
    gc.collect()
    gc.freeze()

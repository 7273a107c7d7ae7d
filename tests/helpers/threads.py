"""Run one function in several threads at once, for the tests of concurrent use."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_in_threads(target: Callable[[int], None], count: int) -> None:
    """Call target(0) .. target(count - 1) in `count` threads, wait for all, and re-raise the
    first exception any of them raised (a thread's exception would otherwise vanish)."""
    errors: list[BaseException] = []

    def guarded(k: int) -> None:
        try:
            target(k)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]

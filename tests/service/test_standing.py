"""Queue standings: claim order on the workers, durations from the recent pace, no made-up figures."""

from __future__ import annotations

from datetime import timedelta

from warmzoo.service.jobs.standing import Pending, pace, standings, units
from warmzoo.service.registry.tables import utcnow


def test_queued_jobs_start_as_workers_free_up() -> None:
    now = utcnow()
    running = [Pending("r", "warmup", 100, now - timedelta(seconds=30))]  # 100 steps at 0.5 s: 20 s left
    queued = [Pending("a", "warmup", 10, None), Pending("b", "measure", 3, None), Pending("c", "warmup", 100, None)]
    where = standings(running, queued, {"warmup": 0.5, "measure": 2.0}, workers=2, now=now)
    assert (where["r"].position, where["r"].ends_in_s) == (0, 20.0)
    assert (where["a"].position, where["a"].starts_in_s, where["a"].ends_in_s) == (1, 0.0, 5.0)  # the idle worker
    assert (where["b"].starts_in_s, where["b"].ends_in_s) == (5.0, 11.0)  # after a, on that worker
    assert (where["c"].starts_in_s, where["c"].ends_in_s) == (11.0, 61.0)
    assert "0.5 s per unit" in where["c"].basis


def test_without_a_pace_there_is_no_estimate() -> None:
    queued = [Pending("a", "export", 2, None), Pending("b", "warmup", 5, None)]
    where = standings([], queued, {"export": None, "warmup": 1.0}, workers=1, now=utcnow())
    assert (where["a"].starts_in_s, where["a"].ends_in_s) == (0.0, None)
    assert (where["b"].position, where["b"].starts_in_s, where["b"].ends_in_s) == (2, None, None)


def test_pace_and_units() -> None:
    assert pace([(10.0, 100), (30.0, 100), (20.0, 100)]) == 0.2 and pace([]) is None
    assert units("warmup", {"warmup": {"steps": 7}}) == 7 and units("export", {"files": ["a", "b"]}) == 2

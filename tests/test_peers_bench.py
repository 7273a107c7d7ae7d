"""The peers race's arithmetic (bench/peers.py): what a cell reports from its client processes' shares."""

import math

import pytest

from bench.peers import Share, summarize


def test_a_cell_merges_its_shares():
    fast = Share(latencies=[0.001] * 98, errors=0, cpu=0.5, first_error=None)
    slow = Share(latencies=[0.1, 0.2], errors=1, cpu=0.25, first_error="ClientResponseError: 503")
    cell = summarize([fast, slow], seconds=2.0)
    assert cell.requests == 100
    assert cell.per_s == pytest.approx(99 / 2.0)  # an error is no answer
    assert cell.p50 == pytest.approx(1.0)
    assert 100 < cell.p99 < 200  # ms, between the two slow requests
    assert cell.errors == 1 and cell.first_error == "ClientResponseError: 503"
    assert cell.client_cpu == pytest.approx(37.5)  # 0.75 s of CPU in 2 s: 37.5 % of one core


def test_a_cell_without_requests_says_so():
    cell = summarize([Share([], 0, 0.1, None)], seconds=1.0)
    assert cell.requests == 0 and cell.per_s == 0 and math.isnan(cell.p99)

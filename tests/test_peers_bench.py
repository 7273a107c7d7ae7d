"""The peers race's arithmetic (bench/peers.py): what a cell reports from its client processes' shares."""

import math
import os
import subprocess
import sys
import time

import pytest

from bench.peers import Share, summarize, tree_cpu


def test_a_cell_merges_its_shares():
    fast = Share(latencies=[0.001] * 98, errors=0, cpu=0.5, first_error=None)
    slow = Share(latencies=[0.1, 0.2], errors=1, cpu=0.25, first_error="ClientResponseError: 503", server_cpu=0.198)
    cell = summarize([fast, slow], seconds=2.0)
    assert cell.requests == 100
    assert cell.per_s == pytest.approx(99 / 2.0)  # an error is no answer
    assert cell.p50 == pytest.approx(1.0)
    assert 100 < cell.p99 < 200  # ms, between the two slow requests
    assert cell.errors == 1 and cell.first_error == "ClientResponseError: 503"
    assert cell.client_cpu == pytest.approx(37.5)  # 0.75 s of CPU in 2 s: 37.5 % of one core
    assert cell.server_cpu == pytest.approx(2.0)  # 198 ms over 99 answers


def test_the_cpu_of_a_process_tree_counts_its_living_children():
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\ntime.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", busy])
    try:
        deadline = time.monotonic() + 60
        while tree_cpu(child.pid) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        child_cpu = tree_cpu(child.pid)
        assert child_cpu >= 0.3
        assert tree_cpu(os.getpid()) >= time.process_time() + child_cpu - 0.05  # clock ticks of 10 ms
    finally:
        child.kill()
        child.wait()


def test_a_cell_without_requests_says_so():
    cell = summarize([Share([], 0, 0.1, None)], seconds=1.0)
    assert cell.requests == 0 and cell.per_s == 0 and math.isnan(cell.p99) and math.isnan(cell.server_cpu)

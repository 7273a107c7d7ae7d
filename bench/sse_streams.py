"""Many open job event streams against a real `warmzoo serve`: does the rest of the API stay fast?

    python -m bench.sse_streams [--streams 200] [--samples 20]

Starts `warmzoo serve` (one worker, fresh data dir) on a free port, queues a long warm-up and
waits until it runs, opens `--streams` concurrent `GET /v1/jobs/{id}/events` streams (aiohttp,
one asyncio loop), and a second later times `--samples` sequential `GET /v1/models` while the
streams open and stay open. Prints how the streams were answered, the median and the worst
latency and the statuses seen; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter

import aiohttp
import httpx

from bench.server import local_server

WARMUP = {
    "name": "sse-bench",
    "spec": {"cell": "gru", "input_size": 1, "hidden_size": 4},
    "data": {"task": "copy_first_input", "seq_length": 12, "num_samples": 16},
    "warmup": {"steps": 100_000},
}
REQUEST_TIMEOUT_S = 40  # above the pool's 30 s wait, so that the old failure shows as a status


async def _stream(session: aiohttp.ClientSession, url: str, opened: Counter[int]) -> None:
    async with session.get(url) as answer:
        opened[answer.status] += 1
        async for _ in answer.content:  # read until the server ends the stream or we are canceled
            pass


async def measure(base: str, streams: int, samples: int) -> None:
    job = httpx.post(f"{base}/v1/warmups", json=WARMUP, timeout=30).json()
    while httpx.get(f"{base}/v1/jobs/{job['id']}", timeout=30).json()["status"] != "running":
        await asyncio.sleep(0.2)
    opened: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        events = f"{base}/v1/jobs/{job['id']}/events"
        tasks = [asyncio.create_task(_stream(session, events, opened)) for _ in range(streams)]
        await asyncio.sleep(1)  # the streams are opening
        latencies, statuses = [], Counter[str]()
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as client:
            for _ in range(samples):
                start = time.perf_counter()
                try:
                    statuses[str((await client.get(f"{base}/v1/models")).status_code)] += 1
                except httpx.TimeoutException:
                    statuses["timeout"] += 1
                latencies.append((time.perf_counter() - start) * 1000)
        while sum(opened.values()) < streams:
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    httpx.post(f"{base}/v1/jobs/{job['id']}/cancel", timeout=30)
    print(
        f"{streams} open streams (opened: {dict(opened)}): GET /v1/models x{samples}"
        f" median {statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms, statuses {dict(statuses)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    with local_server() as base:
        asyncio.run(measure(base, args.streams, args.samples))


if __name__ == "__main__":
    main()

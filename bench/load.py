"""Load: many concurrent clients against a real `warmzoo serve` on loopback, for a bounded time.

    python -m bench.load [--clients 32] [--processes 4] [--seconds 25] [--api-processes 1 2]
    python -m bench.load --url http://127.0.0.1:8000 --model NAME

Without --url it starts `warmzoo serve` (one worker, fresh data dir, rate limit off: every
client shares 127.0.0.1) on a free port, uploads a small GRU (2 x 64) and drives it, once per
value of --api-processes; with --url it uses that server's `--model` (which must exist;
warm-up submissions need write access).

Each client loops over a weighted mix: OIP inference (batch 1, 16 steps), model search,
version metadata, a weights download. One more client submits a tiny warm-up job every
second (--infer-only: inference alone, the warm-ups still submitted). The clients are
aiohttp sessions spread over a few processes: one asyncio loop driving 32 clients adds its own
queueing to the tail it measures, and httpx took 2.3 ms of CPU per request, so that on a
2-core box the clients, not the server, set the pace. Prints requests/s, p50 and p99 latency
and errors per kind; asserts nothing. The clients, the API and the worker share the cores, so
the figures include client-side scheduling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import numpy as np

from bench.server import local_server, publish
from warmzoo.models.spec import RNNSpec

SPEC = RNNSpec(cell="gru", input_size=1, hidden_size=64, num_layers=2, output_size=1)
TIME_STEPS = 16
JSON = {"Content-Type": "application/json"}
MIX = {"infer": 0.80, "search": 0.08, "version": 0.05, "download": 0.07}  # per client; plus 1 warm-up/s
Request = Callable[[aiohttp.ClientSession], Awaitable[int]]


def requests(model: str) -> dict[str, Request]:
    x = np.random.default_rng(0).standard_normal((1, TIME_STEPS, SPEC.input_size)).astype(np.float32)
    infer = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    warmup = {
        "name": "load-warmup",
        "spec": {"cell": "gru", "input_size": 1, "hidden_size": 4},
        "data": {"task": "copy_first_input", "seq_length": 12, "num_samples": 16},
        "warmup": {"steps": 2, "batch_size": 8},
        "device": "cpu",
    }
    infer_body = json.dumps(infer).encode()
    return {
        "infer": lambda http: _status(http.post(f"/v2/models/{model}/versions/1/infer", data=infer_body, headers=JSON)),
        "search": lambda http: _status(http.get("/v1/models", params={"cell": "gru", "limit": 20})),
        "version": lambda http: _status(http.get(f"/v1/models/{model}/versions/1")),
        "download": lambda http: _status(http.get(f"/v1/models/{model}/versions/1/files/weights.safetensors")),
        "warmup": lambda http: _status(http.post("/v1/warmups", json=warmup)),
    }


async def _status(request: Any) -> int:
    """The status of a response read to its end (a download is timed to its last byte)."""
    async with request as response:
        await response.read()
        return response.status


Results = tuple[dict[str, list[float]], dict[str, int]]


async def drive(url: str, model: str, clients: int, seconds: float, submit: bool, mix: dict[str, float]) -> Results:
    """Latencies (s) and error counts per kind, from `clients` looping clients drawing from
    `mix` (and, if `submit`, one job submitter)."""
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    calls = requests(model)
    kinds, weights = list(mix), list(mix.values())
    stop = time.monotonic() + seconds

    async def timed(http: aiohttp.ClientSession, kind: str) -> None:
        start = time.perf_counter()
        try:
            ok = await calls[kind](http) < 400
        except aiohttp.ClientError:
            ok = False
        latencies[kind].append(time.perf_counter() - start)
        errors[kind] += not ok

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop:
            await timed(http, rng.choices(kinds, weights)[0])

    async def submitter() -> None:
        while submit and time.monotonic() < stop:
            await timed(http, "warmup")
            await asyncio.sleep(1.0)

    connector = aiohttp.TCPConnector(limit=clients + 1)
    async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        await asyncio.gather(submitter(), *(client(i) for i in range(clients)))
    return dict(latencies), dict(errors)


def _drive_process(args: tuple[str, str, int, float, bool, dict[str, float]]) -> Results:
    return asyncio.run(drive(*args))


def drive_processes(
    url: str, model: str, clients: int, processes: int, seconds: float, mix: dict[str, float]
) -> Results:
    """`drive` in `processes` processes sharing `clients` between them; their results merged."""
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    jobs = [(url, model, share, seconds, i == 0, mix) for i, share in enumerate(shares)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_drive_process, jobs)
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    for part_latencies, part_errors in results:
        for kind, values in part_latencies.items():
            latencies[kind] += values
        for kind, count in part_errors.items():
            errors[kind] += count
    return latencies, errors


def report(latencies: dict[str, list[float]], errors: dict[str, int], seconds: float, clients: int) -> None:
    total = sum(len(v) for v in latencies.values())
    print(f"{clients} clients (+1 submitting warm-ups) for {seconds:.0f} s: {total} requests,"
          f" {total / seconds:.0f} req/s, {sum(errors.values())} errors")  # fmt: skip
    print("| kind | requests | req/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for kind in [k for k in [*MIX, "warmup"] if k in latencies]:
        values = np.asarray(latencies[kind]) * 1000
        print(
            f"| {kind} | {len(values)} | {len(values) / seconds:.0f} |"
            f" {np.percentile(values, 50):.1f} | {np.percentile(values, 99):.1f} | {errors.get(kind, 0)} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--processes", type=int, default=4, help="client processes the clients are spread over")
    parser.add_argument("--seconds", type=float, default=25)
    parser.add_argument(
        "--api-processes",
        type=int,
        nargs="+",
        default=[1],
        help="API processes of the started server; several values run one after the other (above 1: Redis"
        " on 127.0.0.1:6379 holds the sequences)",
    )
    parser.add_argument(
        "--infer-only", action="store_true", help="every client request an inference (warm-ups still submitted)"
    )
    parser.add_argument("--url", help="an already running server (default: start one)")
    parser.add_argument("--model", default="load-gru", help="with --url: a model of that server")
    args = parser.parse_args()
    mix = {"infer": 1.0} if args.infer_only else MIX
    if args.url is not None:
        url = args.url.rstrip("/")
        latencies, errors = drive_processes(url, args.model, args.clients, args.processes, args.seconds, mix)
        report(latencies, errors, args.seconds, args.clients)
        return
    for count in args.api_processes:
        print(f"\n`warmzoo serve` with {count} API process(es)")
        with local_server(**_api_processes(count)) as url:
            publish(url, args.model, SPEC)
            latencies, errors = drive_processes(url, args.model, args.clients, args.processes, args.seconds, mix)
        report(latencies, errors, args.seconds, args.clients)


def _api_processes(count: int) -> dict[str, str]:
    if count == 1:
        return {}
    prefix = f"warmzoo-bench:{os.getpid()}:{time.time_ns()}:"  # no key of another run or of the tests
    return {"WARMZOO_API_PROCESSES": str(count), "WARMZOO_SEQUENCE_STORE": "redis", "WARMZOO_REDIS_KEY_PREFIX": prefix}


if __name__ == "__main__":
    main()

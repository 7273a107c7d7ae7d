"""Dynamic batching off vs on: concurrent clients of one model over HTTP, and ONNX Runtime's own limit.

    python -m bench.batching [--clients 32] [--processes 4] [--seconds 20] [--cells gru brc]

For each cell (2 x 256, input and output size 1, T = 100, batch 1 per request, JSON), starts
`warmzoo serve` (no job workers) with WARMZOO_BATCHING=false, then with it on (the defaults:
max batch 64, no queue delay, 2 instances), drives each with `clients` aiohttp clients spread
over `processes` processes for `seconds`, and prints requests/s, p50 and p99 and the on/off
ratio, with the CPU seconds the clients themselves used (clients and server share the cores).
Then ONNX Runtime alone, one thread: the cost of one call over a batch of 32 against one of
batch 1. Their ratio bounds what batching can gain: 32 / ratio is the most throughput it can
multiply by when ONNX Runtime is all the server does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
import onnxruntime as ort

from bench.server import local_server, publish
from warmzoo.models.onnx import export_onnx
from warmzoo.models.network import build_network
from warmzoo.models.spec import RNNSpec

TIME_STEPS = 100
Results = tuple[list[float], int, float]  # latencies (s), errors, client CPU seconds


def spec(cell: str) -> RNNSpec:
    return RNNSpec(cell=cell, input_size=1, hidden_size=256, num_layers=2, output_size=1)


async def drive(url: str, model: str, clients: int, seconds: float) -> Results:
    x = np.random.default_rng(0).standard_normal((1, TIME_STEPS, 1)).astype(np.float32)
    tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
    body = json.dumps({"inputs": [tensor]})
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def client() -> None:
        nonlocal errors
        while time.monotonic() < stop:
            start = time.perf_counter()
            try:
                async with http.post(f"/v2/models/{model}/versions/1/infer", data=body) as response:
                    await response.read()
                    errors += response.status != 200
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        await asyncio.gather(*(client() for _ in range(clients)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return latencies, errors, usage.ru_utime + usage.ru_stime


def _drive_process(args: tuple[str, str, int, float]) -> Results:
    return asyncio.run(drive(*args))


def measure(url: str, model: str, clients: int, processes: int, seconds: float) -> Results:
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_drive_process, [(url, model, share, seconds) for share in shares])
    return [t for part in parts for t in part[0]], sum(p[1] for p in parts), sum(p[2] for p in parts)


def onnx_batch_cost(cell: str, batch: int = 32, repeats: int = 20) -> tuple[float, float]:
    """CPU seconds of one ONNX Runtime call of batch 1 and of `batch` (one intra-op thread: the call
    runs in this thread), the median of `repeats`. CPU time, not wall time: on a loaded box a long
    call is preempted more often than a short one, which skews a wall-clock ratio."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(export_onnx(build_network(spec(cell), seed=0).eval())[0])
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    costs = []
    for size in (1, batch):
        x = np.random.default_rng(0).standard_normal((size, TIME_STEPS, 1)).astype(np.float32)
        state = np.zeros((2, size, 256), np.float32)
        times = []
        for _ in range(repeats):
            start = time.thread_time()
            session.run(None, {"input": x, "state": state})
            times.append(time.thread_time() - start)
        costs.append(float(np.median(times)))
    return costs[0], costs[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--processes", type=int, default=4, help="client processes the clients are spread over")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--cells", nargs="+", default=["gru", "brc"])
    args = parser.parse_args()
    print(f"{args.clients} clients in {args.processes} processes, {args.seconds:.0f} s a run, T = {TIME_STEPS}, batch 1")
    print("| cell | batching | req/s | p50 ms | p99 ms | errors | client CPU s |")
    print("|---|---|---|---|---|---|---|")
    throughput: dict[tuple[str, str], float] = {}
    for cell in args.cells:
        for batching in ("off", "on"):
            env = {"WARMZOO_WORKERS": "0", "WARMZOO_BATCHING": "true" if batching == "on" else "false"}
            model = f"bench-{cell}"
            with local_server(**env) as url:
                publish(url, model, spec(cell))
                latencies, errors, client_cpu = measure(url, model, args.clients, args.processes, args.seconds)
            ms = np.asarray(latencies) * 1000
            throughput[cell, batching] = len(ms) / args.seconds
            print(
                f"| {cell} 2 x 256 | {batching} | {throughput[cell, batching]:.0f} | {np.percentile(ms, 50):.1f} |"
                f" {np.percentile(ms, 99):.1f} | {errors} | {client_cpu:.1f} |"
            )
    for cell in args.cells:
        one, many = onnx_batch_cost(cell)
        print(
            f"{cell}: batching on / off = {throughput[cell, 'on'] / throughput[cell, 'off']:.2f}x;"
            f" ONNX Runtime batch 32 costs {many / one:.1f}x batch 1 ({many * 1e3:.1f} vs {one * 1e3:.2f} ms),"
            f" so batching can multiply its throughput by {32 * one / many:.2f}x at most"
        )


if __name__ == "__main__":
    main()

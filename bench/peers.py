"""The peers race: one model.onnx served by warmzoo, KServe's model server and MLServer, one load client for all.

    python -m bench.peers [--seconds 10] [--concurrency 1 8 32] [--protocols http grpc] [--models gru brc]
    python -m bench.peers --quick          # 2 s a cell, the GRU only: a smoke run of the whole race

Publishes a GRU and a BRC (2 layers x 256, input and output size 1) to a fresh `warmzoo serve`,
downloads the model.onnx it exported for each, and serves those same files with KServe's Python
model server (a `kserve.Model` around an ONNX Runtime session: bench/peers_runtimes/kserve_onnx.py)
and MLServer (a custom runtime around the same session, adaptive batching on:
bench/peers_runtimes/mlserver_onnx.py). Every session gets the same intra-op threads (--onnx-threads)
and OMP_NUM_THREADS=1. The peers live in their own venvs, .venv-peers (bench/peers-requirements.txt)
and .venv-peers-mlserver (bench/peers-requirements-mlserver.txt), which this script creates on first
use from PyPI: their pins conflict with ours.

Every server answers the same request: `input` FP32 [1, 100, 1] asking for `output` alone, over v2
REST with a JSON body, and over v2 gRPC (`inference.GRPCInferenceService/ModelInfer`, the input
as `raw_input_contents`). Before the race each answer is checked against ONNX Runtime run here on
the same file. The load client is ours for all: `--concurrency` closed loops (each sends its next
request when the last is answered) on one aiohttp session or one grpc.aio channel, in
--client-processes processes, each body encoded once. Cells run one after the other, every
server in turn for the same model, protocol and concurrency, so that noise from the shared machine
hits them alike; with --rounds N the whole sequence runs N times and a table gives each cell's
median round (by throughput). A cell warms up for --warmup seconds, then counts requests started
within --seconds. Its row gives requests/s, p50 and p99 latency, errors, the server's CPU time per
answer (its process and descendants, from /proc, over the measured window: on a box shared with
other work the steadiest figure), and the client's own CPU time in percent of one core, so the
reader can see whether the client set the pace.

Also races warmzoo with its dynamic batching off (WARMZOO_BATCHING=0) against on, at the highest
concurrency, and times ONNX Runtime alone on each model.onnx at batch 1 and at that concurrency:
CPU per sequence, whose ratio bounds what any server's batching can gain. Prints markdown tables
and the targets (warmzoo at the highest concurrency >= 1.5x the best peer's throughput at a p99 no
worse; batching on >= 3x off), met or not; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import httpx
import numpy as np
import onnxruntime as ort

from bench.server import publish, server_process
from tests.helpers.server import ROOT, free_port
from warmzoo.models.spec import RNNSpec
from warmzoo.service.api.grpc.protos import grpc_service_pb2 as pb  # Triton's v2 gRPC, the wire KServe's is

SPECS = {
    cell: RNNSpec(cell=cell, input_size=1, hidden_size=256, num_layers=2, output_size=1) for cell in ("gru", "brc")
}
TIME_STEPS = 100
RUNTIMES = ROOT / "bench" / "peers_runtimes"
KSERVE_VENV = ROOT / ".venv-peers"
MLSERVER_VENV = ROOT / ".venv-peers-mlserver"
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
PEER_ENV = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
BATCHING_OFF = "warmzoo, batching off"


# -- the servers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """Where a server answers v2: `version` None means the model's path without a version."""

    name: str
    http: str
    grpc: str | None
    version: str | None
    pid: int  # the server's process: its CPU, with its descendants', is read during each cell

    def infer_path(self, model: str) -> str:
        return f"/v2/models/{model}" + (f"/versions/{self.version}" if self.version else "") + "/infer"


def ensure_venv(venv: Path, requirements: Path) -> Path:
    """`venv`'s python, the venv created from PyPI with `requirements` if missing or stale."""
    stamp = venv / ".requirements-sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    python = venv / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    print(f"building {venv.name} from {requirements.name} (once; a minute or two)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True)
    stamp.write_text(digest)
    return python


@contextmanager
def _running(
    name: str, command: list[str], env: dict[str, str], log_path: Path, ready: list[str]
) -> Iterator[subprocess.Popen[bytes]]:
    """`command` as a process until the block ends (SIGTERM), once every URL in `ready` answers 200."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        for url in ready:
            while True:
                if process.poll() is not None:
                    sys.exit(f"{name} exited:\n{log_path.read_text()[-3000:]}")
                try:
                    if httpx.get(url).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    sys.exit(f"{name} was not ready within 120 s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def warmzoo(name: str, onnx_threads: int, batching: bool, files: Path | None = None) -> Iterator[Server]:
    """`warmzoo serve` with the race's models published; with `files`, their model.onnx is saved there."""
    env = {"WARMZOO_ONNX_THREADS": str(onnx_threads), "WARMZOO_BATCHING": "1" if batching else "0"}
    grpc_port = free_port()
    with server_process(grpc_port, **env) as (url, process):
        for model, spec in SPECS.items():
            publish(url, model, spec)
            if files is not None:
                answer = httpx.get(f"{url}/v1/models/{model}/versions/1/files/model.onnx", timeout=60)
                answer.raise_for_status()
                (files / model).mkdir()
                (files / model / "model.onnx").write_bytes(answer.content)
        yield Server(name, url, f"127.0.0.1:{grpc_port}", "1", process.pid)


@contextmanager
def kserve(files: Path, onnx_threads: int) -> Iterator[Server]:
    python = ensure_venv(KSERVE_VENV, ROOT / "bench" / "peers-requirements.txt")
    http, grpc_port = free_port(), free_port()
    command = [str(python), str(RUNTIMES / "kserve_onnx.py"), "--http_port", str(http), "--grpc_port", str(grpc_port)]
    command += ["--onnx_threads", str(onnx_threads)]
    for model in SPECS:
        command += ["--onnx", f"{model}={files / model / 'model.onnx'}"]
    url = f"http://127.0.0.1:{http}"
    ready = [f"{url}/v2/models/{model}/ready" for model in SPECS]
    with _running("kserve", command, PEER_ENV, files / "kserve.log", ready) as process:
        yield Server("kserve", url, f"127.0.0.1:{grpc_port}", None, process.pid)


@contextmanager
def mlserver(files: Path, onnx_threads: int, max_batch_size: int, max_batch_time_s: float) -> Iterator[Server]:
    """MLServer on a repository of one folder per model, each with its model-settings.json (adaptive batching on)."""
    python = ensure_venv(MLSERVER_VENV, ROOT / "bench" / "peers-requirements-mlserver.txt")
    repository = files / "mlserver"
    http, grpc_port = free_port(), free_port()
    for model in SPECS:
        settings = {
            "name": model,
            "implementation": "mlserver_onnx.OnnxRuntime",
            "parameters": {"uri": str(files / model / "model.onnx"), "extra": {"onnx_threads": onnx_threads}},
            "max_batch_size": max_batch_size,
            "max_batch_time": max_batch_time_s,
        }
        (repository / model).mkdir(parents=True)
        (repository / model / "model-settings.json").write_text(json.dumps(settings))
    env = {
        **PEER_ENV,
        "PYTHONPATH": str(RUNTIMES),
        "MLSERVER_HTTP_PORT": str(http),
        "MLSERVER_GRPC_PORT": str(grpc_port),
        "MLSERVER_METRICS_PORT": str(free_port()),
        "MLSERVER_DEBUG": "false",
        # inference in the server's own process: MLServer's default of one worker process dies at start
        # with the uvloop its pins allow (0.23: "There is no current event loop"), and on two cores a
        # worker process adds a hop more than it frees
        "MLSERVER_PARALLEL_WORKERS": "0",
    }
    command = [str(python.parent / "mlserver"), "start", str(repository)]
    url = f"http://127.0.0.1:{http}"
    ready = [f"{url}/v2/models/{model}/ready" for model in SPECS]
    with _running("mlserver", command, env, files / "mlserver.log", ready) as process:
        yield Server("mlserver", url, f"127.0.0.1:{grpc_port}", None, process.pid)


# -- the requests --------------------------------------------------------------------------


def sample(model: str) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((1, TIME_STEPS, SPECS[model].input_size)).astype(np.float32)


def http_body(x: np.ndarray) -> bytes:
    tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
    return json.dumps({"inputs": [tensor], "outputs": [{"name": "output"}]}).encode()


def grpc_body(x: np.ndarray, model: str, version: str | None) -> bytes:
    request = pb.ModelInferRequest(model_name=model, model_version=version or "")
    request.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
    request.outputs.add(name="output")
    request.raw_input_contents.append(x.tobytes())
    return request.SerializeToString()


def _grpc_output(answer: bytes) -> np.ndarray:
    response = pb.ModelInferResponse.FromString(answer)
    (output,) = [i for i, tensor in enumerate(response.outputs) if tensor.name == "output"]
    tensor = response.outputs[output]
    if response.raw_output_contents:
        data = np.frombuffer(response.raw_output_contents[output], dtype=np.float32)
    else:
        data = np.asarray(tensor.contents.fp32_contents, dtype=np.float32)
    return data.reshape(list(tensor.shape))


def _session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def batching_ceiling(files: Path, models: list[str], threads: int, batch: int) -> dict[str, tuple[float, float]]:
    """ONNX Runtime's CPU ms per sequence at batch 1 and at `batch`, median of runs here on the model.onnx:
    the most any server's batching can gain is their ratio (it saves no per-request protocol work)."""
    found = {}
    for model in models:
        session = _session(files / model / "model.onnx", threads)
        per_sequence = []
        for size in (1, batch):
            x = np.repeat(sample(model), size, axis=0)
            times = []
            for _ in range(max(7, 128 // size)):
                start = time.process_time()
                session.run(["output"], {"input": x})
                times.append((time.process_time() - start) * 1000 / size)
            per_sequence.append(float(np.median(times)))
        found[model] = (per_sequence[0], per_sequence[1])
    return found


def check_answers(server: Server, files: Path, protocols: list[str]) -> None:
    """Each model's `output` from `server` equals ONNX Runtime's here on the same file, or the race stops."""
    for model in SPECS:
        x = sample(model)
        (expected,) = _session(files / model / "model.onnx").run(["output"], {"input": x})
        got = {}
        if "http" in protocols:
            answer = httpx.post(server.http + server.infer_path(model), content=http_body(x), headers=JSON, timeout=30)
            if answer.status_code != 200:
                sys.exit(f"{server.name} answers {model} over HTTP with {answer.status_code}: {answer.text[:1000]}")
            (output,) = [o for o in answer.json()["outputs"] if o["name"] == "output"]
            got["http"] = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
        if "grpc" in protocols and server.grpc is not None:
            with grpc.insecure_channel(server.grpc) as channel:
                call = channel.unary_unary(MODEL_INFER)
                got["grpc"] = _grpc_output(call(grpc_body(x, model, server.version), timeout=30))
        for protocol, array in got.items():
            if array.shape != expected.shape or not np.allclose(array, expected, atol=1e-5):
                sys.exit(f"{server.name} answers {model} over {protocol} unlike ONNX Runtime on the same model.onnx")


JSON = {"Content-Type": "application/json"}


# -- the load client -----------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One client process's share of a cell: `loops` closed loops sending `body` to `address`."""

    protocol: str
    address: str  # HTTP: the infer URL; gRPC: host:port
    body: bytes
    loops: int
    warmup: float
    seconds: float
    server_pid: int | None = None  # the process whose CPU (with its descendants') this share reads


@dataclass(frozen=True)
class Share:
    latencies: list[float]
    errors: int
    cpu: float  # this client process's CPU seconds in the measured window
    first_error: str | None
    server_cpu: float | None = None  # the server's CPU seconds in the window, if this share read it


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid` and its living descendants, from /proc."""
    used: dict[int, int] = {}
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # it ended meanwhile
                continue
            used[int(entry.name)] = int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += used.get(current, 0)
        todo += children.get(current, [])
    return total / os.sysconf("SC_CLK_TCK")


async def _drive(load: Load) -> Share:
    """Closed loops for warmup + seconds; latencies of the requests started in the measured window."""
    latencies: list[float] = []
    errors = 0
    first_error: str | None = None
    begin = time.perf_counter() + load.warmup
    end = begin + load.seconds
    cpu: dict[str, float] = {}

    async def window() -> None:
        """The client's (and the server's) CPU clocks read when the measured window opens and closes."""
        for edge, at in (("begin", begin), ("end", end)):
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            cpu[f"client {edge}"] = time.process_time()
            if load.server_pid is not None:
                cpu[f"server {edge}"] = tree_cpu(load.server_pid)

    async def loop(send: Any) -> None:
        nonlocal errors, first_error
        while (start := time.perf_counter()) < end:
            try:
                await send()
                failure = None
            except Exception as exc:  # the cell reports the count and the first one; the race goes on
                failure = f"{type(exc).__name__}: {exc}"[:300]
            if start >= begin:
                latencies.append(time.perf_counter() - start)
                if failure is not None:
                    errors += 1
                    first_error = first_error or failure

    if load.protocol == "http":
        connector = aiohttp.TCPConnector(limit=load.loops)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:

            async def send() -> None:
                async with http.post(load.address, data=load.body, headers=JSON) as response:
                    await response.read()
                    response.raise_for_status()

            await asyncio.gather(window(), *(loop(send) for _ in range(load.loops)))
    else:
        async with grpc.aio.insecure_channel(load.address) as channel:
            call = channel.unary_unary(MODEL_INFER)

            async def send() -> None:
                await call(load.body, timeout=30)

            await asyncio.gather(window(), *(loop(send) for _ in range(load.loops)))
    server = cpu["server end"] - cpu["server begin"] if load.server_pid is not None else None
    return Share(latencies, errors, cpu["client end"] - cpu["client begin"], first_error, server)


def _drive_process(load: Load) -> Share:
    return asyncio.run(_drive(load))


@dataclass(frozen=True)
class Cell:
    """What one server did at one concurrency: rates and latencies in ms, the server's CPU in ms per
    answer (NaN if not read), the client's CPU in % of a core."""

    requests: int
    per_s: float
    p50: float
    p99: float
    errors: int
    client_cpu: float
    server_cpu: float = float("nan")
    first_error: str | None = None


def summarize(shares: list[Share], seconds: float) -> Cell:
    """One cell from its client processes' shares: requests started in `seconds`, their latencies, the CPU."""
    latencies = np.asarray([value for share in shares for value in share.latencies]) * 1000
    if latencies.size == 0:
        return Cell(0, 0.0, float("nan"), float("nan"), 0, 0.0)
    errors = sum(share.errors for share in shares)
    cpu = sum(share.cpu for share in shares)
    first = next((share.first_error for share in shares if share.first_error), None)
    server = [share.server_cpu for share in shares if share.server_cpu is not None]
    answers = latencies.size - errors
    return Cell(
        requests=int(latencies.size),
        per_s=(latencies.size - errors) / seconds,
        p50=float(np.percentile(latencies, 50)),
        p99=float(np.percentile(latencies, 99)),
        errors=errors,
        client_cpu=100 * cpu / seconds,
        server_cpu=1000 * server[0] / answers if server and answers else float("nan"),
        first_error=first,
    )


def run_cell(pool: Any, processes: int, load: Load) -> Cell:
    """`load.loops` loops spread over up to `processes` client processes of `pool`."""
    count = min(processes, load.loops)
    shares = [load.loops // count + (i < load.loops % count) for i in range(count)]
    loads = [
        Load(load.protocol, load.address, load.body, share, load.warmup, load.seconds, None if i else load.server_pid)
        for i, share in enumerate(shares)
    ]
    return summarize(pool.map(_drive_process, loads), load.seconds)


# -- the race ------------------------------------------------------------------------------


Key = tuple[str, str, int, str]  # protocol, model, concurrency, server


def race(servers: list[Server], args: argparse.Namespace, pool: Any) -> dict[Key, Cell]:
    """Every cell `args.rounds` times, all of a round's cells before the next round; each cell's median round."""
    rounds: dict[Key, list[Cell]] = {}
    for number in range(args.rounds):
        print(f"round {number + 1} of {args.rounds}", flush=True)
        for key, cell in race_round(servers, args, pool).items():
            rounds.setdefault(key, []).append(cell)
    return {key: sorted(found, key=lambda cell: cell.per_s)[len(found) // 2] for key, found in rounds.items()}


def race_round(servers: list[Server], args: argparse.Namespace, pool: Any) -> dict[Key, Cell]:
    cells: dict[Key, Cell] = {}
    top = max(args.concurrency)
    for protocol in args.protocols:
        for model in args.models:
            x = sample(model)
            for clients in args.concurrency:
                for server in servers:
                    if server.name == BATCHING_OFF and clients != top:
                        continue
                    if protocol == "grpc" and server.grpc is None:
                        continue
                    if protocol == "http":
                        address, body = server.http + server.infer_path(model), http_body(x)
                    else:
                        address, body = server.grpc, grpc_body(x, model, server.version)
                    load = Load(protocol, address, body, clients, args.warmup, args.seconds, server.pid)
                    cell = cells[protocol, model, clients, server.name] = run_cell(pool, args.client_processes, load)
                    print(
                        f"  {protocol:4} {model} c={clients:<3} {server.name:22} {cell.per_s:7.0f}/s"
                        f" p50 {cell.p50:6.1f} p99 {cell.p99:6.1f} ms  server CPU {cell.server_cpu:5.2f} ms/answer"
                        f"  client CPU {cell.client_cpu:3.0f}%"
                        + (f"  {cell.errors} errors, first: {cell.first_error}" if cell.errors else ""),
                        flush=True,
                    )
    return cells


def _cell_text(cell: Cell | None) -> list[str]:
    if cell is None:
        return ["-", "-", "-", "-"]
    errors = f" ({cell.errors} errors)" if cell.errors else ""
    latency = f"{cell.p50:.1f} / {cell.p99:.1f}"
    return [f"{cell.per_s:.0f}{errors}", latency, f"{cell.server_cpu:.2f}", f"{cell.client_cpu:.0f}%"]


def report(
    cells: dict[Key, Cell], servers: list[Server], args: argparse.Namespace, ceiling: dict[str, tuple[float, float]]
) -> None:
    names = [server.name for server in servers if server.name != BATCHING_OFF]
    top = max(args.concurrency)
    for protocol in args.protocols:
        label = "HTTP, v2 JSON" if protocol == "http" else "gRPC, v2 ModelInfer with raw_input_contents"
        for model in args.models:
            print(f"\n{model} 2 x 256, T = {TIME_STEPS}, batch 1 per request, {label}")
            print("req/s; p50 / p99 ms; the server's CPU ms per answer; the client's CPU in % of one core")
            print("| c | " + " | ".join(f"{name} req/s | p50 / p99 | CPU ms | client" for name in names) + " |")
            print("|---|" + "---|---|---|---|" * len(names))
            for clients in args.concurrency:
                row = [text for name in names for text in _cell_text(cells.get((protocol, model, clients, name)))]
                print(f"| {clients} | " + " | ".join(row) + " |")

    threads = f"{args.onnx_threads} intra-op thread(s)"
    print(f"\nONNX Runtime alone here, CPU ms per sequence ({threads}): the bound on what batching gains")
    for model, (single, batched) in ceiling.items():
        print(f"- {model}: batch 1 {single:.2f}, batch {top} {batched:.2f}: at most {single / batched:.2f}x")

    print(f"\nwarmzoo's dynamic batching off vs on, c = {top}")
    print("| model | protocol | off req/s | p50 / p99 | CPU ms | on req/s | p50 / p99 | CPU ms | on / off |")
    print("|---|---|---|---|---|---|---|---|---|")
    for protocol in args.protocols:
        for model in args.models:
            off, on = cells.get((protocol, model, top, BATCHING_OFF)), cells.get((protocol, model, top, "warmzoo"))
            if off is None or on is None:
                continue
            ratio = on.per_s / off.per_s if off.per_s else float("inf")
            columns = [model, protocol, *_cell_text(off)[:3], *_cell_text(on)[:3], f"{ratio:.2f}x"]
            print("| " + " | ".join(columns) + " |")

    print(f"\ntargets at c = {top}: warmzoo >= 1.5x the best peer's req/s at a p99 no worse; batching on >= 3x off")
    for protocol in args.protocols:
        for model in args.models:
            ours = cells.get((protocol, model, top, "warmzoo"))
            peers = {n: cell for n in names if n != "warmzoo" and (cell := cells.get((protocol, model, top, n)))}
            if ours is None or not peers:
                continue
            best, cell = max(peers.items(), key=lambda item: item[1].per_s)
            ratio = ours.per_s / cell.per_s if cell.per_s else float("inf")
            met = ratio >= 1.5 and ours.p99 <= cell.p99
            print(
                f"- {protocol} {model}: warmzoo {ours.per_s:.0f}/s p99 {ours.p99:.1f} ms vs {best} {cell.per_s:.0f}/s"
                f" p99 {cell.p99:.1f} ms: {ratio:.2f}x, {'met' if met else 'NOT met'}"
            )
            off = cells.get((protocol, model, top, BATCHING_OFF))
            if off is not None and off.per_s:
                gain = ours.per_s / off.per_s
                print(f"- {protocol} {model}: batching on / off {gain:.2f}x, {'met' if gain >= 3 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per cell")
    parser.add_argument("--rounds", type=int, default=1, help="races of every cell; the tables give each one's median")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before each cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--protocols", nargs="+", choices=["http", "grpc"], default=["http", "grpc"])
    parser.add_argument("--models", nargs="+", choices=list(SPECS), default=list(SPECS))
    parser.add_argument("--peers", nargs="+", choices=["kserve", "mlserver"], default=["kserve", "mlserver"])
    parser.add_argument("--client-processes", type=int, default=2, help="processes the client's loops are spread over")
    parser.add_argument("--onnx-threads", type=int, default=1, help="intra-op threads of every ONNX Runtime session")
    parser.add_argument("--max-batch-size", type=int, default=32, help="MLServer's adaptive batching")
    parser.add_argument("--max-batch-time", type=float, default=0.001, help="MLServer's adaptive batching, seconds")
    parser.add_argument("--quick", action="store_true", help="--seconds 2 --warmup 1 --models gru: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup, args.models = 2.0, 1.0, ["gru"]

    with ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        files = Path(folder)
        print("starting the servers", flush=True)
        servers = [stack.enter_context(warmzoo("warmzoo", args.onnx_threads, batching=True, files=files))]
        servers.append(stack.enter_context(warmzoo(BATCHING_OFF, args.onnx_threads, batching=False)))
        if "kserve" in args.peers:
            servers.append(stack.enter_context(kserve(files, args.onnx_threads)))
        if "mlserver" in args.peers:
            batching = (args.max_batch_size, args.max_batch_time)
            servers.append(stack.enter_context(mlserver(files, args.onnx_threads, *batching)))
        for server in servers:
            check_answers(server, files, args.protocols)
        ceiling = batching_ceiling(files, args.models, args.onnx_threads, max(args.concurrency))
        cores = os.cpu_count()
        print(f"racing: {args.seconds:g} s a cell after {args.warmup:g} s of warm-up, on {cores} cores", flush=True)
        with multiprocessing.get_context("spawn").Pool(args.client_processes) as pool:
            cells = race(servers, args, pool)
    report(cells, servers, args, ceiling)


if __name__ == "__main__":
    main()

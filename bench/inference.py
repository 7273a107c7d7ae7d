"""Inference speed: ONNX Runtime against PyTorch eager, and what the /v2 HTTP and gRPC paths add.

    python -m bench.inference [--steps 100] [--hidden 256] [--repeats 200] [--threads 1 2]

Prints figures, asserts nothing. Both engines get the same number of intra-op threads:
one (the service's default, WARMZOO_ONNX_THREADS=1), then two (this machine's cores);
batch 1, 2 layers. The HTTP part runs a real `warmzoo serve` on 127.0.0.1 (its own
process: client and server do not share a GIL) and times two clients: httpx, and the
standard library's leaner http.client, which shows how much of a round trip is the client's;
and gRPC /v2 with two clients: tritonclient.grpc, and the bare generated stub.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from collections.abc import Callable

import grpc
import httpx
import numpy as np
import onnxruntime as ort
import torch
import tritonclient.grpc as grpcclient

from bench.server import local_server, publish
from tests.helpers.server import free_port
from warmzoo.models.network import Network, build_network
from warmzoo.models.onnx import ExportError, export_onnx
from warmzoo.models.spec import CELLS, RNNSpec
from warmzoo.service.api.grpc.protos import grpc_service_pb2 as pb
from warmzoo.service.api.grpc.protos.grpc_service_pb2_grpc import GRPCInferenceServiceStub


def timings(
    calls: dict[str, Callable[[], object]], repeats: int, rounds: int = 4, warmup: int = 5
) -> dict[str, list[float]]:
    """Wall seconds of each call, `repeats` times: in `rounds` blocks of consecutive calls per
    path, the paths taking turns block by block, so that machine noise hits all alike. Blocks,
    not alternate calls: an engine's threads spin for a while after each call (ONNX Runtime's
    pool, torch's OpenMP team) and took a core from the other engine's next call, which
    made torch's LSTM 1.9x slower (6.66 against 3.51 ms, 2 threads) and the ratios flattering."""
    out: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            for _ in range(warmup):
                call()
            for _ in range(max(1, repeats // rounds)):
                start = time.perf_counter()
                call()
                out[name].append(time.perf_counter() - start)
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def session(model: bytes, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def exported(args: argparse.Namespace) -> dict[str, tuple[Network, bytes]]:
    """Each cell's network and its model.onnx, exported (and parity-checked) once for every thread count."""
    graphs = {}
    for cell in CELLS:
        spec = RNNSpec(cell=cell, input_size=1, hidden_size=args.hidden, num_layers=2, output_size=1)
        network = build_network(spec, seed=0).eval()
        try:
            graphs[cell] = network, export_onnx(network)[0]
        except ExportError as refused:  # the export's parity check rejected the graph: nothing to time
            print(f"{cell:6} export refused: {refused}")
    return graphs


def engines(args: argparse.Namespace, graphs: dict[str, tuple[Network, bytes]], threads: int) -> None:
    torch.set_num_threads(threads)
    print(f"\nONNX Runtime vs PyTorch eager: batch 1, T={args.steps}, hidden {args.hidden}, 2 layers, {threads} thread(s)")
    print("torch = the network's forward (fused GRU/LSTM kernels; a Python time loop for the other cells);")
    print("step loop = the cell equations stepped one time step at a time from Python (network.step)")
    print(f"{'cell':6} {'torch ms':>9} {'step loop ms':>13} {'ort ms':>9} {'torch/ort':>10} {'loop/ort':>9}")
    for cell, (network, graph) in graphs.items():
        ort_session = session(graph, threads)
        x = np.random.default_rng(0).normal(size=(1, args.steps, 1)).astype(np.float32)
        state = np.zeros((2, 1, network.spec.state_size), dtype=np.float32)
        xt = torch.from_numpy(x)

        def eager() -> object:
            with torch.inference_mode():
                return network(xt)

        def step_loop() -> object:
            with torch.inference_mode():
                h, outputs = torch.from_numpy(state), []
                for t in range(args.steps):
                    y_t, h = network.step(xt[:, t], h)
                    outputs.append(y_t)
                return outputs

        calls = {"torch": eager, "loop": step_loop, "ort": lambda: ort_session.run(None, {"input": x, "state": state})}
        times = {name: statistics.median(t) for name, t in timings(calls, args.repeats).items()}
        t_torch, t_loop, t_ort = times["torch"], times["loop"], times["ort"]
        print(
            f"{cell:6} {1e3 * t_torch:9.3f} {1e3 * t_loop:13.3f} {1e3 * t_ort:9.3f}"
            f" {t_torch / t_ort:10.2f} {t_loop / t_ort:9.2f}"
        )


def through_server(args: argparse.Namespace) -> None:
    """A real `warmzoo serve` (every middleware, the auth and rate-limit guards, the registry
    resolver) against ONNX Runtime called directly on the same graph and input."""
    spec = RNNSpec(cell="gru", input_size=1, hidden_size=args.hidden, num_layers=2, output_size=1)
    x = np.random.default_rng(0).normal(size=(1, args.steps, 1)).astype(np.float32)
    body = {"id": "bench", "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    raw = json.dumps(body).encode()
    path = "/v2/models/bench/versions/1/infer"

    grpc_port = free_port()
    stub_request = pb.ModelInferRequest(model_name="bench", model_version="1", id="bench")
    stub_request.inputs.add(name="input", datatype="FP32", shape=x.shape)
    stub_request.raw_input_contents.append(x.tobytes())
    triton_input = grpcclient.InferInput("input", list(x.shape), "FP32")
    triton_input.set_data_from_numpy(x)

    with local_server(grpc_port=grpc_port) as url:
        publish(url, "bench", spec)
        onnx_bytes = httpx.get(f"{url}/v1/models/bench/versions/1/files/model.onnx").content
        direct = session(onnx_bytes)
        state = np.zeros((2, 1, spec.state_size), dtype=np.float32)
        host, port = url.removeprefix("http://").split(":")
        lean = http.client.HTTPConnection(host, int(port))  # keep-alive, as httpx's pool

        def with_httpx(client: httpx.Client) -> object:
            response = client.post(path, content=raw, headers={"Content-Type": "application/json"})
            response.raise_for_status()
            return response.json()

        def with_stdlib() -> object:
            lean.request("POST", path, body=raw, headers={"Content-Type": "application/json"})
            response = lean.getresponse()
            assert response.status == 200, response.read()
            return json.loads(response.read())

        with (
            httpx.Client(base_url=url, timeout=30) as client,
            grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}") as triton,
            grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
        ):
            stub = GRPCInferenceServiceStub(channel)
            calls = {
                "/v2 infer, httpx client": lambda: with_httpx(client),
                "/v2 infer, http.client (stdlib)": with_stdlib,
                "gRPC ModelInfer, tritonclient.grpc": lambda: triton.infer("bench", [triton_input], model_version="1"),
                "gRPC ModelInfer, generated stub": lambda: stub.ModelInfer(stub_request),
                "GET /v2/health/live, httpx client": lambda: client.get("/v2/health/live"),
                "ONNX Runtime session.run": lambda: direct.run(None, {"input": x, "state": state}),
            }
            # In blocks, as a server sees a stream of requests: interleaved, the client's own
            # ONNX Runtime runs would evict the server's weights from the caches.
            rows = timings(calls, args.repeats, warmup=20)
        lean.close()

    print(f"\nLatency through `warmzoo serve`, gru, batch 1, T={args.steps}, hidden {args.hidden}, 2 layers ({args.repeats} requests)")
    print(f"{'path':40} {'p50 ms':>8} {'p99 ms':>8}")
    for name, values in rows.items():
        print(f"{name:40} {1e3 * percentile(values, 50):8.3f} {1e3 * percentile(values, 99):8.3f}")
    base = percentile(rows["ONNX Runtime session.run"], 50)
    for name in rows:
        if "infer" in name or "Infer" in name:
            trip = percentile(rows[name], 50)
            print(f"{name}: the server and client add {1e3 * (trip - base):.3f} ms at p50 ({trip / base:.2f}x the direct call)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2], help="none: only the server part")
    args = parser.parse_args()
    graphs = exported(args)
    for threads in args.threads:
        engines(args, graphs, threads)
    torch.set_num_threads(1)
    through_server(args)


if __name__ == "__main__":
    main()

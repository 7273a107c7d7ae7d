"""Server memory under the two inference requests that cost the most per byte sent (issue 14).

    python -m bench.memory_budgets [--batch 100000] [--hidden 512] [--sequences 8]

A real `warmzoo serve` (no worker process) serves a fresh GRU 1 x `hidden` (input 1). Case
"one request": one anonymous request `[batch, 1, 1]` (a few hundred KiB of JSON) asking for
every output, the final state [1, batch, hidden] included. Case "open sequences":
`--sequences` sequences of batch `batch` started and left open (asking for `output` only, so
the state stays on the server). Each case runs on a fresh server and prints the API process's
resident memory (VmRSS) before and after and its peak (VmHWM), from /proc, with the answers'
statuses and error codes. Prints figures, asserts nothing; Linux only.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable

import httpx

from bench.server import publish, server_process
from warmzoo.models.spec import RNNSpec

MODEL = "gru-wide"


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of process `pid`, in MiB."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {name: int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM")}


def request(batch: int, **parameters: object) -> dict[str, object]:
    body: dict[str, object] = {"inputs": [{"name": "input", "shape": [batch, 1, 1], "datatype": "FP32", "data": [0.0] * batch}]}
    if parameters:
        body["parameters"] = parameters
        body["outputs"] = [{"name": "output"}]
    return body


def outcome(answer: httpx.Response) -> str:
    return str(answer.status_code) if answer.is_success else f"{answer.status_code} {answer.json().get('code')}"


def one_request(url: str, client: httpx.Client, args: argparse.Namespace) -> list[str]:
    return [outcome(client.post(f"{url}/v2/models/{MODEL}/versions/1/infer", json=request(args.batch)))]


def open_sequences(url: str, client: httpx.Client, args: argparse.Namespace) -> list[str]:
    return [
        outcome(
            client.post(
                f"{url}/v2/models/{MODEL}/versions/1/infer",
                json=request(args.batch, sequence_id=i + 1, sequence_start=True),
            )
        )
        for i in range(args.sequences)
    ]


def measure(name: str, case: Callable[[str, httpx.Client, argparse.Namespace], list[str]], args: argparse.Namespace) -> None:
    with server_process(WARMZOO_WORKERS="0") as (url, server), httpx.Client(timeout=600) as client:
        publish(url, MODEL, RNNSpec(cell="gru", input_size=1, hidden_size=args.hidden, num_layers=1))
        client.post(f"{url}/v2/models/{MODEL}/versions/1/infer", json=request(1)).raise_for_status()  # session loaded
        before = memory_mib(server.pid)
        answers = case(url, client, args)
        after = memory_mib(server.pid)
    counted = ", ".join(f"{n} x {status}" for status, n in Counter(answers).items())
    print(
        f"{name:<16} RSS before {before['VmRSS']:8.0f} MiB   after {after['VmRSS']:8.0f} MiB   "
        f"peak {after['VmHWM']:8.0f} MiB   answers: {counted}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--sequences", type=int, default=8)
    args = parser.parse_args()
    print(f"GRU 1 x {args.hidden}, batch {args.batch}, 1 step")
    measure("one request", one_request, args)
    measure("open sequences", open_sequences, args)


if __name__ == "__main__":
    main()

"""Warm-up and measure jobs on CUDA through the real service, beside the same jobs on the CPU.

    python bench/cuda_job.py [--cells gru,lstm,brc] [--hidden 128] [--steps 100]

The check prepared for a machine with a GPU: a real `warmzoo serve` (embedded worker
process, pinned to the GPU by CUDA_VISIBLE_DEVICES), and through HTTP, per cell, a warm-up
job with `device: cuda` and the same job with `device: cpu`, each followed by a measure job
on its own device. Each published version must record the device it ran on, and its
weights must download intact (sha256 = ETag); the table gives each job's time and VAA.
The devices round differently, so the two VAA figures may differ by a few attractors (1/32
each). Exits non-zero when a job fails or a check does not hold; exits with a message where
torch sees no GPU.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from typing import Any

import torch

from bench.server import local_server
from warmzoo.service.cli.client import Client


def finished(client: Client, job: dict[str, Any]) -> dict[str, Any]:
    """The job once it has ended; one that did not succeed ends the run."""
    for _ in client.follow(job["id"]):
        pass
    job = client.job(job["id"])
    if job["status"] != "succeeded":
        sys.exit(f"job {job['id']} ({job['kind']}) {job['status']}: {job.get('error')}")
    return job


def warm_and_measure(client: Client, cell: str, device: str, args: argparse.Namespace) -> dict[str, Any]:
    name = f"{cell}-{device}"
    body = {
        "name": name,
        "spec": {"cell": cell, "input_size": 1, "hidden_size": args.hidden, "num_layers": 2},
        "data": {"task": "copy_first_input", "seq_length": args.seq_length, "num_samples": 512},
        "warmup": {"steps": args.steps},
        "seed": 0,
        "device": device,
    }
    started = time.perf_counter()
    job = finished(client, client.submit_warmup(body))
    warmup_s = time.perf_counter() - started
    version = client.version(name, str(job["result"]["version"]))
    if not version["device"].startswith(device):
        sys.exit(f"{name}: the version records device {version['device']!r}, not {device!r}")
    files = {f["name"]: f["sha256"] for f in version["files"]}
    with client.http.stream("GET", f"/v1/models/{name}/versions/1/files/weights.safetensors") as answer:
        digest = hashlib.sha256(answer.read()).hexdigest()
    if digest != files["weights.safetensors"]:
        sys.exit(f"{name}: downloaded weights hash to {digest}, the registry says {files['weights.safetensors']}")
    started = time.perf_counter()
    measure = finished(client, client.submit_measure(name, "1", {"repeats": 1, "device": device}))
    if not measure["result"]["device"].startswith(device):
        sys.exit(f"{name}: the measure job ran on {measure['result']['device']!r}")
    return {
        "recorded": version["device"],
        "warmup_s": warmup_s,
        "in_warmup_s": version["seconds"],
        "vaa_before": version["metrics"]["vaa_before"],
        "vaa_after": version["metrics"]["vaa_after"],
        "measured": measure["result"]["vaa"],
        "measure_s": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="gru,lstm,brc")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seq-length", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--vaa-steps", type=int, default=2000)
    parser.add_argument("--devices", default="cuda,cpu", help="cpu alone checks the script on a machine without GPU")
    args = parser.parse_args()
    devices = args.devices.split(",")
    if "cuda" in devices and not torch.cuda.is_available():
        sys.exit("no CUDA device visible to torch: run this on a machine with a GPU (and torch's CUDA build)")
    threads = str(os.cpu_count() or 1)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(f"GPU: {gpu}; CPU jobs: {threads} threads; torch {torch.__version__}")
    print(f"2 x {args.hidden}, copy_first_input T={args.seq_length}, {args.steps} steps, VAA S={args.vaa_steps}")
    print(f"{'cell':5} {'device':7} {'job s':>6} {'warm-up s':>9} {'VAA before':>10} {'after':>6} {'measured':>8}")
    env = {"OMP_NUM_THREADS": threads, "WARMZOO_VAA_STEPS": str(args.vaa_steps)}
    with local_server(**env) as url, Client(url, timeout=600) as client:
        for cell in args.cells.split(","):
            rows = {device: warm_and_measure(client, cell, device, args) for device in devices}
            for r in rows.values():
                print(
                    f"{cell:5} {r['recorded']:7} {r['warmup_s']:6.1f} {r['in_warmup_s']:9.2f}"
                    f" {r['vaa_before']:10.3f} {r['vaa_after']:6.3f} {r['measured']:8.3f}"
                )
            if len(rows) == 2:
                speedup = rows["cpu"]["in_warmup_s"] / rows["cuda"]["in_warmup_s"]
                print(f"{cell:5} warm-up steps on CUDA {speedup:.1f}x the CPU's speed")
    print(f"all jobs succeeded on the device they asked for ({args.devices}); weights downloaded intact")


if __name__ == "__main__":
    main()

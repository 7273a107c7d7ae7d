"""A newcomer's clock: from `make serve` on a clone to the server listening, to each starter model
browsable, and when a user job submitted right after start-up starts running.

    python3 bench/starters.py [--port 8800] [--data-dir /tmp/starters-data]

Runs `make serve` in this checkout (so `make install` must have run), submits the docs' 2 x 64 GRU
warm-up the moment the server listens, polls /v1/models and the job every second, prints the
seconds, then stops the server. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STARTERS = 6
USER_JOB = {
    "name": "my-first-gru",
    "spec": {"cell": "gru", "input_size": 1, "hidden_size": 64, "num_layers": 2},
    "data": {"task": "copy_first_input", "seq_length": 100, "num_samples": 256},
    "device": "cpu",
}


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def _submit(url: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/v1/warmups", data=json.dumps(USER_JOB).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8800)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/starters-data"))
    parser.add_argument("--give-up-s", type=float, default=900)
    args = parser.parse_args()
    shutil.rmtree(args.data_dir, ignore_errors=True)
    url = f"http://127.0.0.1:{args.port}"
    started = time.time()
    server = subprocess.Popen(
        ["make", "serve", f"PORT={args.port}", f"DATA_DIR={args.data_dir}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        while True:
            try:
                _get(f"{url}/healthz")
                break
            except OSError:
                time.sleep(0.2)
        listening = time.time()
        print(f"listening {listening - started:.1f} s after make serve", flush=True)
        job = _submit(url)
        print(f"user job submitted {time.time() - listening:.1f} s after listening, queue {job.get('queue')}")
        seen: dict[str, float] = {}
        job_started = None
        while (len(seen) < STARTERS or job_started is None) and time.time() - listening < args.give_up_s:
            for model in _get(f"{url}/v1/models?limit=100")["items"]:
                if model["name"].startswith("starter-") and model["name"] not in seen:
                    seen[model["name"]] = time.time() - listening
                    print(f"{model['name']} browsable {seen[model['name']]:.1f} s after listening", flush=True)
            if job_started is None and _get(f"{url}/v1/jobs/{job['id']}")["status"] != "queued":
                job_started = time.time() - listening
                print(f"user job started {job_started:.1f} s after listening", flush=True)
            time.sleep(1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()

"""A small HTTP client of a warmzoo server, for the command line: submit and follow jobs, list
the zoo, download files that verify themselves, run inference.

Downloads are written to a temporary file beside the target and renamed only once their
sha256 matches the server's ETag, so a failed or corrupt download never leaves a file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

DEFAULT_SERVER = "http://127.0.0.1:8000"
TERMINAL = ("succeeded", "failed", "canceled")
PAGE = 100
Event = tuple[str, dict[str, Any]]


class ClientError(RuntimeError):
    """The server refused a request (the message is its error body's) or could not be reached."""


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


def parse_ref(ref: str) -> tuple[str, str]:
    """`name[:version]` -> (name, version or "latest"); model names never contain ':'."""
    name, _, version = ref.partition(":")
    return name, version or "latest"


class Client:
    def __init__(self, server: str = DEFAULT_SERVER, timeout: float = 120.0, api_key: str | None = None) -> None:
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.server, timeout=timeout, headers=headers)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach {self.server}: {exc}; is `warmzoo serve` running there?") from exc
        if response.is_error:
            raise ClientError(_message(response))
        return response.json()

    def submit_warmup(self, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", "/v1/warmups", json=body, headers=headers)

    def submit_measure(self, name: str, version: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", f"/v1/models/{name}/versions/{version}/measure", json=body)

    def submit_compare(self, name: str, version: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", f"/v1/models/{name}/versions/{version}/compare", json=body)

    def job(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/jobs/{job_id}")

    def events(self, job_id: str) -> Iterator[Event]:
        """The job's server-sent events, as (event name, JSON data), until the server closes the stream."""
        timeout = httpx.Timeout(self.http.timeout.connect, read=None)
        with self.http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=timeout) as response:
            if response.is_error:
                response.read()
                raise ClientError(_message(response))
            name, data = "message", []
            for line in response.iter_lines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    yield name, json.loads("\n".join(data))
                    name, data = "message", []

    def follow(self, job_id: str) -> Iterator[Event]:
        """Events until the job has ended; a dropped stream is picked up again."""
        while True:
            try:
                for name, data in self.events(job_id):
                    yield name, data
                    if name == "status" and data["status"] in TERMINAL:
                        return
            except httpx.TransportError:
                time.sleep(1.0)
            job = self.job(job_id)
            if job["status"] in TERMINAL:
                yield "status", job
                return

    def _all(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self._request("GET", path, params={**(params or {}), "limit": PAGE, "offset": len(items)})
            items += page["items"]
            if not page["items"] or len(items) >= page["total"]:
                return items

    def jobs(self, status: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The newest `limit` jobs (in `status`, when given)."""
        params = {"limit": limit, **({"status": status} if status else {})}
        return self._request("GET", "/v1/jobs", params=params)["items"]

    def models(self, **filters: Any) -> list[dict[str, Any]]:
        return self._all("/v1/models", {k: v for k, v in filters.items() if v is not None})

    def versions(self, name: str) -> list[dict[str, Any]]:
        return self._all(f"/v1/models/{name}/versions")

    def version(self, name: str, version: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/models/{name}/versions/{version}")

    def download(self, name: str, version: str, file: str, out_dir: Path) -> Path:
        """Save one file of a version into `out_dir`, verified against its ETag (the sha256)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        with self.http.stream("GET", f"/v1/models/{name}/versions/{version}/files/{file}") as response:
            if response.is_error:
                response.read()
                raise ClientError(_message(response))
            expected = response.headers.get("etag", "").removeprefix("W/").strip('"')
            digest = hashlib.sha256()
            fd, temp = tempfile.mkstemp(dir=out_dir, prefix=f".{file}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f:
                    for chunk in response.iter_bytes():
                        digest.update(chunk)
                        f.write(chunk)
                if digest.hexdigest() != expected:
                    raise ClientError(
                        f"{file}: the bytes received hash to {digest.hexdigest()}, not to the server's ETag"
                        f" {expected or '(none)'}; the download is corrupt, try again"
                    )
                target = out_dir / file
                os.replace(temp, target)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        return target

    def infer(self, name: str, version: str | None, inputs: np.ndarray) -> dict[str, Any]:
        """Run a batch [batch, time, input_size] through the Open Inference Protocol endpoint."""
        path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"
        tensor = {"name": "input", "shape": list(inputs.shape), "datatype": "FP32", "data": inputs.ravel().tolist()}
        return self._request("POST", path, json={"inputs": [tensor]})

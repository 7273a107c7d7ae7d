"""A small HTTP client of a warmzoo server, for the command line: submit and follow jobs, list
the zoo, download files that verify themselves, run inference.

Downloads are written to a temporary file beside the target and renamed only once their
sha256 matches the server's ETag, so a failed or corrupt download never leaves a file behind;
an existing file is replaced only when asked to. numpy and torch are never imported here:
the verbs that only list or download start in a fraction of a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import numpy as np

DEFAULT_SERVER = "http://127.0.0.1:8000"
TERMINAL = ("succeeded", "failed", "canceled")
PAGE = 100
FILE_MODE = 0o644  # downloads are ordinary files, readable by others like any file a user writes
Event = tuple[str, dict[str, Any]]


class ClientError(RuntimeError):
    """The server refused a request (the message is its error body's) or could not be reached."""


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


def _refuse_existing(targets: Sequence[Path], force: bool) -> None:
    existing = [str(t) for t in targets if t.exists() and not (t.is_dir() and not any(t.iterdir()))]
    if existing and not force:
        raise ClientError(f"{existing[0]} exists; pass --force to overwrite it, or choose another --out")


def _place(data_file: str, target: Path) -> None:
    """Move a finished temporary file onto its target, with the mode of an ordinary file."""
    os.chmod(data_file, FILE_MODE)
    os.replace(data_file, target)


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

    def _fetch(self, name: str, version: str, file: str, out_dir: Path) -> str:
        """One file of a version, streamed into a temporary file in `out_dir` and verified against
        its ETag (the sha256); returns the temporary file's path."""
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
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        return temp

    def download(self, name: str, version: str, file: str, out_dir: Path, force: bool = False) -> Path:
        """Save one file of a version as `out_dir/file`, verified; an existing file only with `force`."""
        target = out_dir / file
        _refuse_existing([target], force)
        _place(self._fetch(name, version, file, out_dir), target)
        return target

    def download_unpacked(self, name: str, version: str, file: str, folder: Path, force: bool = False) -> Path:
        """Unpack a zip file of a version (verified first) into `folder`; an existing folder only with `force`."""
        _refuse_existing([folder], force)
        temp = self._fetch(name, version, file, folder)
        try:
            with zipfile.ZipFile(temp) as archive:
                for member in archive.namelist():
                    if Path(member).name != member or member.startswith("."):  # a flat folder, nothing else
                        raise ClientError(f"{file}: unexpected member {member!r}; not unpacking it")
                    fd, part = tempfile.mkstemp(dir=folder, prefix=f".{member}.", suffix=".part")
                    try:
                        with os.fdopen(fd, "wb") as f:
                            f.write(archive.read(member))
                        _place(part, folder / member)
                    except BaseException:
                        Path(part).unlink(missing_ok=True)
                        raise
        finally:
            Path(temp).unlink(missing_ok=True)
        return folder

    def infer(self, name: str, version: str | None, inputs: np.ndarray) -> dict[str, Any]:
        """Run a batch [batch, time, input_size] through the Open Inference Protocol endpoint."""
        path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"
        tensor = {"name": "input", "shape": list(inputs.shape), "datatype": "FP32", "data": inputs.ravel().tolist()}
        return self._request("POST", path, json={"inputs": [tensor]})

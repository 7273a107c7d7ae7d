"""Who may call a route is decided from the headers and the path before its body is read: an
anonymous 192 MB upload is refused after none of it was received (before: all of it, then 401)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.helpers.factories import tiny_spec, tiny_weights
from warmzoo.service.api.app import create_app
from warmzoo.service.core.config import Settings
from warmzoo.service.registry.db import make_engine, session_factory, upgrade_database
from warmzoo.service.security import auth

MiB = 1024 * 1024
UPLOAD_MIB = 192
MULTIPART = {"content-type": "multipart/form-data; boundary=b0undary"}


class Body:
    """A large request body made on demand, counting what the server pulled of it."""

    def __init__(self, mib: int) -> None:
        self.mib, self.sent = mib, 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.mib):
            self.sent += 1
            yield b"\0" * MiB


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, dict[str, str]]:
    settings = Settings(data_dir=tmp_path, auth="on")
    upgrade_database(settings)
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        made = {who: auth.create_key(session, who, scope)[1] for who, scope in
                (("alice", "write"), ("bob", "write"), ("reader", "read"))}  # fmt: skip
    engine.dispose()
    return {who: {"Authorization": f"Bearer {key}"} for who, key in made.items()}


@pytest.fixture
def api(tmp_path: Path, keys: dict[str, dict[str, str]]) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path, auth="on", rate_limit_per_s=0))) as client:
        files = {"weights": ("w.safetensors", tiny_weights())}
        data = {"spec": tiny_spec().model_dump_json()}
        published = client.post("/v1/models/alices/versions", files=files, data=data, headers=keys["alice"])
        assert published.status_code == 201, published.text
        yield client


@pytest.mark.parametrize(
    ("path", "who", "status", "code"),
    [
        ("/v1/models/new/versions", None, 401, "no_key"),
        ("/v1/datasets", None, 401, "no_key"),
        ("/v1/models/new/versions", "reader", 403, "insufficient_scope"),
        ("/v1/models/alices/versions", "bob", 403, "not_owner"),
    ],
)
def test_an_upload_is_refused_before_its_body_is_read(
    api: TestClient, keys: dict[str, dict[str, str]], path: str, who: str | None, status: int, code: str
) -> None:
    body = Body(UPLOAD_MIB)
    answer = api.post(path, content=body, headers={**MULTIPART, **(keys[who] if who else {})})
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code
    assert body.sent == 0, f"{body.sent} MiB of the body were read before the {status}"


def test_a_refused_job_request_is_not_parsed(api: TestClient, keys: dict[str, dict[str, str]]) -> None:
    """An anonymous warm-up is refused before its JSON is read."""
    body = Body(4)
    answer = api.post("/v1/warmups", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 401 and body.sent == 0


def test_an_allowed_upload_is_still_read_whole(api: TestClient, keys: dict[str, dict[str, str]]) -> None:
    files = {"weights": ("w.safetensors", tiny_weights())}
    data = {"spec": tiny_spec().model_dump_json()}
    answer = api.post("/v1/models/alices/versions", files=files, data=data, headers=keys["alice"])
    assert answer.status_code == 201 and answer.json()["version"] == 2

"""API keys over HTTP with auth on: 401 versus 403, revocation, ownership, admins, anonymous reads."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests.helpers.factories import tiny_spec, tiny_weights
from tests.helpers.payloads import warmup
from warmzoo.service.api.app import create_app
from warmzoo.service.core.config import Settings
from warmzoo.service.jobs.worker import Worker
from warmzoo.service.registry.db import make_engine, session_factory, upgrade_database
from warmzoo.service.security import auth

Keys = dict[str, str]


@pytest.fixture
def secure(settings: Settings) -> Settings:
    return settings.model_copy(update={"auth": "on", "vaa_steps": 20, "vaa_repeats": 1, "max_hidden_size": 64})


def _with_session(settings: Settings, act: Callable[[Any], Any]) -> Any:
    upgrade_database(settings)
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            return act(session)
    finally:
        engine.dispose()


@pytest.fixture
def keys(secure: Settings) -> Keys:
    """One key per role: two writers who own models, a reader and an admin."""
    roles = {"alice": "write", "bob": "write", "carol": "read", "root": "admin"}
    return {
        owner: _with_session(secure, lambda s, o=owner, r=role: auth.create_key(s, o, r)[1])  # type: ignore[misc]
        for owner, role in roles.items()
    }


@pytest.fixture
def api(secure: Settings, keys: Keys) -> Iterator[TestClient]:
    with TestClient(create_app(secure)) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def upload(api: TestClient, name: str, key: str | None) -> Response:
    files = {"weights": ("w.safetensors", tiny_weights())}
    data = {"spec": tiny_spec().model_dump_json()}
    return api.post(f"/v1/models/{name}/versions", data=data, files=files, headers=bearer(key) if key else {})


def refused(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "field", "code"} and body["code"] == code, body
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    else:
        assert "www-authenticate" not in response.headers
    return body


def test_anonymous_requests_read_but_every_write_needs_a_key(api: TestClient, keys: Keys) -> None:
    assert upload(api, "mine", keys["alice"]).status_code == 201
    assert api.get("/v1/models").json()["total"] == 1
    assert api.get("/v1/models/mine/versions/1/files/weights.safetensors").status_code == 200
    x = {"inputs": [{"name": "input", "shape": [1, 2, 2], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]}]}
    assert api.post("/v2/models/mine/infer", json=x).status_code == 200
    writes = [
        upload(api, "mine", None),
        upload(api, "yours", None),
        api.post("/v1/warmups", json=warmup("w")),
        api.post("/v1/datasets", files={"file": ("d.npy", b"x")}),
        api.put("/v1/models/mine/aliases/prod", json={"version": 1}),
        api.delete("/v1/models/mine/aliases/prod"),
        api.post("/v1/models/mine/tags", json={"tags": ["t"]}),
        api.delete("/v1/models/mine/tags/t"),
        api.patch("/v1/models/mine", json={"description": "x"}),
        api.post("/v1/models/mine/versions/1/measure"),
        api.post("/v1/models/mine/versions/1/export"),
    ]
    for answer in writes:
        assert "Authorization: Bearer" in refused(answer, 401, "no_key")["error"]
    assert api.get("/v1/models/mine").json()["tags"] == [] and api.get("/v1/datasets").json()["total"] == 0


@pytest.mark.parametrize(
    "header",
    ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer wz_000000000000_" + "A" * 43, "Bearer not-a-key", "Bearer  "],
)
def test_a_malformed_or_unknown_key_is_a_401_even_for_reads(api: TestClient, header: str) -> None:
    answer = api.get("/v1/models", headers={"Authorization": header})
    refused(answer, 401, "invalid_key")
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


def test_a_key_whose_secret_is_wrong_is_refused(api: TestClient, keys: Keys) -> None:
    forged = keys["alice"][:-4] + ("AAAA" if not keys["alice"].endswith("AAAA") else "BBBB")
    refused(upload(api, "mine", forged), 401, "invalid_key")


def test_a_read_key_cannot_write(api: TestClient, keys: Keys) -> None:
    body = refused(upload(api, "mine", keys["carol"]), 403, "insufficient_scope")
    assert "read" in body["error"] and "write" in body["error"]
    refused(api.post("/v1/warmups", json=warmup("w"), headers=bearer(keys["carol"])), 403, "insufficient_scope")
    assert api.get("/v1/models", headers=bearer(keys["carol"])).status_code == 200


def test_revocation_takes_effect_at_once(api: TestClient, keys: Keys, secure: Settings) -> None:
    assert upload(api, "mine", keys["alice"]).status_code == 201
    key_id = keys["alice"].split("_")[1]
    _with_session(secure, lambda session: auth.revoke_key(session, key_id))
    assert key_id in refused(upload(api, "mine", keys["alice"]), 401, "revoked_key")["error"]
    refused(api.get("/v1/models", headers=bearer(keys["alice"])), 401, "revoked_key")
    assert api.get("/v1/models/mine/versions").json()["total"] == 1


def test_a_name_belongs_to_its_first_publisher(api: TestClient, keys: Keys) -> None:
    alice, bob = bearer(keys["alice"]), bearer(keys["bob"])
    assert upload(api, "alices", keys["alice"]).status_code == 201
    assert api.get("/v1/models/alices").json()["owner"] == "alice"
    attempts = [
        upload(api, "alices", keys["bob"]),
        api.post("/v1/warmups", json=warmup("alices"), headers=bob),
        api.put("/v1/models/alices/aliases/prod", json={"version": 1}, headers=bob),
        api.post("/v1/models/alices/tags", json={"tags": ["bobs"]}, headers=bob),
        api.patch("/v1/models/alices", json={"description": "bob was here"}, headers=bob),
    ]
    for answer in attempts:
        assert "belongs to alice" in refused(answer, 403, "not_owner")["error"]
    assert api.put("/v1/models/alices/aliases/prod", json={"version": 1}, headers=alice).status_code == 200
    assert api.post("/v1/models/alices/tags", json={"tags": ["t"]}, headers=alice).status_code == 200
    refused(api.delete("/v1/models/alices/aliases/prod", headers=bob), 403, "not_owner")
    refused(api.delete("/v1/models/alices/tags/t", headers=bob), 403, "not_owner")
    model = api.get("/v1/models/alices").json()
    assert (model["description"], model["tags"], list(model["aliases"])) == ("", ["t"], ["latest", "prod"])
    assert api.get("/v1/models/alices/versions").json()["total"] == 1
    assert upload(api, "bobs", keys["bob"]).status_code == 201  # other names are free
    refused(api.put("/v1/models/nothing/aliases/prod", json={"version": 1}, headers=alice), 404, "model_not_found")


def test_an_admin_may_change_any_model_which_keeps_its_owner(api: TestClient, keys: Keys) -> None:
    root = bearer(keys["root"])
    assert upload(api, "alices", keys["alice"]).status_code == 201
    assert upload(api, "alices", keys["root"]).status_code == 201
    assert api.put("/v1/models/alices/aliases/prod", json={"version": 1}, headers=root).status_code == 200
    assert api.delete("/v1/models/alices/aliases/prod", headers=root).status_code == 204
    model = api.get("/v1/models/alices").json()
    assert model["owner"] == "alice" and model["aliases"]["latest"] == 2
    assert upload(api, "alices", keys["alice"]).status_code == 201  # still alice's


def test_a_warmup_publishes_as_its_submitter_and_only_they_cancel_it(
    api: TestClient, keys: Keys, secure: Settings
) -> None:
    alice, bob = bearer(keys["alice"]), bearer(keys["bob"])
    job = api.post("/v1/warmups", json=warmup("warm"), headers=alice).json()
    assert job["request"]["owner"] == "alice"
    refused(api.post(f"/v1/jobs/{job['id']}/cancel", headers=bob), 403, "not_owner")
    Worker(secure).run_once()
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"
    assert api.get("/v1/models/warm").json()["owner"] == "alice"
    queued = api.post("/v1/warmups", json=warmup("warm"), headers=alice).json()
    assert api.post(f"/v1/jobs/{queued['id']}/cancel", headers=alice).json()["status"] == "canceled"
    other = api.post("/v1/warmups", json=warmup("warm-2"), headers=alice).json()
    assert api.post(f"/v1/jobs/{other['id']}/cancel", headers=bearer(keys["root"])).status_code == 200


def test_a_name_taken_while_a_job_waits_fails_that_job(api: TestClient, keys: Keys, secure: Settings) -> None:
    job = api.post("/v1/warmups", json=warmup("contested"), headers=bearer(keys["bob"])).json()
    assert upload(api, "contested", keys["alice"]).status_code == 201  # alice publishes the name first
    Worker(secure).run_once()
    done = api.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "failed" and done["error"]["code"] == "not_owner", done
    assert api.get("/v1/models/contested/versions").json()["total"] == 1


def test_an_idempotency_key_is_not_shared_across_owners(api: TestClient, keys: Keys) -> None:
    """Keys are per owner: another owner's same key is a new job of theirs, neither a replay of
    the first owner's job (before: shared) nor a conflict that lets one owner block another."""
    headers = {**bearer(keys["alice"]), "Idempotency-Key": "k1"}
    first = api.post("/v1/warmups", json=warmup("a"), headers=headers)
    assert first.status_code == 202
    assert api.post("/v1/warmups", json=warmup("a"), headers=headers).json()["id"] == first.json()["id"]
    bobs = api.post("/v1/warmups", json=warmup("b"), headers={**bearer(keys["bob"]), "Idempotency-Key": "k1"})
    assert bobs.status_code == 202 and bobs.json()["id"] != first.json()["id"], bobs.text
    assert "Idempotent-Replayed" not in bobs.headers
    refused(api.post("/v1/warmups", json=warmup("c"), headers=headers), 409, "idempotency_conflict")


def test_without_anonymous_reads_every_request_needs_a_key(secure: Settings, keys: Keys) -> None:
    with TestClient(create_app(secure.model_copy(update={"anonymous_read": False}))) as api:
        for path in ("/v1/models", "/v1/jobs", "/v1/datasets", "/v2/models/x"):
            refused(api.get(path), 401, "no_key")
        assert api.get("/v1/models", headers=bearer(keys["carol"])).status_code == 200
        for probe in ("/healthz", "/v2/health/live", "/v2/health/ready"):  # probes stay open
            assert api.get(probe).status_code == 200


def test_with_auth_off_no_key_is_needed_and_none_is_checked(settings: Settings) -> None:
    with TestClient(create_app(settings)) as api:
        headers = {"Authorization": "Bearer whatever"}
        answer = api.post(
            "/v1/models/open/versions",
            data={"spec": tiny_spec().model_dump_json()},
            files={"weights": ("w.safetensors", tiny_weights())},
            headers=headers,
        )
        assert answer.status_code == 201 and answer.json()["name"] == "open"
        assert api.get("/v1/models/open").json()["owner"] is None


def test_openapi_declares_the_bearer_scheme(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    responses = schema["paths"]["/v1/warmups"]["post"]["responses"]
    assert {"401", "403", "429"} <= set(responses)


KEYED = [{"HTTPBearer": []}]
OPTIONAL = [{}, {"HTTPBearer": []}]  # OpenAPI's optional security: no requirement, or the key


def _security(app_settings: Settings) -> dict[tuple[str, str], list[dict[str, list[str]]] | None]:
    paths = create_app(app_settings).openapi()["paths"]
    return {(method, path): op.get("security") for path, ops in paths.items() for method, op in ops.items()}


def test_openapi_marks_the_key_optional_where_none_is_needed(secure: Settings, settings: Settings) -> None:
    """Reads and inference are anonymous by default: the document must not say they need a key."""
    security = _security(secure)
    for read in [("get", "/v1/models"), ("get", "/v1/models/{name}"), ("post", "/v2/models/{name}/infer")]:
        assert security[read] == OPTIONAL, read
    for write in [("post", "/v1/warmups"), ("put", "/v1/models/{name}/aliases/{alias}"), ("post", "/v1/datasets")]:
        assert security[write] == KEYED, write
    assert security[("get", "/healthz")] is None  # probes are open: no scheme at all

    no_anonymous = _security(secure.model_copy(update={"anonymous_read": False}))
    assert all(value in (None, KEYED) for value in no_anonymous.values())
    auth_off = _security(settings)
    assert all(value in (None, OPTIONAL) for value in auth_off.values())
    assert auth_off[("post", "/v1/warmups")] == OPTIONAL


@pytest.mark.parametrize(
    ("auth_setting", "host", "resolved", "warned"),
    [
        ("auto", "127.0.0.1", "off", True),
        ("auto", "localhost", "off", True),
        ("auto", "::1", "off", True),
        ("auto", "0.0.0.0", "on", False),
        ("auto", "zoo.example.org", "on", False),
        ("on", "127.0.0.1", "on", False),
        ("off", "0.0.0.0", "off", False),
    ],
)
def test_serve_resolves_auto_by_its_address(
    caplog: pytest.LogCaptureFixture, auth_setting: str, host: str, resolved: str, warned: bool
) -> None:
    with caplog.at_level(logging.WARNING, logger="warmzoo.service.security.auth"):
        settings = auth.resolve_auth(Settings(auth=auth_setting), host)  # type: ignore[arg-type]
    assert settings.auth == resolved
    assert any("auth is OFF" in r.getMessage() for r in caplog.records) is warned


def test_an_app_treats_unresolved_auto_as_on(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"auth": "auto"}))) as api:
        refused(api.post("/v1/warmups", json=warmup("w")), 401, "no_key")

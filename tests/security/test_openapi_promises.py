"""The OpenAPI document states what the server enforces, so that a request valid by the schema is
not refused for a rule the schema kept quiet about (found by `schemathesis --checks all`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from warmzoo.service.api.app import create_app
from warmzoo.service.core.config import Settings


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, auth="off", rate_limit_per_s=0, max_page_size=50)
    with TestClient(create_app(settings)) as client:
        yield client


def _parameters(document: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [p for ops in document["paths"].values() for op in ops.values() for p in op.get("parameters", [])
            if p["name"] == name]  # fmt: skip


def test_an_undocumented_method_is_a_405_that_lists_every_documented_one(api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        concrete = path.replace("{", "").replace("}", "")  # any value matches a path parameter
        answer = api.options(concrete)
        assert answer.status_code == 405, (path, answer.text)
        allowed = {method.strip().lower() for method in answer.headers["allow"].split(",")}
        assert set(operations) <= allowed <= set(operations) | {"head"}, (path, answer.headers["allow"])


def test_the_page_size_limit_is_in_the_schema(api: TestClient) -> None:
    limits = _parameters(api.get("/openapi.json").json(), "limit")
    assert limits and all(p["schema"]["maximum"] == 50 for p in limits)
    assert api.get("/v1/models", params={"limit": 50}).status_code == 200
    assert api.get("/v1/models", params={"limit": 51}).status_code == 422


def test_the_idempotency_key_rule_is_in_the_schema(api: TestClient) -> None:
    keys = _parameters(api.get("/openapi.json").json(), "Idempotency-Key")
    assert keys
    for key in keys:
        schema = next(s for s in key["schema"].get("anyOf", [key["schema"]]) if s.get("type") == "string")
        assert (schema["minLength"], schema["maxLength"]) == (1, 200) and schema["pattern"]
    refused = api.post("/v1/models/x/versions/1/export", headers={"Idempotency-Key": "x" * 201})
    assert refused.status_code == 422 and refused.json()["field"] == "Idempotency-Key", refused.text


def test_uploaded_files_are_binary_in_the_schema(api: TestClient) -> None:
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    files = [field for body in schemas.values() for name, field in body.get("properties", {}).items()
             if name in ("weights", "file") and body["title"].startswith("Body_")]  # fmt: skip
    assert len(files) == 2 and all(field["format"] == "binary" for field in files)

"""The `/v1/models` API through HTTP, on SQLite and on PostgreSQL (same tests, both backends)."""

from __future__ import annotations

import hashlib
import json
import re
import runpy
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from safetensors.torch import save as save_safetensors
from sqlalchemy.exc import DataError

from tests.helpers.factories import tiny_spec, tiny_weights
from warmzoo.models.weights import read_safetensors
from warmzoo.service.api.app import create_app
from warmzoo.service.api.routes import models as models_routes
from warmzoo.service.core.config import Settings

Upload = Callable[..., Response]
FILES = [
    "weights.safetensors", "state_dict.pt", "model.onnx", "cell.onnx", "torch.safetensors", "modeling.py", "hf.zip",
    "README.md",
]  # fmt: skip


def assert_error(response: Response, status: int, field: str | None, *words: str) -> dict:
    """Every error is JSON {"error", "field", "code"} with a message that names the field."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "field", "code"}
    assert body["field"] == field and re.fullmatch(r"[a-z0-9_]+", body["code"])
    for word in (field, *words) if field else words:
        assert word in body["error"], body
    return body


def test_health(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_publish_then_get(upload: Upload, client: TestClient) -> None:
    response = upload("gru-tiny", description="A tiny GRU.")
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/v1/models/gru-tiny/versions/1"
    body = response.json()
    for key in ("name", "version", "spec", "warmup", "data", "metrics", "files", "sha256", "created_at"):
        assert key in body
    assert (body["name"], body["version"], body["spec"]) == ("gru-tiny", 1, tiny_spec().model_dump(mode="json"))
    assert body["metrics"] == {"vaa_before": None, "vaa_after": None, "vaa_star_history": []}
    assert [f["name"] for f in body["files"]] == FILES
    assert all(set(f) >= {"name", "sha256", "size"} for f in body["files"])
    assert body["aliases"] == ["latest"] and body["base"] is None
    assert client.get("/v1/models/gru-tiny/versions/1").json() == body
    assert client.get("/v1/models/gru-tiny/versions/latest").json() == body
    model = client.get("/v1/models/gru-tiny").json()
    assert model["description"] == "A tiny GRU." and model["versions"] == 1 and model["aliases"] == {"latest": 1}


def test_versions_are_numbered_immutable_and_latest_moves(upload: Upload, client: TestClient) -> None:
    first = upload("m", weights=tiny_weights(seed=1)).json()
    second = upload("m", weights=tiny_weights(seed=2)).json()
    assert (first["version"], second["version"]) == (1, 2) and first["sha256"] != second["sha256"]
    assert client.get("/v1/models/m/versions/1").json()["sha256"] == first["sha256"]
    assert client.get("/v1/models/m/versions/latest").json()["version"] == 2
    listing = client.get("/v1/models/m/versions").json()
    assert [v["version"] for v in listing["items"]] == [1, 2] and listing["total"] == 2
    same = upload("m", weights=tiny_weights(seed=1)).json()  # same bytes: a new version, same content address
    assert same["version"] == 3 and same["sha256"] == first["sha256"]


def test_file_downloads_verify_against_their_sha256(upload: Upload, client: TestClient) -> None:
    upload("files")
    for name in FILES:
        response = client.get(f"/v1/models/files/versions/1/files/{name}")
        assert response.status_code == 200, response.text
        digest = hashlib.sha256(response.content).hexdigest()
        assert response.headers["etag"] == f'"{digest}"'
        assert int(response.headers["content-length"]) == len(response.content)
    listed = {f["name"]: f for f in client.get("/v1/models/files/versions/1").json()["files"]}
    for name in FILES:  # derived files are now produced and listed with their hash
        content = client.get(f"/v1/models/files/versions/1/files/{name}").content
        assert listed[name]["sha256"] == hashlib.sha256(content).hexdigest() and listed[name]["size"] == len(content)
    assert client.get("/v1/models/files/versions/1/files/README.md").headers["content-type"].startswith("text/markdown")
    assert (
        client.get("/v1/models/files/versions/1/files/model.onnx").headers["content-type"] == "application/octet-stream"
    )
    blobs = Path(client.app.state.blobs.root)  # type: ignore[attr-defined]
    assert [p for p in blobs.rglob("*") if p.is_file() and p.name.startswith(".")] == []  # no temp files left


def test_etag_and_conditional_requests(upload: Upload, client: TestClient) -> None:
    upload("cached")
    url = "/v1/models/cached/versions/1/files/weights.safetensors"
    first = client.get(url)
    etag = first.headers["etag"]
    assert "immutable" in first.headers["cache-control"]
    assert "immutable" not in client.get(url.replace("/1/", "/latest/")).headers["cache-control"]
    not_modified = client.get(url, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b"" and not_modified.headers["etag"] == etag
    assert client.get(url, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    head = client.head(url)
    assert head.status_code == 200 and head.headers["etag"] == etag and head.content == b""
    assert head.headers["content-length"] == first.headers["content-length"]


def test_unknown_file_is_404_naming_file(upload: Upload, client: TestClient) -> None:
    upload("nofile")
    assert_error(client.get("/v1/models/nofile/versions/1/files/weights.pkl"), 404, "file", "weights.pkl")


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("{not json", "spec"),
        ('{"cell": "gru", "input_size": 2, "hidden_size": 0}', "spec.hidden_size"),
        ('{"cell": "tanh", "input_size": 2, "hidden_size": 4}', "spec.cell"),
        ('{"cell": "gru", "input_size": 2, "hidden_size": 4, "colour": "red"}', "spec.colour"),
        ('{"cell": "gru", "input_size": 2, "hidden_size": 99999}', "spec.hidden_size"),
        ('{"cell": "gru", "input_size": 2, "hidden_size": 4, "num_layers": 500}', "spec.num_layers"),
    ],
)
def test_bad_spec_names_the_field(upload: Upload, client: TestClient, spec: str, field: str) -> None:
    assert_error(upload("badspec", spec=spec), 422, field)
    assert_error(client.get("/v1/models/badspec"), 404, "name")  # nothing was registered


def test_weights_that_do_not_fit_the_spec_name_the_tensor(upload: Upload) -> None:
    body = assert_error(upload("badw", weights=tiny_weights(tiny_spec(hidden_size=6))), 422, "spec", "metadata")
    assert body["code"] == "spec_mismatch"
    bare = save_safetensors(
        read_safetensors(tiny_weights(tiny_spec(hidden_size=6)))[0]
    )  # no spec, as other tools write
    assert_error(upload("badw", weights=bare), 422, "weights", "layers.0.rnn.weight_ih_l0", "shape")
    assert_error(upload("badw", weights=b"\x80\x04pickled"), 422, "weights", "safetensors")


def test_spec_may_come_from_the_file(client: TestClient) -> None:
    response = client.post("/v1/models/selfdesc/versions", files={"weights": ("w.safetensors", tiny_weights())})
    assert response.status_code == 201 and response.json()["spec"]["hidden_size"] == 4


def test_missing_weights_is_422(client: TestClient) -> None:
    response = client.post("/v1/models/x/versions", data={"spec": tiny_spec().model_dump_json()})
    assert_error(response, 422, "weights")


@pytest.mark.parametrize("name", ["Upper", "-dash", "a" * 101, "white space", "ü"])
def test_invalid_model_names(upload: Upload, name: str) -> None:
    assert_error(upload(name), 422, "name", "a-z")


def test_upload_limit_is_enforced(settings: Settings) -> None:
    small = settings.model_copy(update={"max_upload_bytes": 1000})
    with TestClient(create_app(small)) as client:
        weights = tiny_weights(tiny_spec(hidden_size=8))
        assert len(weights) > 1000
        data = {"spec": tiny_spec(hidden_size=8).model_dump_json()}
        response = client.post("/v1/models/big/versions", data=data, files={"weights": ("w", weights)})
        body = assert_error(response, 413, None, "1000", "WARMZOO_MAX_UPLOAD_BYTES")
        assert body["code"] == "content_too_large"
        # without Content-Length (chunked), the stream is cut as soon as it passes the limit
        encoded = httpx.Request("POST", "http://x", data=data, files={"weights": ("w", weights)})
        raw = encoded.read()
        chunks = iter([raw[i : i + 500] for i in range(0, len(raw), 500)])
        headers = {"content-type": encoded.headers["content-type"]}
        response = client.post("/v1/models/big/versions", content=chunks, headers=headers)
        assert "content-length" not in response.request.headers
        assert assert_error(response, 413, None, "1000")["code"] == "content_too_large"
        assert_error(client.get("/v1/models/big"), 404, "name")


def test_search_filters_and_pagination(upload: Upload, client: TestClient) -> None:
    upload("a-gru")
    upload("b-lstm", spec=tiny_spec(cell="lstm", hidden_size=8), description="long memory")
    upload("c-brc", spec=tiny_spec(cell="brc"))
    client.post("/v1/models/c-brc/tags", json={"tags": ["paper"]})

    def names(query: str) -> list[str]:
        response = client.get(f"/v1/models?{query}")
        assert response.status_code == 200, response.text
        return [item["name"] for item in response.json()["items"]]

    assert names("") == ["a-gru", "b-lstm", "c-brc"]
    assert names("cell=lstm") == ["b-lstm"] and names("hidden_size=4") == ["a-gru", "c-brc"]
    assert names("tag=paper") == ["c-brc"] and names("q=MEMORY") == ["b-lstm"]
    assert names("sort=-name") == ["c-brc", "b-lstm", "a-gru"]
    page = client.get("/v1/models?limit=2&offset=1").json()
    assert (page["total"], page["limit"], page["offset"], [i["name"] for i in page["items"]]) == (
        3,
        2,
        1,
        ["b-lstm", "c-brc"],
    )
    item = page["items"][0]
    assert item["latest"]["version"] == 1 and item["latest"]["spec"]["cell"] == "lstm"
    assert_error(client.get("/v1/models?cell=tanh"), 422, "cell")
    assert_error(client.get("/v1/models?limit=1000"), 422, "limit", "100")
    assert_error(client.get("/v1/models?offset=-1"), 422, "offset")
    assert_error(client.get("/v1/models?vaa_after_min=high"), 422, "vaa_after_min")


def test_aliases_tags_and_description(upload: Upload, client: TestClient) -> None:
    upload("ed", weights=tiny_weights(seed=1))
    upload("ed", weights=tiny_weights(seed=2))
    put = client.put("/v1/models/ed/aliases/prod", json={"version": 1})
    assert put.status_code == 200 and put.json() == {"name": "ed", "alias": "prod", "version": 1}
    assert client.get("/v1/models/ed/versions/prod").json()["version"] == 1
    assert client.get("/v1/models/ed").json()["aliases"] == {"latest": 2, "prod": 1}
    assert_error(client.put("/v1/models/ed/aliases/latest", json={"version": 1}), 422, "alias", "latest")
    assert_error(client.put("/v1/models/ed/aliases/prod", json={"version": 7}), 404, "version")
    assert_error(client.put("/v1/models/ed/aliases/prod", json={"version": "one"}), 422, "version")
    assert_error(client.put("/v1/models/ed/aliases/9lives", json={"version": 1}), 422, "alias")
    assert client.delete("/v1/models/ed/aliases/prod").status_code == 204
    assert_error(client.delete("/v1/models/ed/aliases/prod"), 404, "alias")
    assert_error(client.get("/v1/models/ed/versions/prod"), 404, "version", "prod")

    assert client.post("/v1/models/ed/tags", json={"tags": ["x", "y"]}).json()["tags"] == ["x", "y"]
    assert client.delete("/v1/models/ed/tags/x").status_code == 204
    assert client.get("/v1/models/ed").json()["tags"] == ["y"]
    assert_error(client.post("/v1/models/ed/tags", json={"tags": []}), 422, "tags")
    assert_error(client.delete("/v1/models/ed/tags/zzz"), 404, "tag")

    assert client.patch("/v1/models/ed", json={"description": "edited"}).json()["description"] == "edited"
    assert_error(client.patch("/v1/models/ed", json={"descr": "typo"}), 422, "description")
    assert_error(client.patch("/v1/models/nobody", json={"description": "x"}), 404, "name")
    assert_error(client.patch("/v1/models/ed", json={"description": "nul\u0000"}), 422, "description")


def test_every_error_is_json(settings: Settings, client: TestClient, upload: Callable[..., Response]) -> None:
    assert_error(client.get("/v1/nowhere"), 404, None, "/v1/nowhere")
    assert upload("x").status_code == 201  # the path is checked (model exists, caller owns it) before the body
    assert_error(client.delete("/v1/models"), 405, None, "DELETE")
    assert_error(client.get("/v1/models/ghost/versions/1"), 404, "name", "ghost")
    assert_error(
        client.put("/v1/models/x/aliases/a", content=b"{", headers={"content-type": "application/json"}), 422, None
    )

    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    @app.get("/refused")
    def refused() -> None:
        raise DataError("SELECT", {}, ValueError("value out of range"))

    with TestClient(app, raise_server_exceptions=False) as failing:
        body = assert_error(failing.get("/boom"), 500, None, "RuntimeError")
        assert "secret internals" not in body["error"] and body["code"] == "internal"
        assert assert_error(failing.get("/refused"), 422, None, "out of range")["code"] == "invalid_value"


@pytest.mark.parametrize(
    "url",
    [
        "/v1/models/hostile/versions/99999999999999999999999",
        "/v1/models/hostile/versions/%C2%B2",  # a Unicode digit
        "/v1/models/hostile/versions/1/files/..%2F..%2Fwarmzoo.db",
        "/v1/models?hidden_size=99999999999999999999999",
        "/v1/models?offset=99999999999999999999999",
        "/v1/models?vaa_after_min=nan&vaa_after_max=inf",
        "/v1/models?q=%00%27%22%3B--",
        "/v1/models/%00/versions",
        "/v1/models?tag=%00&task=%00",
    ],
)
def test_hostile_input_is_never_a_500(upload: Upload, client: TestClient, url: str) -> None:
    upload("hostile")
    response = client.get(url)
    assert response.status_code < 500 and response.headers["content-type"] == "application/json", response.text


def test_model_card_snippets_run(
    upload: Upload, client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload("card", spec=tiny_spec(cell="lstm", num_layers=2))
    for name in FILES:
        (tmp_path / name).write_bytes(client.get(f"/v1/models/card/versions/1/files/{name}").content)
    card = (tmp_path / "README.md").read_text()
    snippets = re.findall(r"```python\n(.*?)```", card, flags=re.S)
    assert len(snippets) == 5  # modeling.py, torch's LSTM, warmzoo, ONNX whole sequences, ONNX one step
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # `from modeling import load`, as a script beside it would
    for i, code in enumerate(snippets):
        script = tmp_path / f"snippet{i}.py"
        script.write_text(code)
        runpy.run_path(str(script))


def test_openapi_documents_request_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    ours = {f"/v1{route.path}" for route in models_routes.router.routes}  # type: ignore[attr-defined]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if "requestBody" not in operation or path not in ours:
                continue
            content = next(iter(operation["requestBody"]["content"].values()))
            (name,) = re.findall(r"#/components/schemas/(\w+)", json.dumps(content["schema"]))
            body = components[name]
            has_examples = "examples" in body or any("examples" in p for p in body["properties"].values())
            assert has_examples, f"{method.upper()} {path} has no request example"

"""A version's files work without warmzoo: modeling.py, run where only torch and safetensors can be
imported, computes what /v2 serves for every cell; the Hugging Face folder is complete."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from httpx import Response

from tests.helpers.factories import tiny_weights
from tests.helpers.plain_pytorch import isolated_site, run_plain
from warmzoo.models.spec import CELLS, RNNSpec
from warmzoo.service.registry.hub import front_matter
from warmzoo.service.registry.registry import Registry

Upload = Callable[..., Response]
RUN_EACH = """
import json, torch
from modeling import load

results = {}
for name in NAMES:
    network = load(f"{name}/weights.safetensors")
    case = json.load(open(f"{name}/case.json"))
    with torch.no_grad():
        y, state = network(torch.tensor(case["input"]), torch.tensor(case["state"]))
    results[name] = {"output": y.tolist(), "state": state.tolist()}
json.dump(results, open("results.json", "w"))
"""


def _spec(cell: str) -> RNNSpec:
    double = cell in ("lstm", "brc")  # the halves' state layout is part of what is checked
    return RNNSpec(cell=cell, input_size=2, hidden_size=4, num_layers=2, output_size=3, double=double)  # type: ignore[arg-type]


def _tensor(name: str, array: np.ndarray) -> dict:
    return {"name": name, "shape": list(array.shape), "datatype": "FP32", "data": array.ravel().tolist()}


def test_modeling_py_alone_matches_v2_for_every_cell(upload: Upload, client: TestClient, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    served = {}
    for cell in CELLS:
        spec, name = _spec(cell), f"plain-{cell}"
        assert upload(name, spec=spec, weights=tiny_weights(spec, seed=3)).status_code == 201
        folder = tmp_path / name
        folder.mkdir()
        weights = client.get(f"/v1/models/{name}/versions/1/files/weights.safetensors").content
        (folder / "weights.safetensors").write_bytes(weights)
        x = rng.standard_normal((2, 7, 2)).astype(np.float32)
        state = rng.standard_normal((2, 2, spec.state_size)).astype(np.float32)
        answer = client.post(f"/v2/models/{name}/infer", json={"inputs": [_tensor("input", x), _tensor("state", state)]})
        assert answer.status_code == 200, answer.text
        served[name] = {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in answer.json()["outputs"]}
        (folder / "case.json").write_text(json.dumps({"input": x.tolist(), "state": state.tolist()}))
    (tmp_path / "modeling.py").write_bytes(client.get("/v1/models/plain-gru/versions/1/files/modeling.py").content)
    script = tmp_path / "run_each.py"
    script.write_text(f"NAMES = {list(served)!r}\n" + RUN_EACH)
    run_plain(script, tmp_path, isolated_site(tmp_path / "site"))
    results = json.loads((tmp_path / "results.json").read_text())
    for name, expected in served.items():
        for tensor in ("output", "state"):
            np.testing.assert_allclose(results[name][tensor], expected[tensor], rtol=0, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("cell", ["lstm", "nbrc"])
def test_hub_zip_is_a_complete_hub_folder(upload: Upload, client: TestClient, cell: str) -> None:
    spec = _spec(cell)
    upload("hub", spec=spec, weights=tiny_weights(spec))
    version = client.get("/v1/models/hub/versions/1").json()
    first = client.get("/v1/models/hub/versions/1/files/hf.zip")
    assert first.status_code == 200 and first.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(first.content)) as archive:
        folder = {info.filename: archive.read(info) for info in archive.infolist()}
        assert {info.external_attr >> 16 for info in archive.infolist()} == {0o100644}
    expected = {"config.json", "model.safetensors", "modeling.py", "README.md"}
    assert set(folder) == expected | ({"torch.safetensors"} if cell == "lstm" else set())
    assert json.loads(folder["config.json"]) == spec.model_dump(mode="json")
    assert folder["model.safetensors"] == client.get("/v1/models/hub/versions/1/files/weights.safetensors").content
    assert folder["modeling.py"] == client.get("/v1/models/hub/versions/1/files/modeling.py").content
    readme = folder["README.md"].decode()
    _, header, card = readme.split("---\n", 2)
    meta = yaml.safe_load(header)
    assert meta["library_name"] == "pytorch" and meta["license"] == "mit" and meta["arxiv"] == "2106.01001"
    assert {"warmzoo", cell, "arxiv:2106.01001"} <= set(meta["tags"])
    assert meta["model-index"][0]["name"] == "hub-v1"
    assert card.lstrip().startswith("# hub v1")
    assert version["files"][-2]["name"] == "hf.zip"


def test_hub_model_index_carries_the_vaa_figures(registry: Registry) -> None:
    data = {"task": "copy_first_input", "seq_length": 50, "num_samples": 64}
    metrics = {"vaa_before": 0.03125, "vaa_after": 0.5, "vaa_star_history": [0.9, 0.95]}
    version = registry.publish_version(
        "warm", _spec("gru"), tiny_weights(_spec("gru")), warmup={"steps": 2}, data=data, metrics=metrics
    )
    header = yaml.safe_load(front_matter(version).split("---\n")[1])
    (result,) = header["model-index"][0]["results"]
    assert result["dataset"]["type"] == "copy_first_input"
    assert {m["type"]: m["value"] for m in result["metrics"]} == {"vaa_before": 0.03125, "vaa_after": 0.5}

"""The docs' code runs as written: the README's Python snippet, and the plain-PyTorch script of
docs/usage.md, which is run with only torch and safetensors importable, on files `warmzoo pull` wrote."""

from __future__ import annotations

import re
import runpy
import shlex
from pathlib import Path

import httpx
import pytest

from tests.helpers.live_server import live_server
from tests.helpers.plain_pytorch import isolated_site, run_plain
from warmzoo.models.network import build_network
from warmzoo.models.spec import RNNSpec
from warmzoo.models.weights import weights_bytes
from warmzoo.service.cli.main import main
from warmzoo.service.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
PLAIN_SECTION = "## Without warmzoo: plain PyTorch and the Hugging Face Hub"


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_readme_python_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text()
    (snippet,) = _blocks(readme, "python")
    spec = RNNSpec(cell="gru", input_size=1, hidden_size=64, num_layers=2)  # the README's `warmzoo warmup` spec
    (tmp_path / "out" / "gru").mkdir(parents=True)
    (tmp_path / "out" / "gru" / "weights.safetensors").write_bytes(weights_bytes(build_network(spec, seed=0)))
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(_write(tmp_path / "readme.py", snippet)))
    assert tuple(namespace["y"].shape) == (8, 100, 1) and tuple(namespace["state"].shape) == (2, 8, 64)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_usage_plain_pytorch_script_trains_zoo_networks(tmp_path: Path) -> None:
    usage = (ROOT / "docs" / "usage.md").read_text()
    section = usage[usage.index(PLAIN_SECTION) :]
    pulls = [shlex.split(line)[1:] for line in _blocks(section, "bash")[0].splitlines() if line.startswith("warmzoo pull")]
    script = _blocks(section, "python")[0]
    settings = Settings(data_dir=tmp_path / "data", auth="off", rate_limit_per_s=0, starter_catalogue=False)
    with live_server(settings) as url:
        for cell in ("gru", "lstm", "brc"):  # small stand-ins for the starters the script names
            spec = RNNSpec(cell=cell, input_size=1, hidden_size=8, num_layers=2)  # type: ignore[arg-type]
            files = {"weights": ("w.safetensors", weights_bytes(build_network(spec, seed=0)))}
            response = httpx.post(f"{url}/v1/models/starter-{cell}/versions", files=files)
            assert response.status_code == 201, response.text
        for args in pulls:
            out = args.index("--out") + 1
            args[out] = str(tmp_path / args[out])  # `--out zoo`, under this test's folder
            assert main([*args, "--server", url]) == 0
    result = run_plain(_write(tmp_path / "train.py", script), tmp_path, isolated_site(tmp_path / "site"))
    losses = re.findall(r"^(\w+) step 10: loss (\S+)$", result.stdout, flags=re.M)
    assert [name for name, _ in losses] == ["gru", "lstm", "brc"], result.stdout

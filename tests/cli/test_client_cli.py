"""The client verbs against a live server in this process: where `pull` writes, what it refuses,
`infer --out`, the defaults in every `--help`, and that `ls` and `pull` never import torch."""

from __future__ import annotations

import argparse
import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.helpers.factories import tiny_spec, tiny_weights
from tests.helpers.live_server import live_server
from warmzoo.service.cli.main import build_parser, main
from warmzoo.service.core.config import Settings


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A live server with two versions of `cli-gru`."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), auth="off", rate_limit_per_s=0, starter_catalogue=False)
    with live_server(settings) as url:
        spec = tiny_spec().model_dump_json()
        for seed in (1, 2):
            files = {"weights": ("w.safetensors", tiny_weights(seed=seed))}
            assert httpx.post(f"{url}/v1/models/cli-gru/versions", data={"spec": spec}, files=files).status_code == 201
        yield url


def run(capsys: pytest.CaptureFixture[str], server: str, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*args, "--server", server])
    out, err = capsys.readouterr()
    return code, out, err


def test_pull_writes_name_version_file_and_refuses_to_overwrite(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, server, "pull", "cli-gru", "--out", str(tmp_path))  # latest: v2
    target = tmp_path / "cli-gru" / "v2" / "weights.safetensors"
    assert code == 0 and out.strip() == str(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert run(capsys, server, "pull", "cli-gru:1", "--format", "onnx", "--out", str(tmp_path))[0] == 0
    assert (tmp_path / "cli-gru" / "v1" / "model.onnx").is_file()

    target.write_bytes(b"mine")
    code, _, err = run(capsys, server, "pull", "cli-gru:2", "--out", str(tmp_path))
    assert code == 1 and "exists" in err and "--force" in err and target.read_bytes() == b"mine"
    assert run(capsys, server, "pull", "cli-gru:2", "--out", str(tmp_path), "--force")[0] == 0
    assert target.read_bytes() != b"mine"
    assert [p.name for p in target.parent.iterdir()] == ["weights.safetensors"]  # no temporary file left


def test_pull_hf_unpacks_the_hub_folder(server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, server, "pull", "cli-gru:1", "--format", "hf", "--out", str(tmp_path))
    folder = tmp_path / "cli-gru" / "v1" / "hf"
    assert code == 0 and out.strip() == str(folder)
    names = {"config.json", "model.safetensors", "modeling.py", "README.md", "torch.safetensors"}
    assert {p.name for p in folder.iterdir()} == names
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o644}
    assert json.loads((folder / "config.json").read_text())["cell"] == "gru"
    code, _, err = run(capsys, server, "pull", "cli-gru:1", "--format", "hf", "--out", str(tmp_path))
    assert code == 1 and "--force" in err


def test_infer_out_writes_npy(server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "x.npy", np.zeros((3, 5, 2), np.float32))
    y = tmp_path / "y.npy"
    code, out, _ = run(capsys, server, "infer", "cli-gru:1", "--input", str(tmp_path / "x.npy"), "--out", str(y))
    assert code == 0 and str(y) in out
    assert np.load(y).shape == (3, 5, 1)


def _parsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def test_every_help_shows_the_defaults() -> None:
    helps = {prog: p.format_help() for prog, p in _parsers(build_parser())}
    assert "(default: 100)" in helps["warmzoo warmup"]  # --steps
    assert "(default: safetensors)" in helps["warmzoo pull"]
    assert "(default: 8000)" in helps["warmzoo serve"]
    assert all("(default: None)" not in text and "(default: False)" not in text for text in helps.values())


@pytest.mark.parametrize("verb", [["ls"], ["pull", "cli-gru:1", "--format", "card"]])
def test_ls_and_pull_do_not_import_torch(server: str, tmp_path: Path, verb: list[str]) -> None:
    code = (
        "import sys; from warmzoo.service.cli.main import main\n"
        f"assert main({[*verb, '--server', server]!r}) == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

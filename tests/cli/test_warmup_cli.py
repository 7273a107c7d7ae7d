"""`warmzoo warmup` end to end, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from warmzoo.models.weights import network_from_weights


@pytest.mark.slow  # a fresh process that imports torch and runs a whole warm-up: tens of seconds
def test_warmup_writes_weights_and_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "warmzoo.service.cli.main", "warmup", "--cell", "brc", "--hidden-size", "8", "--num-layers", "2",
           "--double", "--task", "denoising", "--seq-length", "20", "--steps", "4", "--vaa-steps", "50",
           "--num-samples", "64", "--seed", "3", "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
    assert "VAA" in done.stdout
    assert "step" in done.stderr  # the progress bar
    report = json.loads((out / "report.json").read_text())
    for key in ("vaa_before", "vaa_after", "vaa_star_history", "spec", "warmup", "seconds"):
        assert key in report, key
    assert len(report["vaa_star_history"]) == 4
    assert 0 < report["vaa_before"] <= 1 and 0 < report["vaa_after"] <= 1
    assert report["spec"]["double"] is True and report["spec"]["input_size"] == 2
    net = network_from_weights((out / "weights.safetensors").read_bytes())
    assert net.spec.cell == "brc" and net.spec.hidden_size == 8

"""`warmzoo reproduce` end to end on a tiny configuration: the records, table and plot it writes.

It checks the shape of the evidence, not the science (whether warm beats cold needs
minutes of training: docs/reproduction.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

CELLS, ARMS, SEEDS, STEPS, EVERY = ["gru", "brc"], ["cold", "warm", "double-warm"], [0, 1], 6, 3


@pytest.mark.slow  # a fresh process and its worker pool, 12 runs of warm-up and training: tens of seconds
def test_reproduce_writes_json_markdown_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "warmzoo.service.cli.main", "reproduce", "--task", "copy_first_input", "--seq-length", "12",
           "--cells", *CELLS, "--arms", *ARMS, "--seeds", *map(str, SEEDS), "--hidden-size", "4",
           "--training-steps", str(STEPS), "--eval-every", str(EVERY), "--warmup-steps", "3",
           "--vaa-steps", "50", "--vaa-train-steps", "20", "--num-train", "40", "--num-val", "8",
           "--num-test", "8", "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
    assert "step" in done.stderr  # the progress bar

    report = json.loads((out / "report.json").read_text())
    runs = report["runs"]
    assert [(r["cell"], r["arm"], r["seed"]) for r in runs] == [(c, a, s) for c in CELLS for a in ARMS for s in SEEDS]
    for run in runs:
        assert [p["step"] for p in run["history"]] == list(range(0, STEPS + 1, EVERY))
        assert all(0 < p["vaa"] <= 1 and p["test_loss"] >= 0 for p in run["history"])
        assert run["test_loss"] >= 0 and run["chance_loss"] > 0
        assert (run["vaa_warm"] is None) == (run["arm"] == "cold")
        assert run["spec"]["double"] == run["arm"].startswith("double")
    # Cold and warm start from the same weights: the same VAA before any warm-up.
    by_key = {(r["cell"], r["arm"], r["seed"]): r for r in runs}
    for cell in CELLS:
        for seed in SEEDS:
            assert by_key[(cell, "cold", seed)]["vaa_init"] == by_key[(cell, "warm", seed)]["vaa_init"]
    assert len(report["summary"]) == len(CELLS) * len(ARMS)
    assert report["arguments"]["cells"] == CELLS and report["arguments"]["training_steps"] == STEPS

    table = (out / "report.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| ") and not line.startswith("| cell")]
    assert len(rows) == len(CELLS) * len(ARMS)

    image = matplotlib.image.imread(out / "curves.png")
    assert image.ndim == 3 and image.shape[1] > image.shape[0] > 100

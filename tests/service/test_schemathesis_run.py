"""The outside judge of the OpenAPI document: `schemathesis run --checks all` against a real
`warmzoo serve`, every phase (examples, coverage, fuzzing, stateful), as a user would run it.

One check is left out, `positive_data_acceptance`: it requires every schema-valid request to be
accepted, and some refusals cannot be written in a JSON schema (an upload must be valid
safetensors of its spec's shapes, an OIP tensor's shape depends on the model, a name in a body
must exist). test_fuzz.py covers the same document in process with more examples per operation.
The job event stream is left out: it streams until its job ends.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.server import running_server

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]


def test_schemathesis_run_with_all_checks_reports_nothing(tmp_path: Path) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli is not None, "schemathesis is a test dependency (pyproject's test extra)"
    with running_server(tmp_path, WARMZOO_WORKERS="0") as server:
        run = subprocess.run(
            [
                cli, "run", f"{server.url}/openapi.json", "--checks", "all",
                "--exclude-checks", "positive_data_acceptance", "--max-examples", "10",
                "--exclude-path-regex", "/events$", "--seed", "1",
            ],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "passed" in run.stdout and "failure" not in run.stdout.split("SUMMARY")[-1]

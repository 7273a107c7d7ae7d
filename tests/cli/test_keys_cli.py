"""`warmzoo keys create|ls|revoke`, and the client verbs sending a key to a server that wants one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.factories import tiny_spec, tiny_weights
from tests.helpers.server import start_server, stop_server
from warmzoo.service.cli.main import main

SUBMIT = "submit --cell gru --hidden-size 4 --task copy_first_input --seq-length 12 --num-samples 16 --steps 2"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_keys_are_shown_once_listed_without_secret_and_revoked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = ("--data-dir", str(tmp_path))
    status, key, err = run(capsys, "keys", "create", "--owner", "alice", "--scope", "write", *data)
    assert status == 0 and "not shown again" in err
    key = key.strip()
    match = re.fullmatch(r"wz_([0-9a-f]{12})_([A-Za-z0-9_-]{43})", key)
    assert match, key
    key_id, secret = match.groups()
    assert secret.encode() not in (tmp_path / "warmzoo.db").read_bytes()  # only a hash is stored

    status, listing, _ = run(capsys, "keys", "ls", *data)
    assert status == 0 and secret not in listing
    assert listing.splitlines()[1].split()[:3] == [key_id, "alice", "write"] and "active" in listing

    assert run(capsys, "keys", "revoke", key_id, *data)[0] == 0
    assert run(capsys, "keys", "ls", *data)[1].splitlines()[1].split()[-1] == "revoked"
    status, _, err = run(capsys, "keys", "revoke", "0123456789ab", *data)
    assert status == 1 and "no API key" in err
    status, _, err = run(capsys, "keys", "create", "--owner", "no spaces", "--scope", "read", *data)
    assert status == 1 and "owner" in err
    with pytest.raises(SystemExit):
        main(["keys", "create", "--owner", "bob", "--scope", "root", *data])


@pytest.mark.e2e
def test_client_verbs_send_the_key_from_the_environment_or_the_flag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WARMZOO_API_KEY", raising=False)
    key = run(capsys, "keys", "create", "--owner", "alice", "--scope", "write", "--data-dir", str(tmp_path))[1].strip()
    server = start_server(tmp_path, WARMZOO_AUTH="on", WARMZOO_WORKERS="0")
    try:
        at = ("--server", server.url)
        assert run(capsys, "ls", *at)[0] == 0  # reading stays anonymous
        status, _, err = run(capsys, *SUBMIT.split(), "--detach", *at)
        assert status == 1 and "API key" in err
        forged = key[:-1] + ("y" if key.endswith("x") else "x")
        status, _, err = run(capsys, *SUBMIT.split(), "--detach", "--api-key", forged, *at)
        assert status == 1 and "unknown API key" in err
        status, job_id, _ = run(capsys, *SUBMIT.split(), "--detach", "--api-key", key, *at)
        assert status == 0
        monkeypatch.setenv("WARMZOO_API_KEY", key)
        assert run(capsys, *SUBMIT.split(), "--name", "from-env", "--detach", *at)[0] == 0
        jobs = server.http.get("/v1/jobs").json()["items"]
        assert {job["request"]["owner"] for job in jobs} == {"alice"} and len(jobs) == 2
        assert job_id.strip() in {job["id"] for job in jobs}
        assert not any("auth is OFF" in line.get("message", "") for line in server.log_lines())
    finally:
        stop_server(server)


@pytest.mark.e2e
def test_serve_on_loopback_runs_without_auth_and_says_so(tmp_path: Path) -> None:
    server = start_server(tmp_path, WARMZOO_WORKERS="0")  # WARMZOO_AUTH unset: auto, on 127.0.0.1
    try:
        files = {"weights": ("w.safetensors", tiny_weights())}
        answer = server.http.post("/v1/models/open/versions", files=files, data={"spec": tiny_spec().model_dump_json()})
        assert answer.status_code == 201, answer.text
        warnings = [line for line in server.log_lines() if "auth is OFF" in line["message"]]
        assert [line["level"] for line in warnings] == ["warning"]
    finally:
        stop_server(server)

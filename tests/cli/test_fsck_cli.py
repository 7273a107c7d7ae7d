"""`warmzoo fsck` as an operator runs it: a report, exit 1 while problems remain, --repair fixes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.factories import tiny_spec, tiny_weights
from warmzoo.service.cli.main import main
from warmzoo.service.core.config import Settings
from warmzoo.service.registry.blobs import LocalBlobStore
from warmzoo.service.registry.db import make_engine, session_factory, upgrade_database
from warmzoo.service.registry.registry import Registry


def test_fsck_reports_then_repairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(data_dir=tmp_path)
    upgrade_database(settings)
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        zoo = Registry(session, LocalBlobStore(settings.blob_store))
        version = zoo.publish_version("cli-fsck", tiny_spec(), tiny_weights())
        derived = zoo.get_or_create_file(version, "state_dict.pt").sha256
    engine.dispose()
    zoo.blobs.delete(derived)
    (Path(settings.blob_store) / ".incoming-killed").write_bytes(b"half")

    assert main(["fsck", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "missing_file" in out and f"cli-fsck:1 state_dict.pt (blob {derived})" in out and "--repair would" in out
    assert "leftover" not in out  # younger than the default grace period of an hour

    assert main(["fsck", "--repair", "--grace-s", "0", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "repaired: delete its row" in out and ".incoming-killed  (repaired: remove it)" in out
    assert out.splitlines()[-1] == "checked 2 blobs and 3 rows: 2 problems, 2 repaired, 0 unresolved"

    assert main(["fsck", "--data-dir", str(tmp_path)]) == 0
    assert "0 problems" in capsys.readouterr().out

"""The architecture as the code has it: the installed namespace and what the lower layers load."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"models": "warmzoo.models", "service": "warmzoo.service", "migrations": "warmzoo.migrations"}


def test_every_package_folder_is_installed_under_the_warmzoo_namespace() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        ".".join([FOLDERS[init.relative_to(ROOT).parts[0]], *init.relative_to(ROOT).parts[1:-1]])
        for top in FOLDERS
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert set(config["packages"]) == folders
    assert config["package-dir"] == {package: folder for folder, package in FOLDERS.items()}


def test_a_worker_does_not_load_the_web_framework() -> None:
    code = (
        "import sys, warmzoo.service.jobs.worker, warmzoo.service.jobs.executors.embedded;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_a_users_own_models_package_stays_theirs(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("MINE = True\n")
    code = "import models, warmzoo.models.spec; print(models.MINE, warmzoo.models.spec.__name__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "warmzoo.models.spec"]

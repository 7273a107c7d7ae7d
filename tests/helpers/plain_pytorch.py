"""Run a script as a user without warmzoo would: in a fresh interpreter that sees only torch,
safetensors and the packages they themselves require (no site-packages, no warmzoo, no numpy)."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

ALLOWED = ("torch", "safetensors")


def _closure(names: tuple[str, ...]) -> set[str]:
    """The distributions `names` need to import, their own requirements included (extras left out)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def isolated_site(directory: Path) -> Path:
    """A folder of links to the top-level modules of torch, safetensors and their requirements only."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in _closure(ALLOWED):
        dist = metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in tops:
            if top.endswith((".dist-info", ".pth")) or top in ("..", "__pycache__"):
                continue
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (directory / top).exists():
                (directory / top).symlink_to(source)
    return directory


def run_plain(script: Path, cwd: Path, site: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -S script` with only `site` on the path; raises with the script's stderr if it fails."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1", "HOME": str(cwd)}
    guard = "import importlib.util as u; assert u.find_spec('warmzoo') is None and u.find_spec('numpy') is None\n"
    code = guard + f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')"
    result = subprocess.run(
        [sys.executable, "-S", "-s", "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result

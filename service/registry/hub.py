"""A version as a Hugging Face Hub model folder, which `huggingface-cli upload` takes as it is.

The folder holds `config.json` (the spec), `model.safetensors` (the version's weights file,
byte for byte, so its sha256 is still the version's), `modeling.py` (the plain-PyTorch
networks, which load it), `torch.safetensors` for the cells torch has modules for, and a
`README.md`: the model card under YAML front matter (library, tags, license, the paper's
arXiv id, and a `model-index` with the VAA figures). It is served as one zip whose bytes
depend only on the version, so its sha256 is stable like every other file's.
"""

from __future__ import annotations

import io
import json
import zipfile
from importlib.resources import files
from typing import Any

from warmzoo.models.network import Network
from warmzoo.models.spec import RNNSpec
from warmzoo.models.torch_native import TORCH_CELLS, torch_native_bytes
from warmzoo.service.registry.card import render_card
from warmzoo.service.registry.tables import VersionRow

ARXIV = "2106.01001"
LICENSE = "mit"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: the archive's bytes never depend on the clock


def modeling_source() -> bytes:
    """The source of warmzoo.models.modeling: the self-contained plain-PyTorch file that is served."""
    return files("warmzoo.models").joinpath("modeling.py").read_bytes()


def _yaml(value: Any) -> str:
    """A scalar or flow collection in YAML: JSON is a subset of YAML."""
    return json.dumps(value)


def _dataset(data: dict[str, Any] | None) -> tuple[str, str]:
    if not data:
        return "none", "none (uploaded weights)"
    if "dataset" in data:
        return "uploaded", f"uploaded data set {data['dataset']}"
    return data["task"], f"{data['task']} (length {data.get('seq_length')}, {data.get('num_samples')} sequences)"


def front_matter(version: VersionRow) -> str:
    """The YAML header of the Hub README: what the Hub indexes and shows beside the card."""
    spec = RNNSpec.model_validate(version.spec)
    name = f"{version.model.name}-v{version.number}"
    tags = ["warmzoo", "recurrent-neural-network", spec.cell, "multistability", "warm-up", f"arxiv:{ARXIV}"]
    metrics = [
        (key, label, version.metrics.get(key))
        for key, label in (("vaa_before", "VAA before warm-up"), ("vaa_after", "VAA after warm-up"))
    ]
    lines = [
        "---",
        "library_name: pytorch",
        f"license: {LICENSE}",
        f"tags: {_yaml(tags)}",
        f"arxiv: {_yaml(ARXIV)}",
        "model-index:",
        f"- name: {_yaml(name)}",
        "  results:",
    ]
    measured = [(key, label, value) for key, label, value in metrics if isinstance(value, int | float)]
    if measured:
        task, dataset = _dataset(version.data)
        lines += [
            "  - task:",
            f"      type: {_yaml('warm-up')}",
            f"      name: {_yaml('Warm-up: maximise the variability amongst attractors (VAA)')}",
            "    dataset:",
            f"      type: {_yaml(task)}",
            f"      name: {_yaml(dataset)}",
            "    metrics:",
        ]
        for key, label, value in measured:
            lines += [f"    - type: {_yaml(key)}", f"      name: {_yaml(label)}", f"      value: {_yaml(value)}"]
    else:
        lines[-1] = "  results: []"
    return "\n".join([*lines, "---", ""])


def hub_files(version: VersionRow, weights: bytes, network: Network) -> dict[str, bytes]:
    """The folder's files by name."""
    spec = network.spec
    folder = {
        "config.json": (json.dumps(spec.model_dump(mode="json"), indent=2) + "\n").encode(),
        "model.safetensors": weights,
        "modeling.py": modeling_source(),
        "README.md": (front_matter(version) + "\n" + render_card(version)).encode(),
    }
    if spec.cell in TORCH_CELLS:
        folder["torch.safetensors"] = torch_native_bytes(network)
    return folder


def zip_folder(folder: dict[str, bytes]) -> bytes:
    """One zip of the files (at its root, each 0644), the same bytes for the same files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(folder):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            archive.writestr(info, folder[name])
    return buffer.getvalue()

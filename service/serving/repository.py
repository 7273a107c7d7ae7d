"""Where the inference data plane finds its models: registry versions as local ONNX files."""

from __future__ import annotations

import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from warmzoo.models.spec import RNNSpec
from warmzoo.service.registry.blobs import CHUNK, BlobStore, LocalBlobStore
from warmzoo.service.registry.registry import LATEST, Registry
from warmzoo.service.serving.dataplane import Resolver, ServedModel


def registry_resolver(sessions: sessionmaker[Session], blobs: BlobStore, cache_dir: Path) -> Resolver:
    """A resolver that serves `model.onnx` of a version (exported and parity-checked on first use).

    ONNX Runtime loads from a path: a local blob store already has one; any other store's
    blob is copied once into `cache_dir`, named by its sha256 and renamed into place
    only when complete, so a half-written copy is never loaded."""

    def local_path(sha256: str) -> Path:
        if isinstance(blobs, LocalBlobStore):
            return blobs.path(sha256)
        target = cache_dir / f"{sha256}.onnx"
        if not target.exists():
            cache_dir.mkdir(parents=True, exist_ok=True)
            with blobs.open(sha256) as source, tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as tmp:
                shutil.copyfileobj(source, tmp, CHUNK)
            os.replace(tmp.name, target)
        return target

    @lru_cache(maxsize=1024)
    def served(name: str, number: int) -> ServedModel:
        # Versions are immutable: once resolved, a (name, number) needs no database again.
        with sessions() as session:
            registry = Registry(session, blobs)
            row = registry.resolve(name, number, fields=("name", "version"))
            onnx_file = registry.get_or_create_file(row, "model.onnx")
            return ServedModel(
                name=name,
                version=row.number,
                spec=RNNSpec.model_validate(row.spec),
                onnx_path=local_path(onnx_file.sha256),
            )

    def resolve(name: str, version: str | None) -> ServedModel:
        if version is not None and version.isdigit() and version.isascii():
            return served(name, int(version))
        with sessions() as session:  # an alias (`latest` when None) is mutable: look it up each time
            row = Registry(session, blobs).resolve(name, version if version is not None else LATEST, fields=("name", "version"))
            number = row.number
        return served(name, number)

    return resolve

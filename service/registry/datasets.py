"""Uploaded warm-up data sets: N sequences of T steps of I features, one tensor [N, T, I].

Accepted as safetensors (exactly one tensor) or .npy read with `allow_pickle=False`: user
data is never unpickled. The upload is checked whole (shape, float dtype, finite values,
the server's limits) before anything is stored, and stored as sent, so its sha256 is the
one the user can compute.
"""

from __future__ import annotations

import io
import math
import re
import uuid

import numpy as np
import torch
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from torch import Tensor

from warmzoo.models.weights import WeightsError, read_safetensors
from warmzoo.service.core.config import Settings
from warmzoo.service.core.errors import Reason, WarmzooError, limit_exceeded
from warmzoo.service.registry.blobs import BlobStore
from warmzoo.service.registry.registry import Page
from warmzoo.service.registry.tables import DatasetRow

NPY_MAGIC = b"\x93NUMPY"
FIELD = "file"
# A label, never a path: no separators or control characters, so no client can mistake it for one.
LABEL_RE = re.compile(r"[^/\\\x00-\x1f\x7f]{1,200}")


def _invalid(message: str) -> WarmzooError:
    return WarmzooError(Reason.INVALID, f"{FIELD}: {message}", field=FIELD, code="invalid_dataset")


def _read_npy(data: bytes) -> Tensor:
    """The array of a .npy file as float32. The header is checked against the bytes that follow
    it before anything is allocated (a header may declare any shape: 10^10 elements would be
    40 GB), object arrays are refused (they need pickle), and any byte order is accepted."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported (1.0 and 2.0 are)")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(stream)
    except ValueError as exc:  # a bad magic, header or dtype (object arrays need pickle: refused here too)
        raise _invalid(f"not a readable .npy file without pickle: {exc}") from exc
    if dtype.hasobject:
        raise _invalid("the array holds Python objects, which need pickle: this server never unpickles uploads")
    if dtype.kind != "f":
        raise _invalid(f"the array has dtype {dtype}; a data set is float (float16, float32 or float64)")
    count = math.prod(shape)
    held = len(data) - stream.tell()
    if held != count * dtype.itemsize:
        raise _invalid(
            f"the .npy header declares shape {list(shape)} of {dtype} ({count * dtype.itemsize} bytes) but the file "
            f"holds {held} bytes of data"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=stream.tell())
    array = array.reshape(shape, order="F" if fortran_order else "C")
    return torch.from_numpy(array.astype(np.float32, order="C"))  # native byte order, writable


def _read_safetensors(data: bytes) -> Tensor:
    try:
        tensors, _ = read_safetensors(data)
    except WeightsError as exc:
        raise _invalid(f"neither a .npy nor a {exc}") from exc
    if len(tensors) != 1:
        names = ", ".join(tensors)
        raise _invalid(f"a safetensors data set holds exactly one tensor; this file holds {len(tensors)} ({names})")
    (tensor,) = tensors.values()
    if not tensor.is_floating_point():
        raise _invalid(f"the tensor has dtype {tensor.dtype}; a data set is float")
    return tensor


def parse_inputs(data: bytes) -> Tensor:
    """The float32 tensor [N, T, I] of an upload; 422 naming what is wrong with it."""
    tensor = _read_npy(data) if data.startswith(NPY_MAGIC) else _read_safetensors(data)
    if tensor.dim() != 3:
        raise _invalid(f"the tensor has shape {list(tensor.shape)}; a data set is [sequences, time steps, features]")
    if tensor.shape[0] < 2 or 0 in tensor.shape:
        raise _invalid(f"the tensor has shape {list(tensor.shape)}; a warm-up needs at least 2 non-empty sequences")
    tensor = tensor.float()
    if not torch.isfinite(tensor).all():
        raise _invalid("the data set contains NaN or Inf")
    return tensor


def check_limits(shape: list[int], settings: Settings) -> None:
    bounds = (
        ("sequences", settings.max_num_samples, "max_num_samples"),
        ("time steps", settings.max_seq_length, "max_seq_length"),
        ("features", settings.max_input_size, "max_input_size"),
    )
    for size, (what, maximum, setting) in zip(shape, bounds, strict=True):
        if size > maximum:
            raise limit_exceeded(f"the data set has {size} {what}", maximum, setting, field=FIELD)


def check_label(name: str) -> str:
    if not LABEL_RE.fullmatch(name) or name in (".", ".."):
        raise WarmzooError(
            Reason.INVALID,
            f"name {name!r} is not a valid data set name: 1-200 characters without '/', '\\' or control"
            " characters (without `name`, the uploaded file's name is used)",
            field="name",
            code="invalid_name",
        )
    return name


def store(
    session: Session, blobs: BlobStore, settings: Settings, data: bytes, name: str, owner: str | None
) -> DatasetRow:
    """Check an upload and register it as `owner`'s; nothing is stored when it is rejected."""
    check_label(name)
    shape = list(parse_inputs(data).shape)
    check_limits(shape, settings)
    blob = blobs.put_bytes(data)
    row = DatasetRow(id=str(uuid.uuid4()), name=name, owner=owner, sha256=blob.sha256, shape=shape, size=blob.size)
    session.add(row)
    session.commit()
    return row


def get(session: Session, dataset_id: str, field: str = "id") -> DatasetRow:
    row = session.get(DatasetRow, dataset_id)
    if row is None:
        raise WarmzooError(
            Reason.NOT_FOUND,
            f"data set {dataset_id!r} not found; upload one with POST /v1/datasets",
            field=field,
            code="dataset_not_found",
        )
    return row


def list_datasets(session: Session, limit: int, offset: int) -> Page[DatasetRow]:
    total = session.scalar(select(func.count()).select_from(DatasetRow)) or 0
    newest_first = select(DatasetRow).order_by(DatasetRow.created_at.desc(), DatasetRow.id)
    rows = session.scalars(newest_first.limit(limit).offset(offset))
    return Page(list(rows), total, limit, offset)


def read_inputs(session: Session, blobs: BlobStore, dataset_id: str) -> Tensor:
    """The stored data set as float32 [N, T, I], for a job."""
    row = get(session, dataset_id, field="data.dataset")
    with blobs.open(row.sha256) as f:
        return parse_inputs(f.read())

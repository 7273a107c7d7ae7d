"""`/v1/datasets`: upload warm-up input data ([N, T, I] as .npy or safetensors) and read it back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Response, UploadFile

from warmzoo.service.api.deps import BlobsDep, PaginationDep, SessionDep, SettingsDep, WriterDep
from warmzoo.service.api.errors import error_responses
from warmzoo.service.api.job_schemas import DatasetOut
from warmzoo.service.api.routing import GuardedRoute
from warmzoo.service.api.schemas import PageOut
from warmzoo.service.registry import datasets

router = APIRouter(prefix="/datasets", tags=["datasets"], route_class=GuardedRoute)


@router.post("", status_code=201, responses=error_responses(413, 422, 507))
def upload_dataset(
    file: Annotated[
        UploadFile, File(description="[sequences, time, features] float: .npy (no pickle) or safetensors.")
    ],
    session: SessionDep,
    blobs: BlobsDep,
    settings: SettingsDep,
    who: WriterDep,
    response: Response,
    name: Annotated[
        str | None, Form(max_length=200, description="Label; default: the file name.", examples=["sine-waves-512x200"])
    ] = None,
) -> DatasetOut:
    """Register a data set; warm-ups use it with `"data": {"dataset": id}`."""
    row = datasets.store(session, blobs, settings, file.file.read(), name or file.filename or "dataset", who.owner)
    response.headers["Location"] = f"/v1/datasets/{row.id}"
    return DatasetOut.from_row(row)


@router.get("", responses=error_responses(422))
def list_datasets(session: SessionDep, page: PaginationDep) -> PageOut[DatasetOut]:
    """Data sets, newest first."""
    found = datasets.list_datasets(session, page.limit, page.offset)
    return PageOut.of(found, [DatasetOut.from_row(row) for row in found.items])


@router.get("/{dataset_id}", responses=error_responses(404))
def get_dataset(dataset_id: Annotated[str, Path(max_length=36)], session: SessionDep) -> DatasetOut:
    return DatasetOut.from_row(datasets.get(session, dataset_id))

"""`/v1/models`: browse the zoo, read versions, download their files, upload weights,
and manage the mutable parts of a model (aliases, tags, description)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from warmzoo.models.spec import CellName, RNNSpec
from warmzoo.service.api.deps import OwnedModel, PaginationDep, PublisherDep, RegistryDep, SettingsDep
from warmzoo.service.api.errors import error_responses, validation_error
from warmzoo.service.api.responses import json_response
from warmzoo.service.api.routing import GuardedRoute
from warmzoo.service.api.schemas import (
    NO_NUL,
    AliasIn,
    AliasOut,
    ComparisonOut,
    ModelOut,
    ModelPatch,
    PageOut,
    TagsIn,
    VersionOut,
)
from warmzoo.service.registry.blobs import CHUNK
from warmzoo.service.registry.registry import LATEST, MAX_INT, TAG_RE, ModelFilter, Registry, SortKey, spec_from_weights
from warmzoo.service.security.budgets import check_spec

router = APIRouter(prefix="/models", tags=["models"], route_class=GuardedRoute)

NamePath = Annotated[str, Path(description="Model name.", examples=["gru-denoising"])]
VersionPath = Annotated[str, Path(description="Version number or alias.", examples=["1", "latest"])]
SPEC_EXAMPLE = '{"cell": "gru", "input_size": 1, "hidden_size": 64, "num_layers": 2, "output_size": 1}'


def _model_out(registry: Registry, name: str) -> ModelOut:
    latest = registry.resolve(name, LATEST)
    return ModelOut.from_rows(latest.model, latest)


@router.get("", response_model=PageOut[ModelOut], responses=error_responses(422))
def search_models(
    registry: RegistryDep,
    page: PaginationDep,
    q: Annotated[
        str | None, Query(max_length=200, pattern=NO_NUL, description="Text in the name or description.")
    ] = None,
    cell: Annotated[CellName | None, Query(description="Cell type of the latest version.")] = None,
    hidden_size: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    task: Annotated[
        str | None, Query(max_length=100, pattern=NO_NUL, description="Warm-up task, e.g. denoising.")
    ] = None,
    tag: Annotated[str | None, Query(pattern=f"^{TAG_RE.pattern}$")] = None,
    vaa_after_min: Annotated[float | None, Query(description="Lowest VAA after warm-up.")] = None,
    vaa_after_max: Annotated[float | None, Query(description="Highest VAA after warm-up.")] = None,
    sort: Annotated[SortKey, Query(description="Order; a leading '-' sorts descending.")] = "name",
) -> Response:
    """Search the zoo; every filter applies to each model's `latest` version."""
    filters = ModelFilter(q, cell, hidden_size, task, tag, vaa_after_min, vaa_after_max)
    found = registry.search(filters, page.limit, page.offset, sort)
    return json_response(PageOut.of(found, [ModelOut.from_rows(model, latest) for model, latest in found.items]))


@router.get("/{name}", response_model=ModelOut, responses=error_responses(404))
def get_model(name: NamePath, registry: RegistryDep) -> Response:
    return json_response(_model_out(registry, name))


@router.patch("/{name}", responses=error_responses(404, 422), dependencies=[OwnedModel])
def update_model(name: NamePath, patch: ModelPatch, registry: RegistryDep) -> ModelOut:
    registry.update_description(name, patch.description)
    return _model_out(registry, name)


@router.get("/{name}/versions", response_model=PageOut[VersionOut], responses=error_responses(404, 422))
def list_versions(name: NamePath, registry: RegistryDep, page: PaginationDep) -> Response:
    found = registry.list_versions(name, page.limit, page.offset)
    return json_response(PageOut.of(found, [VersionOut.from_row(row) for row in found.items]))


@router.get("/{name}/versions/{version}", response_model=VersionOut, responses=error_responses(404, 422))
def get_version(name: NamePath, version: VersionPath, registry: RegistryDep) -> Response:
    return json_response(VersionOut.from_row(registry.resolve(name, version)))


@router.get("/{name}/versions/{version}/comparisons", responses=error_responses(404, 422))
def list_comparisons(name: NamePath, version: VersionPath, registry: RegistryDep) -> list[ComparisonOut]:
    """The compare jobs' results of the version, oldest first: learning curves and test losses,
    warmed versus cold (queue one with `POST .../compare`)."""
    return [ComparisonOut.from_row(row) for row in registry.resolve(name, version).comparisons]


@router.post("/{name}/versions", status_code=201, responses=error_responses(409, 413, 422, 507))
def upload_version(
    name: NamePath,
    weights: Annotated[UploadFile, File(description="safetensors file (never pickled formats).")],
    registry: RegistryDep,
    settings: SettingsDep,
    owner: PublisherDep,
    response: Response,
    spec: Annotated[
        str | None,
        Form(description="RNN spec as JSON; optional when the file's metadata carries it.", examples=[SPEC_EXAMPLE]),
    ] = None,
    description: Annotated[
        str | None,
        Form(
            max_length=10_000,
            pattern=NO_NUL,
            description="Replaces the model's description.",
            examples=["GRU, 2 x 64, warmed up on denoising sequences of 200 steps."],
        ),
    ] = None,
) -> VersionOut:
    """Register uploaded weights as the next version; they can then be warmed up (as `base`) or measured.
    A new name becomes the uploader's; only its owner (or an admin) adds versions to it."""
    data = weights.file.read()
    parsed = _parse_spec(spec) if spec is not None else spec_from_weights(data)
    check_spec(parsed, settings)
    version = registry.publish_version(name, parsed, data, description=description, owner=owner)
    response.headers["Location"] = f"/v1/models/{name}/versions/{version.number}"
    return VersionOut.from_row(version)


def _parse_spec(text: str) -> RNNSpec:
    try:
        return RNNSpec.model_validate_json(text)
    except ValidationError as exc:
        raise validation_error(exc.errors(), prefix="spec") from exc


FILE_PATH = "/{name}/versions/{version}/files/{file}"
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}},
    304: {"description": "Not Modified"},
}


@router.get(FILE_PATH, response_class=StreamingResponse, responses=FILE_RESPONSES | error_responses(404, 422))
@router.head(
    FILE_PATH,
    operation_id="head_file",
    summary="File headers (ETag, size) without the body",
    responses=FILE_RESPONSES | error_responses(404, 422),
)
def download_file(
    name: NamePath,
    version: VersionPath,
    file: Annotated[str, Path(description="A file name of the version's `files` list, e.g. weights.safetensors or hf.zip.")],
    request: Request,
    registry: RegistryDep,
) -> Response:
    """Download a file; derived files are produced on first request. ETag = the file's sha256."""
    row = registry.get_or_create_file(registry.resolve(name, version), file)
    disposition = "inline" if row.content_type.startswith("text/") else "attachment"
    headers = {
        "ETag": f'"{row.sha256}"',
        "Content-Disposition": f'{disposition}; filename="{file}"',
        # a version number names immutable bytes; an alias may move
        "Cache-Control": "public, max-age=31536000, immutable" if version.isdigit() else "no-cache",
    }
    if _etag_matches(request.headers.get("if-none-match"), row.sha256):
        return Response(status_code=304, headers=headers)
    headers["Content-Length"] = str(row.size)
    if request.method == "HEAD":
        return Response(headers=headers, media_type=row.content_type)
    if row.size <= CHUNK:  # read in this thread: streaming costs a thread hop per chunk and one to end
        return Response(registry.read(row.sha256), headers=headers, media_type=row.content_type)
    return StreamingResponse(_chunks(registry, row.sha256), headers=headers, media_type=row.content_type)


def _etag_matches(if_none_match: str | None, sha256: str) -> bool:
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/").strip('"') for tag in if_none_match.split(",")]
    return "*" in tags or sha256 in tags


def _chunks(registry: Registry, sha256: str) -> Iterator[bytes]:
    with registry.blobs.open(sha256) as f:
        while chunk := f.read(CHUNK):
            yield chunk


@router.put("/{name}/aliases/{alias}", responses=error_responses(404, 422), dependencies=[OwnedModel])
def set_alias(
    name: NamePath,
    alias: Annotated[str, Path(description="Alias name, starting with a letter.", examples=["prod"])],
    body: AliasIn,
    registry: RegistryDep,
) -> AliasOut:
    """Create or move an alias; `latest` is maintained by the registry and cannot be set."""
    return AliasOut.from_row(registry.set_alias(name, alias, body.version))


@router.delete(
    "/{name}/aliases/{alias}", status_code=204, responses=error_responses(404, 422), dependencies=[OwnedModel]
)
def delete_alias(name: NamePath, alias: str, registry: RegistryDep) -> Response:
    registry.delete_alias(name, alias)
    return Response(status_code=204)


@router.post("/{name}/tags", responses=error_responses(404, 422), dependencies=[OwnedModel])
def add_tags(name: NamePath, body: TagsIn, registry: RegistryDep) -> ModelOut:
    registry.add_tags(name, body.tags)
    return _model_out(registry, name)


@router.delete("/{name}/tags/{tag}", status_code=204, responses=error_responses(404), dependencies=[OwnedModel])
def remove_tag(name: NamePath, tag: str, registry: RegistryDep) -> Response:
    registry.remove_tag(name, tag)
    return Response(status_code=204)

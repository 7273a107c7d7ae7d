"""JSON bodies of the registry API (`/v1/models`): what requests send and responses return."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from warmzoo.models.outcome import SAMPLES, judge
from warmzoo.models.spec import RNNSpec
from warmzoo.service.registry.artifacts import FILE_KINDS
from warmzoo.service.registry.registry import MAX_INT, Page
from warmzoo.service.registry.tables import AliasRow, ComparisonRow, FileRow, ModelRow, VersionRow

T = TypeVar("T")
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL characters


def file_url(name: str, number: int, file: str) -> str:
    return f"/v1/models/{name}/versions/{number}/files/{file}"


class Metrics(BaseModel):
    """How multistable the network is; other measurements may appear beside these."""

    model_config = ConfigDict(extra="allow")

    vaa_before: float | None = Field(None, description="Exact VAA of the initialisation before warm-up.")
    vaa_after: float | None = Field(None, description="Exact VAA after warm-up.")
    vaa_star_history: list[float] = Field(default_factory=list, description="VAA* at each warm-up step.")


class OutcomeOut(BaseModel):
    """What the warm-up achieved, judged from the exact VAA before and after (models.outcome)."""

    kind: Literal["multistable", "monostable", "lowered"]
    summary: str
    advice: str | None = Field(description="What to try when the warm-up did not help.")

    @classmethod
    def of(cls, metrics: dict[str, Any]) -> OutcomeOut | None:
        judged = judge(metrics.get("vaa_before"), metrics.get("vaa_after"), metrics.get("vaa_samples") or SAMPLES)
        return None if judged is None else cls.model_validate(judged.as_dict())


class ComparisonOut(BaseModel):
    """A compare job's result: the version's weights ("warmed") and a cold initialisation trained alike."""

    id: int
    job_id: str | None
    config: dict[str, Any] = Field(description="Task, seeds, steps, data sizes, the cold initialisation, device.")
    result: dict[str, Any] = Field(
        description="`runs.{warmed,cold}[i]`: each seed's `history` (step, train/val/test loss, exact VAA),"
        " `test_loss` and `best_step`; `summary` per arm; `chance_loss`; `training` (the optimiser settings)."
    )
    created_at: datetime

    @classmethod
    def from_row(cls, row: ComparisonRow) -> ComparisonOut:
        return cls(id=row.id, job_id=row.job_id, config=row.config, result=row.result, created_at=row.created_at)


class FileOut(BaseModel):
    name: str = Field(examples=["weights.safetensors"])
    sha256: str | None = Field(description="Hex sha256 of the bytes (the download's ETag); null until first produced.")
    size: int | None = Field(description="Bytes; null until first produced.")
    content_type: str
    description: str
    url: str


class VersionRefOut(BaseModel):
    model: str
    version: int


class VersionOut(BaseModel):
    """One immutable version: what it is, how it was made, how multistable it is, its files."""

    name: str = Field(description="Model name.")
    version: int
    spec: RNNSpec
    warmup: dict[str, Any] | None = Field(description="Warm-up configuration; null for uploaded weights.")
    data: dict[str, Any] | None = Field(description="Warm-up input data: a task and its size, or a data set id.")
    metrics: Metrics
    outcome: OutcomeOut | None = Field(description="What the warm-up achieved; null for uploaded weights.")
    files: list[FileOut]
    sha256: str = Field(description="sha256 of weights.safetensors: the version's content address.")
    created_at: datetime
    seed: int | None
    device: str | None
    libraries: dict[str, Any] | None = Field(description="Library versions of the process that produced the weights.")
    seconds: float | None = Field(description="Wall time of the warm-up.")
    base: VersionRefOut | None = Field(description="The version this one was warmed up from.")
    aliases: list[str] = Field(description="Aliases that point at this version now.")
    tags: list[str] = Field(description="Tags of the model.")

    @classmethod
    def from_row(cls, row: VersionRow) -> VersionOut:
        name = row.model.name
        stored: dict[str, FileRow] = {f.name: f for f in row.files}
        spec = RNNSpec.model_validate(row.spec)
        files = [
            FileOut(
                name=kind.name,
                sha256=stored[kind.name].sha256 if kind.name in stored else None,
                size=stored[kind.name].size if kind.name in stored else None,
                content_type=kind.content_type,
                description=kind.description,
                url=file_url(name, row.number, kind.name),
            )
            for kind in FILE_KINDS.values()
            if kind.exists_for(spec)
        ]
        return cls(
            name=name,
            version=row.number,
            spec=spec,
            warmup=row.warmup,
            data=row.data,
            metrics=Metrics.model_validate(row.metrics),
            outcome=OutcomeOut.of(row.metrics),
            files=files,
            sha256=row.sha256,
            created_at=row.created_at,
            seed=row.seed,
            device=row.device,
            libraries=row.libraries,
            seconds=row.seconds,
            base=VersionRefOut(model=row.base.model.name, version=row.base.number) if row.base else None,
            aliases=[a.name for a in row.model.aliases if a.version_id == row.id],
            tags=[t.name for t in row.model.tags],
        )


class VersionSummary(BaseModel):
    version: int
    spec: RNNSpec
    metrics: Metrics
    sha256: str
    created_at: datetime


class ModelOut(BaseModel):
    """A model of the zoo with its newest version in brief."""

    name: str
    description: str
    owner: str | None
    tags: list[str]
    aliases: dict[str, int] = Field(description="Alias name -> version number.")
    versions: int = Field(description="Number of versions (they are numbered 1 to this).")
    latest: VersionSummary
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_rows(cls, model: ModelRow, latest: VersionRow) -> ModelOut:
        return cls(
            name=model.name,
            description=model.description,
            owner=model.owner,
            tags=[t.name for t in model.tags],
            aliases={a.name: a.version.number for a in model.aliases},
            versions=latest.number,
            latest=VersionSummary(
                version=latest.number,
                spec=RNNSpec.model_validate(latest.spec),
                metrics=Metrics.model_validate(latest.metrics),
                sha256=latest.sha256,
                created_at=latest.created_at,
            ),
            created_at=model.created_at,
            updated_at=model.updated_at,
        )


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="Matches in all, across pages.")
    limit: int
    offset: int

    @classmethod
    def of(cls, page: Page[Any], items: list[T]) -> PageOut[T]:
        return cls(items=items, total=page.total, limit=page.limit, offset=page.offset)


class AliasIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": 3}]})

    version: int = Field(ge=1, le=MAX_INT, description="The version number the alias should point at.")


class AliasOut(BaseModel):
    name: str
    alias: str
    version: int

    @classmethod
    def from_row(cls, row: AliasRow) -> AliasOut:
        return cls(name=row.model.name, alias=row.name, version=row.version.number)


class TagsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"tags": ["denoising", "paper"]}]})

    tags: list[str] = Field(min_length=1, max_length=50)


class ModelPatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"description": "GRU warmed on denoising."}]}
    )

    description: str = Field(max_length=10_000, pattern=NO_NUL)

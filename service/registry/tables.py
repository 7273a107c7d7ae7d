"""The registry database schema (SQLAlchemy 2 typed ORM), shared by SQLite and PostgreSQL.

Rows are named `*Row`: the word "model" alone belongs to the RNN package. A version is
immutable once committed; aliases and tags are the mutable parts of a model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, object_session, relationship

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={"ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s"})
    type_annotation_map = {dict[str, Any]: JSONType, list[Any]: JSONType, datetime: UTCDateTime}


class ModelRow(Base):
    """A named entry of the zoo; its content lives in its versions."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    owner: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)

    versions: Mapped[list[VersionRow]] = relationship(
        back_populates="model", order_by="VersionRow.number", foreign_keys="VersionRow.model_id"
    )
    aliases: Mapped[list[AliasRow]] = relationship(back_populates="model", order_by="AliasRow.name")
    tags: Mapped[list[TagRow]] = relationship(back_populates="model", order_by="TagRow.name")


class VersionRow(Base):
    """One immutable, content-addressed set of weights with how it was made and measured.

    `cell`, `hidden_size`, `num_layers`, `task` and `vaa_after` copy fields of the JSON
    columns so that the zoo can be filtered with plain indexes on every backend.
    """

    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("model_id", "number", name="uq_versions_model_number"),
        Index("ix_versions_search", "cell", "hidden_size"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]]
    warmup: Mapped[dict[str, Any] | None]
    data: Mapped[dict[str, Any] | None]
    seed: Mapped[int | None]
    device: Mapped[str | None] = mapped_column(String(50))
    libraries: Mapped[dict[str, Any] | None]
    metrics: Mapped[dict[str, Any]]
    seconds: Mapped[float | None] = mapped_column(Float)
    base_version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    cell: Mapped[str] = mapped_column(String(20))
    hidden_size: Mapped[int]
    num_layers: Mapped[int]
    task: Mapped[str | None] = mapped_column(String(100), index=True)
    vaa_after: Mapped[float | None] = mapped_column(Float, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    model: Mapped[ModelRow] = relationship(back_populates="versions", foreign_keys=[model_id])
    base: Mapped[VersionRow | None] = relationship(remote_side=[id])
    files: Mapped[list[FileRow]] = relationship(back_populates="version", order_by="FileRow.name")
    comparisons: Mapped[list[ComparisonRow]] = relationship(back_populates="version", order_by="ComparisonRow.id")


@event.listens_for(VersionRow, "before_update")
def _versions_are_immutable(mapper: Any, connection: Any, target: VersionRow) -> None:
    session = object_session(target)
    if session is not None and session.is_modified(target, include_collections=False):
        raise ValueError(f"version {target.number} is immutable; publish a new version instead")


class AliasRow(Base):
    """A mutable pointer from a name (e.g. `latest`, `prod`) to one version of a model."""

    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("model_id", "name", name="uq_aliases_model_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    model: Mapped[ModelRow] = relationship(back_populates="aliases")
    version: Mapped[VersionRow] = relationship()


class TagRow(Base):
    """A free label on a model, used by the `tag` search filter."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("model_id", "name", name="uq_tags_model_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64), index=True)

    model: Mapped[ModelRow] = relationship(back_populates="tags")


class FileRow(Base):
    """A downloadable file of a version, stored as the blob named by its sha256.

    `details` holds what producing it found out, e.g. the ONNX parity report.
    """

    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("version_id", "name", name="uq_files_version_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))
    details: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    version: Mapped[VersionRow] = relationship(back_populates="files")


class ComparisonRow(Base):
    """A version's weights and a cold initialisation of its spec trained alike on its task (a
    compare job's result: `config` as run, `result` every learning curve and test loss)."""

    __tablename__ = "comparisons"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(String(36))
    config: Mapped[dict[str, Any]]
    result: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    version: Mapped[VersionRow] = relationship(back_populates="comparisons")


class JobRow(Base):
    """A warm-up, measure or export job; this table is the source of truth for job state.

    `owner` may cancel it; a warm-up's version is published as `request["owner"]`.

    Workers claim the queued job of highest `priority`, oldest first, by taking a lease
    (`lease_owner`, `lease_expires_at`); an expired lease puts the job back in the queue until `max_attempts` is reached.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "status", "priority", "created_at"),
        Index("ix_jobs_key_status", "key_id", "status"),
        UniqueConstraint("idempotency_scope", "idempotency_key", name="uq_jobs_idempotency_scope"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher first; the starter catalogue runs lowest
    request: Mapped[dict[str, Any]]
    progress: Mapped[dict[str, Any] | None]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # the owner the key belongs to ('' without one): one owner's keys never meet another's
    idempotency_scope: Mapped[str] = mapped_column(String(200), default="", server_default="")
    owner: Mapped[str | None] = mapped_column(String(200))  # who submitted it (None: auth off)
    key_id: Mapped[str | None] = mapped_column(String(16))  # the API key it came with, for the per-key job cap
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(index=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DatasetRow(Base):
    """An uploaded warm-up data set of N sequences of T steps of I features, stored as a blob;
    `owner` is who uploaded it (None: auth off)."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    shape: Mapped[list[Any]]
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKeyRow(Base):
    """An API key: only the sha256 of its secret is stored; `id` is the public part of the key,
    shown in listings and logs. A revoked key stays listed, refused from the moment of revocation."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(200), index=True)
    scope: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

"""The registry service layer: publish, resolve, search and annotate versions of models.

Pure Python over one SQLAlchemy session and a blob store; HTTP routes and job workers
both call it. Invariants it keeps:
- a version's blobs are durable before its row commits (no row ever points at nothing);
- version numbers are 1, 2, 3... per model, without gaps or duplicates, even when
  publishers race (a unique constraint plus retry);
- versions never change; aliases (`latest` among them) and tags are the mutable parts.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import ValidationError
from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, contains_eager, joinedload

from warmzoo.models.spec import RNNSpec
from warmzoo.models.weights import WeightsError, metadata_spec, network_from_weights, read_safetensors, weights_bytes
from warmzoo.service.core.errors import Reason, WarmzooError, validation_error
from warmzoo.service.registry.artifacts import FILE_KINDS, FileKind, Source
from warmzoo.service.registry.blobs import Blob, BlobStore
from warmzoo.service.registry.card import render_card
from warmzoo.service.registry.tables import AliasRow, ComparisonRow, FileRow, ModelRow, TagRow, VersionRow, utcnow

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
ALIAS_RE = re.compile(r"[a-z][a-z0-9._-]{0,63}")  # starts with a letter: never mistaken for a number
TAG_RE = re.compile(r"[a-z0-9][a-z0-9._:+-]{0,63}")
LATEST = "latest"
MAX_INT = 2**31 - 1  # the largest INTEGER of every backend: larger inputs cannot match and must not be bound
PUBLISH_ATTEMPTS = 20

T = TypeVar("T")
SortKey = Literal["name", "-name", "created_at", "-created_at", "updated_at", "-updated_at", "vaa_after", "-vaa_after"]


@dataclass(frozen=True)
class VersionRef:
    """A version named by model and number or alias, e.g. the `base` of a warm-up."""

    model: str
    version: int | str


@dataclass(frozen=True)
class ModelFilter:
    """Search criteria; each filter applies to the model's `latest` version."""

    q: str | None = None
    cell: str | None = None
    hidden_size: int | None = None
    task: str | None = None
    tag: str | None = None
    vaa_after_min: float | None = None
    vaa_after_max: float | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def _check_pattern(value: str, pattern: re.Pattern[str], field: str, what: str, rule: str, code: str) -> str:
    if not pattern.fullmatch(value):
        raise WarmzooError(Reason.INVALID, f"{field} {value!r} is not a valid {what}: use {rule}", field=field, code=code)
    return value


def check_name(name: str, field: str = "name") -> str:
    rule = "1-100 characters a-z, 0-9, '.', '_', '-', starting with a letter or digit"
    return _check_pattern(name, NAME_RE, field, "model name", rule, "invalid_name")


def check_alias(alias: str, field: str = "alias") -> str:
    rule = "1-64 characters a-z, 0-9, '.', '_', '-', starting with a letter"
    return _check_pattern(alias, ALIAS_RE, field, "alias", rule, "invalid_alias")


def check_tag(tag: str, field: str = "tag") -> str:
    rule = "1-64 characters a-z, 0-9, '.', '_', ':', '+', '-'"
    return _check_pattern(tag, TAG_RE, field, "tag", rule, "invalid_tag")


def not_owner(what: str, owner: str | None) -> WarmzooError:
    """403 for a change to something of another owner's (see service.auth)."""
    holder = f"belongs to {owner}" if owner else "has no owner (published with auth off, or a starter)"
    return WarmzooError(Reason.FORBIDDEN, f"{what} {holder}; only its owner or an admin may change it", code="not_owner")


def _invalid_weights(exc: WeightsError) -> WarmzooError:
    return WarmzooError(Reason.INVALID, f"weights: {exc}", field="weights", code="invalid_weights")


def _metadata_spec(metadata: dict[str, str]) -> RNNSpec | None:
    try:
        return metadata_spec(metadata)
    except ValidationError as exc:
        raise validation_error(exc.errors(), prefix="weights.metadata.spec") from exc


def spec_from_weights(weights: bytes) -> RNNSpec:
    """The spec a safetensors file carries in its metadata (files downloaded from a zoo do)."""
    try:
        _, metadata = read_safetensors(weights)
    except WeightsError as exc:
        raise _invalid_weights(exc) from exc
    spec = _metadata_spec(metadata)
    if spec is None:
        raise WarmzooError(
            Reason.INVALID, "spec is missing and the weights file carries no spec in its metadata; send `spec`", field="spec"
        )
    return spec


def canonical_weights(spec: RNNSpec, weights: bytes) -> bytes:
    """Check uploaded safetensors against the spec and re-serialise them with the spec in the
    metadata, so that every stored weights file is self-describing (its sha256 is the version's)."""
    try:
        _, metadata = read_safetensors(weights)
        declared = _metadata_spec(metadata)
        if declared is not None and declared != spec:
            raise WarmzooError(
                Reason.INVALID,
                f"spec {spec.model_dump_json()} differs from the spec in the weights file's metadata "
                f"{declared.model_dump_json()}",
                field="spec",
                code="spec_mismatch",
            )
        return weights_bytes(network_from_weights(weights, spec))
    except WeightsError as exc:
        raise _invalid_weights(exc) from exc


# Producing a derived file takes seconds; striped locks stop two requests of one process from
# doing it twice (across processes the unique (version, name) constraint settles the race).
_FILE_LOCKS = [threading.Lock() for _ in range(64)]


def _file_lock(version_id: int, name: str) -> threading.Lock:
    return _FILE_LOCKS[hash((version_id, name)) % len(_FILE_LOCKS)]


_SORT_COLUMNS: dict[str, Any] = {
    "name": ModelRow.name,
    "created_at": ModelRow.created_at,
    "updated_at": ModelRow.updated_at,
    "vaa_after": VersionRow.vaa_after,
}

# What a model's JSON shows besides its row, joined into the query that loads it (one query
# where one per collection cost twice the time); of an alias's version only the number.
_MODEL_EXTRAS = (
    joinedload(ModelRow.tags),
    joinedload(ModelRow.aliases).joinedload(AliasRow.version).load_only(VersionRow.number),
)


class Registry:
    """Versions, aliases, tags and files of the zoo, over one session and one blob store."""

    def __init__(self, session: Session, blobs: BlobStore) -> None:
        self.session = session
        self.blobs = blobs

    # -- publishing -------------------------------------------------------------------------

    def publish_version(
        self,
        name: str,
        spec: RNNSpec,
        weights: bytes,
        *,
        warmup: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        seed: int | None = None,
        device: str | None = None,
        metrics: dict[str, Any] | None = None,
        seconds: float | None = None,
        libraries: dict[str, Any] | None = None,
        base: VersionRef | None = None,
        description: str | None = None,
        tags: Sequence[str] = (),
        owner: str | None = None,
        in_transaction: Callable[[VersionRow], None] | None = None,
    ) -> VersionRow:
        """Store the weights and the card, then commit version n+1 of `name` (creating the
        model on first publish, owned by `owner`) and move `latest` to it. An existing model
        must already belong to `owner` (403 otherwise: see service.auth). The description, when given,
        replaces the model's; tags are added to the model's. `in_transaction(version)` runs
        just before the commit, in the same transaction (a job records its result there, so a
        retried job never publishes twice); if it raises, nothing is committed."""
        check_name(name)
        for i, tag in enumerate(tags):
            check_tag(tag, f"tags.{i}")
        base_row = self.resolve(base.model, base.version, ("base.model", "base.version")) if base else None
        weights_blob = self.blobs.put_bytes(canonical_weights(spec, weights))
        metrics = {"vaa_before": None, "vaa_after": None, "vaa_star_history": [], **(metrics or {})}
        fields = dict(
            spec=spec.model_dump(mode="json"),
            warmup=warmup,
            data=data,
            seed=seed,
            device=device,
            libraries=libraries,
            metrics=metrics,
            seconds=seconds,
            sha256=weights_blob.sha256,
            cell=spec.cell,
            hidden_size=spec.hidden_size,
            num_layers=spec.num_layers,
            task=(data or {}).get("task"),
            vaa_after=metrics.get("vaa_after"),
        )
        for _ in range(PUBLISH_ATTEMPTS):
            try:
                version = self._insert_version(name, fields, weights_blob, base_row, description, tags, owner)
                if in_transaction is not None:
                    in_transaction(version)
                self.session.commit()
                return version
            except (IntegrityError, OperationalError) as exc:
                # Another publisher took this number or created the model first, or SQLite
                # refused to upgrade a stale read to a write: both mean "retry".
                self.session.rollback()
                if isinstance(exc, OperationalError) and "database is locked" not in str(exc):
                    raise
                time.sleep(random.uniform(0, 0.02))  # de-synchronise the racers
            except BaseException:
                self.session.rollback()
                raise
        raise WarmzooError(Reason.CONFLICT, f"could not publish {name!r}: too many concurrent publishers, retry", field="name")

    def _insert_version(
        self,
        name: str,
        fields: dict[str, Any],
        weights_blob: Blob,
        base: VersionRow | None,
        description: str | None,
        tags: Sequence[str],
        owner: str | None,
    ) -> VersionRow:
        model = self.session.scalar(select(ModelRow).where(ModelRow.name == name).with_for_update())
        if model is None:
            model = ModelRow(name=name, owner=owner, description=description or "")
            self.session.add(model)
            self.session.flush()
        elif model.owner != owner:
            raise not_owner(f"model {name!r}", model.owner)
        elif description is not None:
            model.description = description
        last = self.session.scalar(select(func.max(VersionRow.number)).where(VersionRow.model_id == model.id))
        version = VersionRow(model=model, number=(last or 0) + 1, base=base, **fields)
        self.session.add(version)
        self.session.flush()
        self._add_file(version, "weights.safetensors", weights_blob)
        self._add_file(version, "README.md", self.blobs.put_bytes(render_card(version).encode()))
        self._point_alias(model, LATEST, version)
        self._add_tags(model, tags)
        model.updated_at = utcnow()
        self.session.flush()
        return version

    def add_comparison(
        self,
        version: VersionRow,
        config: dict[str, Any],
        result: dict[str, Any],
        job_id: str | None = None,
        in_transaction: Callable[[ComparisonRow], None] | None = None,
    ) -> ComparisonRow:
        """Store a comparison of `version` and rewrite its card, which quotes the newest one; then
        commit, with `in_transaction(row)` run just before in the same transaction (a job
        records its result there)."""
        row = ComparisonRow(version=version, job_id=job_id, config=config, result=result)
        self.session.add(row)
        self.session.flush()
        card = self.blobs.put_bytes(render_card(version).encode())
        stored = next(f for f in version.files if f.name == "README.md")
        stored.sha256, stored.size = card.sha256, card.size
        try:
            if in_transaction is not None:
                in_transaction(row)
            self.session.commit()
        except BaseException:
            self.session.rollback()
            raise
        return row

    def _add_file(self, version: VersionRow, name: str, blob: Blob, details: dict[str, Any] | None = None) -> FileRow:
        row = FileRow(
            version=version,
            name=name,
            sha256=blob.sha256,
            size=blob.size,
            content_type=FILE_KINDS[name].content_type,
            details=details,
        )
        self.session.add(row)
        return row

    # -- reading ----------------------------------------------------------------------------

    def get_model(self, name: str, field: str = "name") -> ModelRow:
        model = None
        if NAME_RE.fullmatch(name):  # no other name can exist: never send it to the database
            model = self.session.scalars(select(ModelRow).where(ModelRow.name == name).options(*_MODEL_EXTRAS)).first()
        if model is None:
            raise WarmzooError(Reason.NOT_FOUND, f"{field}: no model named {name!r}", field=field, code="model_not_found")
        return model

    def resolve(self, name: str, version: int | str, fields: tuple[str, str] = ("name", "version")) -> VersionRow:
        """A version by number (`3`, `"3"`) or alias (`"latest"`); `fields` name the inputs in errors."""
        field = fields[1]
        if isinstance(version, int) or re.fullmatch(r"[0-9]+", version):
            number = int(version)
            row = self._numbered(name, number) if NAME_RE.fullmatch(name) and number <= MAX_INT else None
            if row is None:  # the slow path of a 404: which of the two is missing
                model = self.get_model(name, fields[0])
                last = self.session.scalar(select(func.max(VersionRow.number)).where(VersionRow.model_id == model.id))
                raise WarmzooError(
                    Reason.NOT_FOUND,
                    f"{field}: model {name!r} has no version {version} (it has versions 1 to {last})",
                    field=field,
                    code="version_not_found",
                )
            return row
        model = self.get_model(name, fields[0])
        check_alias(version, field)
        alias = self._alias(model, version)
        if alias is None:
            known = ", ".join(self.session.scalars(select(AliasRow.name).where(AliasRow.model_id == model.id)))
            raise WarmzooError(
                Reason.NOT_FOUND,
                f"{field}: model {name!r} has no alias {version!r} (aliases: {known})",
                field=field,
                code="alias_not_found",
            )
        return alias.version

    def _numbered(self, name: str, number: int) -> VersionRow | None:
        """Version `number` of model `name` with what a version's JSON shows (its model's tags and
        aliases, its files) in one joined query: 0.9 ms where a query per collection took 2.1
        and loading on access nine queries. The collections are a handful of rows each."""
        model = contains_eager(VersionRow.model)
        return (
            self.session.scalars(
                select(VersionRow)
                .join(VersionRow.model)
                .where(ModelRow.name == name, VersionRow.number == number)
                .options(
                    model.joinedload(ModelRow.tags), model.joinedload(ModelRow.aliases), joinedload(VersionRow.files)
                )
            )
            .unique()
            .first()
        )

    def _alias(self, model: ModelRow, alias: str) -> AliasRow | None:
        return self.session.scalar(select(AliasRow).where(AliasRow.model_id == model.id, AliasRow.name == alias))

    def list_versions(self, name: str, limit: int, offset: int) -> Page[VersionRow]:
        model = self.get_model(name)
        where = VersionRow.model_id == model.id
        total = self.session.scalar(select(func.count()).select_from(VersionRow).where(where)) or 0
        rows = self.session.scalars(
            select(VersionRow).where(where).order_by(VersionRow.number).limit(limit).offset(offset)
        ).all()
        return Page(list(rows), total, limit, offset)

    def version_numbers(self) -> list[tuple[str, int]]:
        """(model name, version number) of every version, by name and number: the inference repository's index."""
        stmt = select(ModelRow.name, VersionRow.number).join(VersionRow, VersionRow.model_id == ModelRow.id)
        rows = self.session.execute(stmt.order_by(ModelRow.name, VersionRow.number))
        return [(name, number) for name, number in rows]

    def search(
        self, filters: ModelFilter, limit: int, offset: int, sort: SortKey = "name"
    ) -> Page[tuple[ModelRow, VersionRow]]:
        """Models with their `latest` version, filtered on that version, paginated."""
        stmt = (
            select(ModelRow, VersionRow)
            .join(AliasRow, (AliasRow.model_id == ModelRow.id) & (AliasRow.name == LATEST))
            .join(VersionRow, VersionRow.id == AliasRow.version_id)
        )
        for condition in self._conditions(filters):
            stmt = stmt.where(condition)
        total = self.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        column = _SORT_COLUMNS[sort.lstrip("-")]
        order = column.desc().nulls_last() if sort.startswith("-") else column.asc().nulls_last()
        page = stmt.options(*_MODEL_EXTRAS).order_by(order, ModelRow.id).limit(limit).offset(offset)
        return Page([(model, version) for model, version in self.session.execute(page).unique()], total, limit, offset)

    @staticmethod
    def _conditions(filters: ModelFilter) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if filters.q:
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", filters.q.lower()) + "%"
            conditions.append(
                or_(
                    func.lower(ModelRow.name).like(pattern, escape="\\"),
                    func.lower(ModelRow.description).like(pattern, escape="\\"),
                )
            )
        if filters.cell is not None:
            conditions.append(VersionRow.cell == filters.cell)
        if filters.hidden_size is not None:
            conditions.append(VersionRow.hidden_size == filters.hidden_size)
        if filters.task is not None:
            conditions.append(VersionRow.task == filters.task)
        if filters.tag is not None:
            conditions.append(exists().where(TagRow.model_id == ModelRow.id, TagRow.name == filters.tag))
        if filters.vaa_after_min is not None:
            conditions.append(VersionRow.vaa_after >= filters.vaa_after_min)
        if filters.vaa_after_max is not None:
            conditions.append(VersionRow.vaa_after <= filters.vaa_after_max)
        return conditions

    # -- the mutable parts ------------------------------------------------------------------

    def update_description(self, name: str, description: str) -> ModelRow:
        model = self.get_model(name)
        model.description = description
        model.updated_at = utcnow()
        self.session.commit()
        return model

    def set_alias(self, name: str, alias: str, number: int) -> AliasRow:
        """Point `alias` at version `number` (creating or moving it); `latest` is not settable."""
        self._check_user_alias(alias)
        version = self.resolve(name, number)
        try:
            row = self._point_alias(version.model, alias, version)
            version.model.updated_at = utcnow()
            self.session.commit()
        except IntegrityError:  # created concurrently: move the winner's row instead
            self.session.rollback()
            return self.set_alias(name, alias, number)
        return row

    def delete_alias(self, name: str, alias: str) -> None:
        self._check_user_alias(alias)
        model = self.get_model(name)
        row = self._alias(model, alias)
        if row is None:
            raise WarmzooError(Reason.NOT_FOUND, f"alias: model {name!r} has no alias {alias!r}", field="alias", code="alias_not_found")
        self._remove(model, row, "aliases")

    @staticmethod
    def _check_user_alias(alias: str) -> None:
        check_alias(alias)
        if alias == LATEST:
            message = "alias 'latest' always points at the newest version; choose another alias name"
            raise WarmzooError(Reason.INVALID, message, field="alias", code="reserved_alias")

    def _point_alias(self, model: ModelRow, alias: str, version: VersionRow) -> AliasRow:
        row = self._alias(model, alias)
        if row is None:
            row = AliasRow(model=model, name=alias, version=version)
            self.session.add(row)
        else:
            row.version = version
        self.session.flush()
        return row

    def add_tags(self, name: str, tags: Sequence[str]) -> ModelRow:
        for i, tag in enumerate(tags):
            check_tag(tag, f"tags.{i}")
        model = self.get_model(name)
        for _ in range(2):
            self._add_tags(model, tags)
            model.updated_at = utcnow()
            try:
                self.session.commit()
                break
            except IntegrityError:  # one of the tags was added concurrently: add the others again
                self.session.rollback()
        self.session.refresh(model)
        return model

    def _add_tags(self, model: ModelRow, tags: Sequence[str]) -> None:
        present = set(self.session.scalars(select(TagRow.name).where(TagRow.model_id == model.id)))
        for tag in dict.fromkeys(tags):
            if tag not in present:
                self.session.add(TagRow(model=model, name=tag))

    def remove_tag(self, name: str, tag: str) -> None:
        model = self.get_model(name)
        row = next((t for t in model.tags if t.name == tag), None)
        if row is None:
            raise WarmzooError(Reason.NOT_FOUND, f"tag: model {name!r} has no tag {tag!r}", field="tag", code="tag_not_found")
        self._remove(model, row, "tags")

    def _remove(self, model: ModelRow, row: AliasRow | TagRow, relation: str) -> None:
        """Delete one of the model's aliases or tags; the model counts as updated."""
        self.session.delete(row)
        model.updated_at = utcnow()
        self.session.commit()
        self.session.expire(model, [relation])

    # -- files ------------------------------------------------------------------------------

    def get_or_create_file(self, version: VersionRow, name: str) -> FileRow:
        """The stored file `name` of `version`, producing and storing it first if it is derived."""
        kind = FILE_KINDS.get(name)
        if kind is None:
            raise WarmzooError(
                Reason.NOT_FOUND,
                f"file: {name!r} is not a file of a version; they are {', '.join(FILE_KINDS)}",
                field="file",
                code="file_not_found",
            )
        spec = RNNSpec.model_validate(version.spec)
        if not kind.exists_for(spec):
            raise WarmzooError(
                Reason.NOT_FOUND,
                f"file: {name} exists only for {', '.join(kind.cells or ())} networks, and this one is {spec.cell};"
                " download modeling.py (plain PyTorch) or weights.safetensors instead",
                field="file",
                code="file_not_found",
            )
        existing = self._stored_file(version, name)
        if existing is not None:
            return existing
        with _file_lock(version.id, name):
            return self._stored_file(version, name) or self._produce_file(version, kind)

    def _stored_file(self, version: VersionRow, name: str) -> FileRow | None:
        return self.session.scalar(
            select(FileRow)
            .where(FileRow.version_id == version.id, FileRow.name == name)
            .execution_options(populate_existing=True)
        )

    def _produce_file(self, version: VersionRow, kind: FileKind) -> FileRow:
        if kind.produce is None:  # stored at publish time: its absence is a broken store, not a request error
            raise RuntimeError(f"version {version.id} lacks its stored file {kind.name}")
        data, details = kind.derive(Source(version, lambda: self.read(version.sha256)))
        row = self._add_file(version, kind.name, self.blobs.put_bytes(data), details)
        try:
            self.session.commit()
        except IntegrityError:  # another process stored it first: serve theirs
            self.session.rollback()
            stored = self._stored_file(version, kind.name)
            assert stored is not None
            return stored
        return row

    def read(self, sha256: str) -> bytes:
        with self.blobs.open(sha256) as f:
            return f.read()

"""Consistency of the registry's rows with the blob store, checked (and repaired) after a crash,
a lost disk or a hand-edited bucket: `warmzoo fsck [--repair]`.

What it finds, and what `--repair` does:
- a blob whose bytes do not hash to its name: deleted (its rows then count as missing, below);
- a row pointing at a missing blob:
  - a derived file (state_dict.pt, model.onnx, cell.onnx): the row is deleted; the file is
    produced again, from the weights, on its next download or export job;
  - a model card (README.md): rendered again from the version row and stored;
  - a version's weights: unrecoverable. Reported only: the version row stays, because its number
    is history that aliases, jobs and users refer to; re-upload the weights as a new version;
  - a data set: unrecoverable; its row is deleted, so that a warm-up naming it is refused up
    front (404) instead of failing in a worker;
- a blob no row points at: deleted once older than the grace period. Blobs are stored before
  their row commits, so a younger one may belong to a publish still in flight;
- leftovers of interrupted writes (local temporary files, unfinished S3 multipart uploads):
  removed once older than the grace period.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from warmzoo.service.registry.artifacts import FILE_KINDS
from warmzoo.service.registry.blobs import CHUNK, BlobStore
from warmzoo.service.registry.card import render_card
from warmzoo.service.registry.tables import DatasetRow, FileRow, VersionRow

DEFAULT_GRACE = timedelta(hours=1)
WEIGHTS = "weights.safetensors"
CARD = "README.md"


@dataclass
class Finding:
    problem: str  # corrupt_blob, missing_file, missing_card, missing_weights, missing_dataset, orphan_blob, leftover
    subject: str
    remedy: str | None  # what --repair does about it; None: nothing can be done automatically
    repaired: bool = False

    def line(self) -> str:
        if self.remedy is None:
            status = "UNRECOVERABLE"
        else:
            status = f"repaired: {self.remedy}" if self.repaired else f"--repair would: {self.remedy}"
        return f"{self.problem:16} {self.subject}  ({status})"


@dataclass
class Report:
    blobs: int = 0
    rows: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def unresolved(self) -> list[Finding]:
        return [f for f in self.findings if not f.repaired]


def fsck(
    session: Session,
    blobs: BlobStore,
    *,
    repair: bool = False,
    grace: timedelta = DEFAULT_GRACE,
    now: datetime | None = None,
) -> Report:
    """Check every blob against its name and every row against the blobs; repair if asked.

    The store is listed before the rows are read, so it is safe beside a live server: a blob
    written after the listing is not judged, a row committed after it is checked against the
    store again before it counts as missing, and a listed blob without a row has had time to
    get one unless it is younger than `grace` (or a publish takes longer than that)."""
    cutoff = (now or datetime.now(UTC)) - grace
    report = Report()
    listed = list(blobs.list())
    leftovers = list(blobs.leftovers())
    report.blobs = len(listed)

    present: set[str] = set()
    for blob in listed:
        if _digest(blobs, blob.sha256) == blob.sha256:
            present.add(blob.sha256)
            continue
        finding = Finding("corrupt_blob", f"blob {blob.sha256}", "delete it")
        if repair:
            blobs.delete(blob.sha256)
            finding.repaired = True
        else:
            present.add(blob.sha256)  # rows pointing at it are reported through this finding only
        report.findings.append(finding)

    files = session.scalars(select(FileRow).options(selectinload(FileRow.version).selectinload(VersionRow.model))).all()
    datasets = session.scalars(select(DatasetRow)).all()
    report.rows = len(files) + len(datasets)

    def missing(sha256: str) -> bool:
        return sha256 not in present and not blobs.exists(sha256)

    for row in files:
        if missing(row.sha256):
            report.findings.append(_missing_file(session, blobs, row, repair))
    for dataset in datasets:
        if missing(dataset.sha256):
            finding = Finding("missing_dataset", f"data set {dataset.id} ({dataset.name!r})", "delete its row")
            if repair:
                session.delete(dataset)
                finding.repaired = True
            report.findings.append(finding)
    if repair:
        session.commit()

    referenced = _referenced(session)
    for blob in listed:
        if blob.sha256 in present and blob.sha256 not in referenced and blob.modified < cutoff:
            finding = Finding("orphan_blob", f"blob {blob.sha256} ({blob.size} bytes)", "delete it")
            if repair:
                blobs.delete(blob.sha256)
                finding.repaired = True
            report.findings.append(finding)
    for leftover in leftovers:
        if leftover.modified < cutoff:
            finding = Finding("leftover", leftover.name, "remove it")
            if repair:
                blobs.remove_leftover(leftover.name)
                finding.repaired = True
            report.findings.append(finding)
    return report


def _digest(blobs: BlobStore, sha256: str) -> str | None:
    """The sha256 of a stored blob's bytes; None when it vanished since the listing."""
    digest = hashlib.sha256()
    try:
        with blobs.open(sha256) as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    except KeyError:
        return None
    return digest.hexdigest()


def _missing_file(session: Session, blobs: BlobStore, row: FileRow, repair: bool) -> Finding:
    version = row.version
    subject = f"{version.model.name}:{version.number} {row.name} (blob {row.sha256})"
    if row.name == WEIGHTS:
        return Finding("missing_weights", subject, None)
    if row.name == CARD:
        finding = Finding("missing_card", subject, "render the model card again")
        if repair:
            card = blobs.put_bytes(render_card(version).encode())
            row.sha256, row.size = card.sha256, card.size
            finding.repaired = True
        return finding
    assert FILE_KINDS[row.name].produce is not None, row.name
    finding = Finding("missing_file", subject, "delete its row: it is produced again on its next download")
    if repair:
        session.delete(row)
        finding.repaired = True
    return finding


def _referenced(session: Session) -> set[str]:
    found = set(session.scalars(select(FileRow.sha256)))
    found.update(session.scalars(select(VersionRow.sha256)))
    found.update(session.scalars(select(DatasetRow.sha256)))
    return found

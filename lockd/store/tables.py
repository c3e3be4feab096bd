"""SQLModel tables. Rows never leave ``lockd.store``: the repository returns domain values."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class ProjectRow(SQLModel, table=True):
    __tablename__ = "projects"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    created_at: datetime


class LocksetRow(SQLModel, table=True):
    __tablename__ = "locksets"
    # A project's newest lockset is one index probe (the dashboard's project list).
    __table_args__ = (Index("ix_locksets_project_newest", "project_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    hash: str = Field(index=True, unique=True)
    project_id: int = Field(foreign_key="projects.id", index=True)
    parent_hash: str | None = None
    input_key: str = Field(index=True)
    resolver: str
    resolver_version: str
    cutoff: str
    created_at: datetime
    user: str
    host: str
    git_commit: str | None = None
    status: str  # complete | partial
    targets: list[str] = Field(sa_column=Column(JSON, nullable=False))
    inputs: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    indexes: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    failures: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    # The canonical JSON the hash was computed over: the record of truth.
    document: str = Field(sa_column=Column(Text, nullable=False))


class LockRow(SQLModel, table=True):
    __tablename__ = "locks"
    __table_args__ = (UniqueConstraint("lockset_id", "target"),)

    id: int | None = Field(default=None, primary_key=True)
    lockset_id: int = Field(foreign_key="locksets.id", index=True)
    target: str
    flavour: str | None = None
    files: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))


class ArtifactRow(SQLModel, table=True):
    __tablename__ = "artifacts"

    id: int | None = Field(default=None, primary_key=True)
    lock_id: int = Field(foreign_key="locks.id", index=True)
    name: str = Field(index=True)
    version: str
    index: str
    url: str
    filename: str
    sha256: str
    kind: str


class DependencyRow(SQLModel, table=True):
    """One root or edge of a lock's dependency graph; the lockset document is the record
    of truth. ``kind``: ``input`` and ``constraint`` (a direct input, from ``source``)
    or ``requires`` (``package`` requires ``dependency``, through ``extra``)."""

    __tablename__ = "dependencies"

    id: int | None = Field(default=None, primary_key=True)
    lock_id: int = Field(foreign_key="locks.id", index=True)
    kind: str
    package: str | None = None  # the requiring package; None for a direct input
    dependency: str = Field(index=True)
    requirement: str
    source: str | None = None
    extra: str | None = None


class DriftReportRow(SQLModel, table=True):
    __tablename__ = "drift_reports"
    __table_args__ = (
        Index("ix_drift_reports_project_newest", "project_id", "id"),
        Index("ix_drift_reports_lockset_newest", "lockset_hash", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    hash: str = Field(index=True, unique=True)
    parent_hash: str | None = None
    project_id: int = Field(foreign_key="projects.id", index=True)
    lockset_hash: str = Field(index=True)
    status: str  # clean | drift | error
    checked_at: datetime
    finding_count: int
    # The canonical JSON the hash was computed over.
    document: str = Field(sa_column=Column(Text, nullable=False))


class SnapshotDocumentRow(SQLModel, table=True):
    """A snapshot's content, stored once however often it is posted: the canonical JSON of
    the snapshot without its ``taken_at`` (which its ``snapshots`` rows keep), keyed by its
    sha256 (``audit verify`` recomputes it)."""

    __tablename__ = "snapshot_documents"

    hash: str = Field(primary_key=True)
    document: str = Field(sa_column=Column(Text, nullable=False))


class SnapshotRow(SQLModel, table=True):
    """One snapshot a drift report compared: when it was taken, and its content by hash."""

    __tablename__ = "snapshots"

    id: int | None = Field(default=None, primary_key=True)
    drift_report_id: int = Field(foreign_key="drift_reports.id", index=True)
    target: str
    taken_at: datetime
    deployment: str | None = None  # the deployment that posted it to `lockd serve`
    # After deployment: migration 0008 added it last (a new database matches a migrated one).
    document_hash: str = Field(foreign_key="snapshot_documents.hash")


class ImageRow(SQLModel, table=True):
    """A base image as one compile resolved it; the lockset document is the record of truth."""

    __tablename__ = "images"

    id: int | None = Field(default=None, primary_key=True)
    lockset_id: int = Field(foreign_key="locksets.id", index=True)
    reference: str  # as the user wrote it
    # SQLAlchemy reserves the attribute name "registry"; the column keeps it.
    registry_host: str = Field(sa_column=Column("registry", String, nullable=False))
    repository: str
    tag: str | None = None
    index_digest: str
    media_type: str
    # [{os, architecture, variant, digest, media_type}]: a target finds its own manifest here.
    platforms: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    resolved_at: datetime


class TrackedImageRow(SQLModel, table=True):
    """An image ``drift --all`` checks against one target of its project's latest lockset."""

    __tablename__ = "tracked_images"
    __table_args__ = (UniqueConstraint("project_id", "reference", "target"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", index=True)
    reference: str
    target: str
    created_at: datetime


class LockFileRow(SQLModel, table=True):
    """A lock file exactly as compile wrote it; its sha256 is in the lockset document."""

    __tablename__ = "lock_files"
    __table_args__ = (UniqueConstraint("lockset_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    lockset_id: int = Field(foreign_key="locksets.id", index=True)
    name: str
    sha256: str
    content: str = Field(sa_column=Column(Text, nullable=False))


class DriftReportTargetRow(SQLModel, table=True):
    """Which targets a drift report checked, and its status for each (filters, summaries)."""

    __tablename__ = "drift_report_targets"
    __table_args__ = (Index("ix_drift_report_targets_target", "target", "drift_report_id"),)

    drift_report_id: int = Field(foreign_key="drift_reports.id", primary_key=True)
    target: str = Field(primary_key=True)
    status: str  # clean | drift | error, for this target


class DriftDayRow(SQLModel, table=True):
    """Per project, target and UTC day: how many checks ended clean, drifted or failed.

    Kept up to date in the transaction that records each report, so the
    dashboard's 14-night grid reads a few hundred rows, never the reports.
    """

    __tablename__ = "drift_days"

    project_id: int = Field(foreign_key="projects.id", primary_key=True)
    target: str = Field(primary_key=True)
    day: str = Field(primary_key=True)  # YYYY-MM-DD, UTC
    clean: int = 0
    drift: int = 0
    error: int = 0
    last_status: str
    last_report_id: int


class DeploymentRow(SQLModel, table=True):
    """A deployment that posts snapshots to `lockd serve`: where it stands now."""

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("project_id", "target", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", index=True)
    target: str
    name: str
    lockset_hash: str
    first_seen: datetime
    last_seen: datetime = Field(index=True)
    last_status: str = Field(index=True)  # clean | drift | error (stale is computed)
    finding_kinds: list[str] = Field(sa_column=Column(JSON, nullable=False))
    finding_count: int
    last_report_hash: str
    # The snapshot of its last clean report: what "changed since" means for this deployment.
    baseline_snapshot_id: int | None = Field(default=None, foreign_key="snapshots.id")


class TokenRow(SQLModel, table=True):
    """An API token of `lockd serve`, as a hash: the token itself is shown once, never stored."""

    __tablename__ = "tokens"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    scope: str  # read | ingest | admin
    token_hash: str = Field(index=True, unique=True)  # sha256 hex of the whole token
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

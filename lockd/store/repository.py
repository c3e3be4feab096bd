"""The ``Store``: lockd's database behind methods that take and return domain values.

Rows never leave ``lockd.store``. Writing goes through :mod:`lockd.store.chain`
(one append per chain at a time); each noun has its module: ``locksets``,
``drift_reports`` and ``verify`` (the hash chains).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import DatabaseError, SQLAlchemyError
from sqlmodel import Session

from ..drift import DriftReport
from ..errors import NotFoundError, StoreError, UsageError
from ..lockset import Lockset
from ..urls import strip_credentials
from . import drift_reports, fleet, locksets, tokens, tracked_images
from .drift_reports import Recorded
from .engine import make_engine, reads, reason, single_reads
from .fleet import (
    Deployment,
    DeploymentQuery,
    Posted,
    ProjectOverview,
    ReportQuery,
    ReportSummary,
)
from .locksets import LocksetSummary
from .snapshots import SnapshotRef
from .tokens import TokenInfo
from .tracked_images import TrackedImage
from .verify import ChainReport, RecordReader, Records, check_chains, load_records, reading_records


class Store:
    """The lockd database."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._single_reads = single_reads(self.engine)
        self._reads = reads(self.engine)
        if migrate:
            self.upgrade()

    @property
    def where(self) -> str:
        """The database as messages name it (no credentials)."""
        return strip_credentials(self.url)

    def upgrade(self) -> bool:
        """Bring the schema to the newest revision; return whether anything ran."""
        from .migrate import SchemaRefusedError, upgrade

        try:
            return upgrade(self.engine)
        except SchemaRefusedError as exc:
            raise StoreError(f"The database {self.where} {exc.what}.", hint=exc.hint) from None
        except SQLAlchemyError as exc:
            raise self._failure("open or migrate", exc) from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with Session(self._reads) as session:  # reads only: see engine.reads
                yield session
        except SQLAlchemyError as exc:
            raise self._failure("read", exc) from None

    @contextmanager
    def _single_read(self) -> Iterator[Connection]:
        """A connection for one read statement (see ``engine.single_reads``)."""
        try:
            with self._single_reads.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise self._failure("read", exc) from None

    def _failure(self, doing: str, exc: SQLAlchemyError) -> StoreError:
        why = reason(exc)
        if isinstance(exc, DatabaseError) and any(
            marker in why for marker in ("not a database", "malformed", "corrupt")
        ):
            return StoreError(
                f"The database {self.where} is damaged or not a lockd database ({why}).",
                hint="Restore it from a backup, or point --db / LOCKD_DATABASE_URL at another "
                "file (lockd creates a new database where there is none).",
            )
        return StoreError(
            f"Cannot {doing} the database {self.where}: {why}.",
            hint="Check --db / LOCKD_DATABASE_URL, that the server is up and the file writable.",
        )

    # -- locksets ----------------------------------------------------------------

    def record_lockset(self, lockset: Lockset, files: Mapping[str, bytes] | None = None) -> None:
        """Append a lockset to its project's chain (refused if the chain moved on), with the
        contents of its lock ``files`` as compile wrote them."""
        locksets.record_lockset(self.engine, lockset, files)

    def latest(self, project: str) -> Lockset | None:
        with self._session() as session:
            return locksets.latest(session, project)

    def get(self, ref: str, project: str | None = None) -> Lockset:
        """A lockset by full hash or unique prefix (at least 4 characters)."""
        with self._session() as session:
            return locksets.get(session, ref, project, self.where)

    def history(
        self, project: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[LocksetSummary]:
        with self._session() as session:
            return locksets.history(session, project, limit, offset)

    def lock_file(self, lockset_hash: str, name: str) -> tuple[str, str] | None:
        """(sha256, content) of a lock file stored with a lockset, if it was stored."""
        with self._session() as session:
            return locksets.lock_file(session, lockset_hash, name)

    def images(self, project: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Base images recorded with locksets, newest lockset first."""
        with self._session() as session:
            return locksets.images(session, project, limit)

    def projects(self) -> list[str]:
        with self._session() as session:
            return locksets.projects(session)

    # -- drift -----------------------------------------------------------------

    def record_drift(self, report: DriftReport) -> DriftReport:
        """Append a drift report to its project's chain; return it as stored."""
        return drift_reports.record_drift(self.engine, report)

    def record_drifts(self, reports: Sequence[tuple[DriftReport, Posted | None]]) -> list[Recorded]:
        """Several reports appended in one transaction (the server's group commit), each
        with the deployment that posted its snapshot; all are recorded, or none."""
        return drift_reports.record_drifts(self.engine, reports)

    def drift_reports(
        self,
        project: str | None = None,
        limit: int | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[DriftReport]:
        """Drift reports, newest first (``since``/``until``: their check time)."""
        with self._session() as session:
            return drift_reports.drift_reports(session, project, limit, since=since, until=until)

    def drift_reports_with_origins(self, since: datetime) -> list[tuple[DriftReport, str]]:
        """Drift reports checked since ``since``, newest first, each with its origin (the
        local checks, an image, a deployment: see ``drift.standing``)."""
        with self._session() as session:
            return drift_reports.drift_reports_with_origins(session, since)

    def baseline_snapshot(self, project: str, target: str) -> dict[str, Any] | None:
        """The snapshot of ``target`` taken at the project's last clean local check (one no
        deployment posted)."""
        with self._session() as session:
            return drift_reports.baseline_snapshot(session, project, target)

    def baseline_snapshot_ref(self, project: str, target: str) -> SnapshotRef | None:
        """``baseline_snapshot``'s row and content hash; ``None`` when there is none."""
        with self._session() as session:
            return drift_reports.baseline_snapshot_ref(session, project, target)

    def drift_reports_of(self, lockset_hash: str) -> list[tuple[str, DriftReport]]:
        """(hash, report) of every drift report on one lockset, newest first."""
        with self._session() as session:
            return drift_reports.reports_of(session, lockset_hash)

    # -- tracked images ----------------------------------------------------------

    def track_image(self, project: str, reference: str, target: str) -> bool:
        """Track an image for ``project``; ``False`` when it already was."""
        try:
            with Session(self.engine) as session, session.begin():
                return tracked_images.track_image(session, project, reference, target)
        except SQLAlchemyError as exc:
            raise StoreError(f"Could not record the tracked image: {reason(exc)}.") from None

    def untrack_image(self, project: str, reference: str, target: str) -> bool:
        """Stop tracking an image for ``project``'s target; ``False`` when it was not."""
        try:
            with Session(self.engine) as session, session.begin():
                return tracked_images.untrack_image(session, project, reference, target)
        except SQLAlchemyError as exc:
            raise StoreError(f"Could not remove the tracked image: {reason(exc)}.") from None

    def tracked_images(self, project: str | None = None) -> list[TrackedImage]:
        """Tracked images, by project and order of tracking."""
        with self._session() as session:
            return tracked_images.tracked_images(session, project)

    # -- the fleet (lockd serve) -------------------------------------------------

    def ingestion_state(
        self, project: str, posted: Posted
    ) -> tuple[str | None, SnapshotRef | None]:
        """(the project's newest lockset hash, the deployment's baseline snapshot), in one
        round trip: what every posted snapshot needs first."""
        with self._single_read() as conn:
            return fleet.ingestion_state(conn, project, posted)

    def deployments(self, query: DeploymentQuery, stale_before: datetime) -> list[Deployment]:
        with self._session() as session:
            return fleet.deployments(session, query, stale_before)

    def deployment_counts(self, stale_before: datetime) -> dict[str, int]:
        with self._session() as session:
            return fleet.deployment_counts(session, stale_before)

    def project_overviews(self, first_day: str) -> list[ProjectOverview]:
        with self._session() as session:
            return fleet.project_overviews(session, first_day)

    def drift_report_summaries(self, query: ReportQuery) -> list[ReportSummary]:
        with self._session() as session:
            return fleet.drift_report_summaries(session, query)

    def drift_report(self, ref: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A report's document (with its hash) and its snapshots; ({}, []) if unknown."""
        with self._session() as session:
            return fleet.report_document(session, ref)

    def snapshot(self, snapshot_id: int) -> tuple[dict[str, Any], str] | None:
        """A recorded snapshot (as recorded) and its content's hash, by row id."""
        with self._session() as session:
            return fleet.snapshot(session, snapshot_id)

    # -- tokens ----------------------------------------------------------------------

    def add_token(self, name: str, scope: str, token_hash: str, expires: datetime | None) -> None:
        """Record a token's hash; a name in use is refused."""
        with Session(self.engine) as session, session.begin():
            if tokens.name_taken(session, name):
                raise UsageError(
                    f"A token named {name!r} exists already (tokens are never renamed or reused).",
                    hint="Choose another name; `lockd tokens list` shows the names in use.",
                )
            tokens.add(session, name, scope, token_hash, expires)

    def tokens(self) -> list[TokenInfo]:
        with self._session() as session:
            return tokens.listed(session)

    def revoke_token(self, name: str) -> TokenInfo:
        with Session(self.engine) as session, session.begin():
            info = tokens.revoke(session, name)
        if info is None:
            raise NotFoundError(
                f"No token named {name!r}.", hint="`lockd tokens list` shows the tokens."
            )
        return info

    def token(self, token_hash: str) -> TokenInfo | None:
        with self._single_read() as conn:
            return tokens.lookup(conn, token_hash)

    def schema_current(self) -> bool:
        """The database answers and its schema is this lockd's (``/readyz``)."""
        from .migrate import SCHEMA_HEAD, current_revision

        try:
            return current_revision(self.engine) == SCHEMA_HEAD
        except SQLAlchemyError:
            return False

    # -- tamper evidence ---------------------------------------------------------

    def has_schema(self) -> bool:
        """Whether the database holds lockd's tables: an empty or truncated file does not.

        A SQLite file that does not exist is not created by asking.
        """
        url = self.engine.url
        file_db = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        if file_db and not Path(str(url.database)).is_file():
            return False
        try:
            return sa_inspect(self.engine).has_table("locksets")
        except SQLAlchemyError as exc:
            raise self._failure("read", exc) from None

    def chain_records(self, project: str | None = None) -> Records:
        """Every lockset and drift report row as plain records (one query per table)."""
        try:
            return load_records(self.engine, project)
        except SQLAlchemyError as exc:
            raise self._failure("read", exc) from None

    @contextmanager
    def reading_records(
        self, project: str | None = None, batch: int | None = None
    ) -> Iterator[RecordReader]:
        """The chain records a batch at a time, inside one snapshot (for reports and checks
        over databases too large to hold in memory)."""
        try:
            with reading_records(self.engine, project, batch) as reader:
                yield reader
        except SQLAlchemyError as exc:
            raise self._failure("read", exc) from None

    def verify_chains(self, project: str | None = None) -> ChainReport:
        """Recompute the hash chains and cross-check the rows against their documents."""
        return check_chains(self.chain_records(project))


__all__ = ["LocksetSummary", "Recorded", "Store", "TrackedImage"]

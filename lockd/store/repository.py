"""The ``Store``: lockd's database behind methods that take and return domain values.

Rows never leave ``lockd.store``. Writing goes through :mod:`lockd.store.chain`
(one append per chain at a time); each noun has its module: ``locksets``,
``drift_reports`` and ``verify`` (the hash chains).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import DatabaseError, SQLAlchemyError
from sqlmodel import Session

from ..drift import DriftReport
from ..errors import StoreError
from ..lockset import Lockset
from ..urls import strip_credentials
from . import drift_reports, locksets, tracked_images
from .engine import make_engine, reason
from .locksets import LocksetSummary
from .tracked_images import TrackedImage
from .verify import ChainReport, Records, check_chains, load_records


class Store:
    """The lockd database."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        if migrate:
            self.upgrade()

    @property
    def where(self) -> str:
        """The database as messages name it (no credentials)."""
        return strip_credentials(self.url)

    def upgrade(self) -> bool:
        """Bring the schema to the newest revision; return whether anything ran."""
        from .migrate import upgrade

        try:
            return upgrade(self.engine)
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
            with Session(self.engine) as session:
                yield session
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

    def record_lockset(self, lockset: Lockset) -> None:
        """Append a lockset to its project's chain (refused if the chain moved on)."""
        locksets.record_lockset(self.engine, lockset)

    def latest(self, project: str) -> Lockset | None:
        with self._session() as session:
            return locksets.latest(session, project)

    def get(self, ref: str, project: str | None = None) -> Lockset:
        """A lockset by full hash or unique prefix (at least 4 characters)."""
        with self._session() as session:
            return locksets.get(session, ref, project, self.where)

    def history(self, project: str | None = None, limit: int | None = None) -> list[LocksetSummary]:
        with self._session() as session:
            return locksets.history(session, project, limit)

    def projects(self) -> list[str]:
        with self._session() as session:
            return locksets.projects(session)

    # -- drift -----------------------------------------------------------------

    def record_drift(self, report: DriftReport) -> DriftReport:
        """Append a drift report to its project's chain; return it as stored."""
        return drift_reports.record_drift(self.engine, report)

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

    def baseline_snapshot(self, project: str, target: str) -> dict[str, Any] | None:
        """The snapshot of ``target`` taken at the project's last clean check."""
        with self._session() as session:
            return drift_reports.baseline_snapshot(session, project, target)

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

    def tracked_images(self, project: str | None = None) -> list[TrackedImage]:
        """Tracked images, by project and order of tracking."""
        with self._session() as session:
            return tracked_images.tracked_images(session, project)

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

    def verify_chains(self, project: str | None = None) -> ChainReport:
        """Recompute the hash chains and cross-check the rows against their documents."""
        return check_chains(self.chain_records(project))


__all__ = ["LocksetSummary", "Store", "TrackedImage"]

"""Appending to a chain: the one place where lockd writes a chained record.

A project has two chains, its locksets and its drift reports; each record
names its predecessor's hash. :func:`append` reads the head of one chain and
inserts the next record in a single transaction that holds that chain's lock,
so two writers never chain to the same parent:

* PostgreSQL: a transaction-scoped advisory lock keyed by (chain, project),
  taken first thing in a READ COMMITTED transaction (so that the head read
  after waiting for the lock sees what the previous holder committed);
* SQLite: the database's write lock, which every lockd transaction takes up
  front (``BEGIN IMMEDIATE``, see :mod:`lockd.store.engine`).

Serialisation failures, deadlocks and a busy SQLite file are retried a
bounded number of times with a jittered backoff; anything else, or a failure
after the last attempt, is a :class:`~lockd.errors.StoreError` that says
nothing was recorded. Because the lock is held while the record is inserted,
row ids follow chain order within a chain: :mod:`lockd.store.verify` relies
on that to tell a fork from an append.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlmodel import Session, col, select

from ..errors import StoreError
from .engine import reason
from .tables import DriftReportRow, LocksetRow, ProjectRow

T = TypeVar("T")

ATTEMPTS = 6
# PostgreSQL SQLSTATEs worth another attempt: serialization_failure, deadlock_detected,
# lock_not_available.
_RETRY_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


class Chain(StrEnum):
    """A project's chains, by the table that holds them."""

    LOCKSETS = "locksets"
    DRIFT_REPORTS = "drift_reports"


@dataclass(frozen=True, slots=True)
class Head:
    """Where an append happens: the project's row id and its chain's newest hash."""

    project_id: int
    hash: str | None


Write = Callable[[Session, Head], T]


def append(engine: Engine, project: str, chain: Chain, write: Write[T], *, what: str) -> T:
    """Run ``write(session, head)`` under the chain's lock, in one transaction.

    ``write`` adds the new record (chained to ``head.hash``) to the session, or
    raises a ``LockdError`` to refuse; either way it runs at most once per
    attempt and the transaction commits only if it returns. ``what`` names the
    record in error messages ("the drift report of project p").
    """
    return append_many(
        engine, (project,), chain, lambda session, head: write(session, head(project)), what=what
    )


Heads = Callable[[str], Head]


class _Heads:
    """``head(project)`` inside one append: the chain's newest hash, read afresh each time."""

    def __init__(
        self, session: Session, chain: Chain, locked: list[str], owners: dict[str, int]
    ) -> None:
        self._session, self._chain, self._locked = session, chain, locked
        self._owners = owners  # project name -> row id, as far as taking the locks found them

    def __call__(self, name: str) -> Head:
        if name not in self._locked:
            raise ValueError(f"project {name!r} is not locked in this append")
        if name not in self._owners:
            self._owners[name] = project_id(self._session, name)
        owner = self._owners[name]
        return Head(owner, _head(self._session, self._chain, owner))


def append_many(
    engine: Engine,
    projects: Iterable[str],
    chain: Chain,
    write: Callable[[Session, Heads], T],
    *,
    what: str,
) -> T:
    """Append to ``chain`` of several projects in one transaction (one commit for a batch).

    The chains' locks are taken first, in sorted order (two batches never wait on
    each other in a circle); ``write(session, head)`` then asks ``head(project)``
    before each record it adds, which reads the chain's newest hash afresh, so
    several records of one project in one batch chain one after the other.
    """
    names = sorted(set(projects))
    bind = engine
    if engine.dialect.name == "postgresql":
        bind = engine.execution_options(isolation_level="READ COMMITTED")
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with Session(bind) as session, session.begin():
                owners = {}
                for name in names:
                    if (owner := lock_chain(session, name, chain)) is not None:
                        owners[name] = owner
                return write(session, _Heads(session, chain, names, owners))
        except DBAPIError as exc:
            if attempt < ATTEMPTS and retryable(exc):
                time.sleep(_backoff(attempt))
                continue
            raise _failure(what, exc, attempt) from None
        except SQLAlchemyError as exc:
            raise _failure(what, exc, attempt) from None
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def lock_chain(session: Session, project: str, chain: Chain) -> int | None:
    """Hold ``chain`` of ``project`` until the transaction ends (SQLite: already held).

    PostgreSQL: in the same round trip, the project's row id (a project's id never
    changes, so reading it before the lock is granted is safe); None if it has no row
    yet, and on SQLite.
    """
    if session.get_bind().dialect.name != "postgresql":
        return None
    found: int | None = session.execute(
        _LOCK_AND_PROJECT, {"key": lock_key(chain, project), "name": project}
    ).scalar()
    return found


# The project's id, selected with the lock's result (whose row the FROM-less select has).
_LOCK_AND_PROJECT = sa.select(
    sa.select(ProjectRow.id)  # type: ignore[call-overload]
    .where(ProjectRow.name == sa.bindparam("name"))
    .scalar_subquery(),
    sa.func.pg_advisory_xact_lock(sa.bindparam("key", type_=sa.BigInteger)),
)


def lock_key(chain: Chain | str, project: str) -> int:
    """A signed 64-bit advisory lock key for one chain of one project."""
    digest = hashlib.sha256(f"lockd:{chain}:{project}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# Built once: every append runs them (the values are bound at each call).
_PROJECT_ID = select(ProjectRow.id).where(ProjectRow.name == sa.bindparam("name"))
_HEADS = {
    chain: select(table.hash)
    .where(table.project_id == sa.bindparam("owner"))
    .order_by(col(table.id).desc())
    .limit(1)
    for chain, table in ((Chain.LOCKSETS, LocksetRow), (Chain.DRIFT_REPORTS, DriftReportRow))
}


def project_id(session: Session, name: str) -> int:
    """The project's row id, creating the row if needed (safe against concurrent creators)."""
    found: int | None = session.execute(_PROJECT_ID, {"name": name}).scalar()
    if found is not None:  # the usual case: no write
        return found
    dialect = session.get_bind().dialect.name
    values = {"name": name, "created_at": datetime.now(UTC)}
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        session.execute(postgresql.insert(ProjectRow).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        session.execute(sqlite.insert(ProjectRow).values(values).on_conflict_do_nothing())
    found = session.exec(select(ProjectRow.id).where(ProjectRow.name == name)).first()
    if found is not None:
        return found
    row = ProjectRow(name=name, created_at=datetime.now(UTC))  # another backend
    session.add(row)
    session.flush()  # assigns the id
    return int(row.id)  # type: ignore[arg-type]


def _head(session: Session, chain: Chain, owner: int) -> str | None:
    head: str | None = session.execute(_HEADS[chain], {"owner": owner}).scalar()
    return head


def retryable(exc: DBAPIError) -> bool:
    """A failure that another attempt of the same transaction can get past."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _RETRY_SQLSTATES:
        return True
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


def _backoff(attempt: int) -> float:
    # Jitter, not a wait for anything: two writers that collided should not collide again.
    return float(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))  # noqa: S311


def _failure(what: str, exc: SQLAlchemyError, attempts: int) -> StoreError:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return StoreError(
        f"Could not record {what}{tries}: {reason(exc)}. Nothing was recorded.",
        hint="Check that the database is reachable and writable, then run the command again.",
    )

"""Reading the record: history, show, diff, a project's latest lockset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import NotFoundError, StoreError, UsageError, excerpt
from ..lockset import diff_locksets

if TYPE_CHECKING:
    from ..drift import DriftReport
    from ..lockset import Lockset
    from ..store import Store


def _store(url: str) -> Store:
    """The record, to read: an SQLite file that does not exist is not created."""
    from ..store import Store  # SQLModel is slow to import: only when a command needs it

    require_database(url)
    return Store(url)


def require_database(url: str) -> None:
    """Refuse a read of an SQLite database file that does not exist (a mistyped --db)."""
    from ..store.engine import missing_sqlite_file

    missing = missing_sqlite_file(url)
    if missing is not None:
        raise NotFoundError(
            f"No lockd database at {missing}: nothing is recorded there.",
            hint="Check --db / LOCKD_DATABASE_URL, or run `lockd compile` first.",
        )


def history(database_url: str, project: str | None) -> list[dict[str, object]]:
    from ..store.engine import missing_sqlite_file

    if missing_sqlite_file(database_url) is not None:
        return []  # "No locksets recorded yet", and no empty database left behind
    store = _store(database_url)
    try:
        return [s.to_dict() for s in store.history(project)]
    finally:
        store.close()


def show(database_url: str, ref: str) -> tuple[Lockset, list[DriftReport]]:
    """A lockset and its drift reports (environments and images), newest first."""
    store = _store(database_url)
    try:
        lockset = store.get(ref)
        return lockset, [report for _, report in store.drift_reports_of(lockset.hash)]
    finally:
        store.close()


def get(database_url: str, ref: str) -> Lockset:
    """One recorded lockset by hash or unique prefix."""
    store = _store(database_url)
    try:
        return store.get(ref)
    finally:
        store.close()


def diff(database_url: str, ref_a: str, ref_b: str) -> dict[str, object]:
    store = _store(database_url)
    try:
        a, b = store.get(ref_a), store.get(ref_b)
    finally:
        store.close()
    return diff_locksets(a, b)


def latest(database_url: str, project: str | None) -> Lockset:
    """The latest lockset of ``project`` (``None``: this directory's, see ``default_project``)."""
    from .drift import default_project

    store = _store(database_url)
    try:
        name = project or default_project(store)
        found = store.latest(name)
    finally:
        store.close()
    if found is None:
        raise NotFoundError(
            f"No lockset recorded for project {name!r}.",
            hint="Run `lockd compile` first, or name the project with --project.",
        )
    return found


@dataclass(frozen=True, slots=True)
class LockFile:
    name: str
    content: bytes
    media_type: str


_MEDIA_TYPES = {
    ".toml": "application/toml",
    ".json": "application/json",
    ".yml": "application/yaml",
}


def chosen_lockset(
    database_url: str, cwd: Path, project: str | None, lockset: str | None
) -> Lockset:
    """The lockset a reading command (``why``, ``spread``) is about: the one named with
    ``--lockset`` (a hash or unique prefix); else the project's latest recorded one with
    ``--project``; else the ``lockd.json`` of this directory's lock folder (``out`` in
    lockd.toml, default ``locks/``); else this directory's project's latest recorded one."""
    if lockset is not None:
        named = get(database_url, lockset)
        if project is not None and named.project != project:
            raise UsageError(
                f"Lockset {named.hash[:12]} belongs to project {named.project}, "
                f"not {excerpt(project)}.",
                hint="Give --lockset alone, or a lockset of that project.",
            )
        return named
    if project is None:
        from ..lockfiles.manifest import MANIFEST, read_manifest
        from ..settings import load_project_config

        config = load_project_config(cwd)
        found = read_manifest(cwd / (config.out or "locks") / MANIFEST)
        if found is not None:
            return found
    return latest(database_url, project)


def lock_file(store: Store, lockset: Lockset, name: str) -> LockFile:
    """One of the lockset's lock files as compile wrote it, from the database, never a path.

    ``lockd.json`` is rendered from the recorded document; the others are the stored
    copies, served only if they still hash to what the lockset recorded.
    """
    from ..lockfiles.manifest import MANIFEST, render_manifest
    from ..lockset import sha256_text

    media = _MEDIA_TYPES.get(name[name.rfind(".") :], "text/plain")
    if name == MANIFEST:
        return LockFile(name, render_manifest(lockset), "application/json")
    recorded = {n: sha for lock in lockset.locks for n, sha in lock.files.items()}
    if name not in recorded:
        raise NotFoundError(
            f"Lockset {lockset.hash[:12]} has no lock file {excerpt(name)}.",
            hint="Its files: " + ", ".join(sorted([MANIFEST, *recorded])) + ".",
        )
    stored = store.lock_file(lockset.hash, name)
    if stored is None:
        raise NotFoundError(
            f"Lockset {lockset.hash[:12]} was recorded before lockd kept lock file contents; "
            f"{name} is not in the database.",
            hint="Take it from version control (locks/), or compile again.",
        )
    sha, content = stored
    if sha != recorded[name] or sha256_text(content) != sha:
        raise StoreError(
            f"The stored copy of {name} does not match the hash lockset {lockset.hash[:12]} "
            "recorded for it: the database was altered.",
            hint="Run `lockd audit verify`, and take the file from version control.",
        )
    return LockFile(name, content.encode(), media)


def diff_to_parent(store: Store, lockset: Lockset) -> dict[str, object] | None:
    """The lockset's changes since its parent (None for the first of a chain)."""
    if lockset.parent is None:
        return None
    return diff_locksets(store.get(lockset.parent), lockset)

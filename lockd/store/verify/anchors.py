"""The record against what a project keeps outside the database (pure).

A hash chain cannot show that records were removed from its end, or that the
whole database was emptied, truncated or swapped for another: nothing left in
it points at what is gone. The project directory keeps evidence that can:
``locks/lockd.json`` names the lockset it was written from and its parent,
every committed version of it in git names an earlier one, and the lock files
beside it have the sha256 the record lists. :func:`check_evidence` compares
that evidence (read by the audit use case) with the records.

What it cannot show: records of commits that never reached git, or of a
project whose directory it is not run in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...lockfiles.names import is_lock_file_of
from .records import LocksetRecord, Problem, Records


@dataclass(frozen=True, slots=True)
class Anchor:
    """A lockset hash kept outside the database."""

    project: str
    hash: str
    source: str  # "locks/lockd.json", "locks/lockd.json of git commit 1a2b3c4d5e6f"


@dataclass(frozen=True, slots=True)
class ProjectEvidence:
    """What a project directory keeps about its records.

    ``anchors`` come first from the manifest on disk (its hash, then its parent),
    then from its versions in git, newest first. ``edited`` says why the manifest's
    own hash cannot be trusted ('' when its content hashes to what it claims).
    ``files`` maps the lock file names the record of ``head`` lists to their
    sha256 on disk (``None``: not there).
    """

    directory: str  # the lock directory, as shown ("locks")
    anchors: tuple[Anchor, ...]
    head: str | None = None
    edited: str = ""
    files: Mapping[str, str | None] = field(default_factory=dict)
    sources: tuple[str, ...] = ()  # what was consulted, for the report


@dataclass(frozen=True, slots=True)
class Held:
    """What the database holds, as far as the evidence is compared with it."""

    holds: Callable[[str, str], bool]  # (project, lockset hash): whether that lockset is there
    empty: bool  # no record at all
    head: LocksetRecord | None = None  # the record of the manifest's lockset, when held

    @classmethod
    def of(cls, records: Records, head: str | None = None) -> Held:
        """For records held in memory (``head``: the manifest's lockset hash)."""
        held = {(record.project, record.hash) for record in records.locksets}
        return cls(
            lambda project, digest: (project, digest) in held,
            not records.locksets and not records.drift_reports,
            next((r for r in records.locksets if r.hash == head), None),
        )


def check_evidence(held: Held, evidence: ProjectEvidence) -> tuple[Problem, ...]:
    """Every anchor the database lacks, an edited manifest, lock files unlike the record."""
    problems: list[Problem] = []
    manifest = f"{evidence.directory}/lockd.json"
    if evidence.edited:
        owner = evidence.anchors[0].project if evidence.anchors else None
        problems.append(Problem(owner, "lock file", manifest, "altered", evidence.edited))
    for anchor in dict.fromkeys(evidence.anchors):  # in order, each once
        if held.holds(anchor.project, anchor.hash):
            continue
        why = (
            "the database holds no records at all: it is empty, truncated or was emptied"
            if held.empty
            else "it was removed, or this is not the database the project records into"
        )
        problems.append(
            Problem(
                anchor.project,
                "lockset",
                anchor.hash,
                "removed",
                f"{anchor.source} names it, but the database does not hold it ({why})",
            )
        )
    if held.head is not None and held.head.hash == evidence.head:
        problems += _lock_file_problems(held.head, evidence)
    return tuple(problems)


def recorded_files(record: LocksetRecord) -> dict[str, str]:
    """The lock files a recorded lockset lists with their sha256 (only names lockd writes for
    each lock's target: a name from the database is untrusted)."""
    files: dict[str, str] = {}
    data: Mapping[str, Any] = record.data or {}
    for lock in data.get("locks", ()):
        if not isinstance(lock, Mapping):
            continue
        target, listed = lock.get("target"), lock.get("files")
        if not isinstance(target, str) or not isinstance(listed, Mapping):
            continue
        for name, sha256 in listed.items():
            if isinstance(name, str) and is_lock_file_of(name, target) and isinstance(sha256, str):
                files[name] = sha256
    return files


def _lock_file_problems(record: LocksetRecord, evidence: ProjectEvidence) -> list[Problem]:
    problems = []
    for name, expected in sorted(recorded_files(record).items()):
        found = evidence.files.get(name)
        path = f"{evidence.directory}/{name}"
        if found is None:
            problems.append(
                Problem(
                    record.project,
                    "lock file",
                    path,
                    "removed",
                    f"lockset {record.hash[:12]} records it (sha256 {expected[:12]}), "
                    "but it is not on disk",
                )
            )
        elif found != expected:
            problems.append(
                Problem(
                    record.project,
                    "lock file",
                    path,
                    "altered",
                    f"its sha256 is {found[:12]} on disk, lockset {record.hash[:12]} "
                    f"recorded {expected[:12]}",
                )
            )
    return problems


__all__ = ["Anchor", "Held", "ProjectEvidence", "check_evidence", "recorded_files"]

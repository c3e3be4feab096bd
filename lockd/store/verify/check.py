"""Every project's chains checked record by record (pure).

:class:`ChainCheck` is fed the records one at a time, each table in append
order (the two tables in any order relative to each other), and keeps only
hashes and problems: a record can be dropped once it is checked, so a record
of any size is checked in bounded memory. :func:`check_chains` feeds it a
:class:`Records` held in memory.
"""

from __future__ import annotations

from collections.abc import Iterable

from .chains import ChainWalk
from .drift_reports import drift_difference
from .locksets import lockset_difference
from .records import ChainReport, DriftRecord, LocksetRecord, Problem, ProjectChain, Records


class _Project:
    """One project's two chains, as far as they have been walked."""

    def __init__(self, project: str) -> None:
        self.locksets = ChainWalk(project, "lockset")
        self.drift_reports = ChainWalk(project, "drift-report")
        self.lockset_hashes: set[str] = set()
        self.lockset_problems: list[Problem] = []
        # Whether a checked lockset is there is known only once every lockset is read:
        # (lockset hash, drift report hash) stands in for that problem until then.
        self.drift_problems: list[Problem | tuple[str, str]] = []

    def chain(self) -> ProjectChain:
        project = self.locksets.project
        found = list(self.lockset_problems)
        for item in self.drift_problems:
            if isinstance(item, Problem):
                found.append(item)
            elif item[0] not in self.lockset_hashes:
                # A drift check names its lockset: this also catches a removed newest lockset.
                found.append(
                    Problem(
                        project,
                        "lockset",
                        item[0],
                        "removed",
                        f"drift report {item[1]} checked it, but it is not in the database",
                    )
                )
        # A removed lockset can be named twice (by its child and by a drift report).
        problems = list({(p.record, p.ref, p.change): p for p in reversed(found)}.values())[::-1]
        return ProjectChain(
            project=project,
            locksets=self.locksets.count,
            drift_reports=self.drift_reports.count,
            head_lockset=self.locksets.head,
            head_drift_report=self.drift_reports.head,
            problems=tuple(problems),
        )


class ChainCheck:
    """Recompute every chain and cross-check every row, one record at a time."""

    def __init__(self) -> None:
        self._projects: dict[str, _Project] = {}

    def _project(self, name: str) -> _Project:
        project = self._projects.get(name)
        if project is None:
            project = self._projects[name] = _Project(name)
        return project

    def lockset(self, record: LocksetRecord) -> tuple[Problem, ...]:
        """Check the next lockset of its project; what it found (already kept for the report)."""
        project = self._project(record.project)
        found = [project.locksets.step(record)]
        detail = lockset_difference(record)
        if detail:
            found.append(Problem(record.project, "lockset", record.hash, "altered", detail))
        project.lockset_hashes.add(record.hash)
        problems = tuple(p for p in found if p is not None)
        project.lockset_problems += problems
        return problems

    def drift_report(self, record: DriftRecord) -> None:
        """Check the next drift report of its project."""
        project = self._project(record.project)
        problem = project.drift_reports.step(record)
        if problem:
            project.drift_problems.append(problem)
        detail = drift_difference(record)
        if detail:
            project.drift_problems.append(
                Problem(record.project, "drift-report", record.hash, "altered", detail)
            )
        checked = record.columns.get("lockset_hash")
        if isinstance(checked, str):
            project.drift_problems.append((checked, record.hash))

    def altered_snapshots(self, altered: Iterable[tuple[str, str, str]]) -> None:
        """Stored snapshot contents that no longer hash to their key: (project, drift report
        hash, content key) — see ``RecordReader.orphans``."""
        for project, report, key in altered:
            self._project(project).drift_problems.append(
                Problem(
                    project,
                    "snapshot",
                    key,
                    "altered",
                    f"its stored content no longer hashes to its key (drift report {report} "
                    "compared it)",
                )
            )

    def holds(self, project: str, digest: str) -> bool:
        """Whether a lockset with this hash was fed for this project."""
        found = self._projects.get(project)
        return found is not None and digest in found.lockset_hashes

    def report(self, orphans: Iterable[Problem] = ()) -> ChainReport:
        """The outcome, once every record was fed (``orphans``: see :func:`orphan_problems`)."""
        return ChainReport(
            tuple(self._projects[name].chain() for name in sorted(self._projects)),
            tuple(orphans),
        )


def orphan_problems(records: Records) -> tuple[Problem, ...]:
    """Rows left behind by a deleted parent row name it by its id (one problem per id)."""
    orphans: dict[tuple[str, int], Problem] = {}
    for table, kind, pairs in (
        ("locks", "lockset", records.orphan_locks),
        ("artifacts", "lock", records.orphan_artifacts),
        ("images", "lockset", records.orphan_images),
        ("dependencies", "lock", records.orphan_dependencies),
    ):
        for row_id, parent_id in pairs:
            orphans.setdefault(
                (kind, parent_id),
                Problem(
                    None,
                    kind,
                    f"id {parent_id}",
                    "removed",
                    f"row {row_id} of the {table} table still refers to it",
                ),
            )
    return tuple(orphans.values())


def check_chains(records: Records) -> ChainReport:
    """Recompute every chain and cross-check every row of records held in memory (pure)."""
    check = ChainCheck()
    for record in records.locksets:
        check.lockset(record)
    for drift in records.drift_reports:
        check.drift_report(drift)
    check.altered_snapshots(records.altered_snapshots)
    return check.report(orphan_problems(records))

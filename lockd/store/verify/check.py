"""Every project's chains checked at once (pure)."""

from __future__ import annotations

from collections import defaultdict

from .drift_reports import drift_chain
from .locksets import lockset_chain
from .records import ChainReport, DriftRecord, LocksetRecord, Problem, ProjectChain, Records


def check_chains(records: Records) -> ChainReport:
    """Recompute every chain and cross-check every row (pure)."""
    locksets: dict[str, list[LocksetRecord]] = defaultdict(list)
    drifts: dict[str, list[DriftRecord]] = defaultdict(list)
    for record in records.locksets:
        locksets[record.project].append(record)
    for drift in records.drift_reports:
        drifts[drift.project].append(drift)
    chains = []
    for project in sorted(set(locksets) | set(drifts)):
        own, reports = locksets.get(project, []), drifts.get(project, [])
        found = lockset_chain(project, own) + drift_chain(project, reports, {r.hash for r in own})
        found += [
            Problem(
                project,
                "snapshot",
                key,
                "altered",
                f"its stored content no longer hashes to its key (drift report {report} "
                "compared it)",
            )
            for owner, report, key in records.altered_snapshots
            if owner == project
        ]
        # A removed lockset can be named twice (by its child and by a drift report).
        problems = list({(p.record, p.ref, p.change): p for p in reversed(found)}.values())[::-1]
        chains.append(
            ProjectChain(
                project=project,
                locksets=len(own),
                drift_reports=len(reports),
                head_lockset=own[-1].hash if own else None,
                head_drift_report=reports[-1].hash if reports else None,
                problems=tuple(problems),
            )
        )
    # Rows left behind by a deleted parent row name it by its id (one problem per id).
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
    return ChainReport(tuple(chains), tuple(orphans.values()))

"""The drift-report chain: each report row against its document, and the lockset it checked."""

from __future__ import annotations

from collections.abc import Sequence

from ...drift import DRIFT_FORMAT, report_status
from .chains import parse_record, show, utc, walk_chain
from .records import DriftRecord, Problem


def drift_chain(project: str, records: Sequence[DriftRecord], locksets: set[str]) -> list[Problem]:
    def check(record: DriftRecord) -> list[Problem]:
        found: list[Problem] = []
        detail = drift_difference(record)
        if detail:
            found.append(Problem(project, "drift-report", record.hash, "altered", detail))
        checked = record.columns.get("lockset_hash")
        if isinstance(checked, str) and checked not in locksets:
            # A drift check names its lockset: this also catches a removed newest lockset.
            found.append(
                Problem(
                    project,
                    "lockset",
                    checked,
                    "removed",
                    f"drift report {record.hash} checked it, but it is not in the database",
                )
            )
        return found

    return walk_chain(project, "drift-report", records, check)


def drift_difference(record: DriftRecord) -> str:
    data, why = parse_record(record, DRIFT_FORMAT)
    if data is None or why:
        return why
    try:
        findings = data["findings"]
        expected = {
            "lockset_hash": data["lockset"],
            "status": report_status(
                (f.get("severity", "error") for f in findings), bool(data["errors"])
            ),
            "checked_at": utc(data["checked_at"]),
            "finding_count": len(findings),
        }
    except (KeyError, TypeError, ValueError, AttributeError):
        return "its document lacks fields every drift report has"
    if data.get("status") != expected["status"]:
        return f"its status {data.get('status')!r} contradicts its findings"
    for name, value in expected.items():
        if record.columns.get(name) != value:
            return (
                f"column {name} is {show(record.columns.get(name))} in the drift_reports "
                f"table, {show(value)} in the document"
            )
    return ""

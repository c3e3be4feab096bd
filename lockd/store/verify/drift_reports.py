"""A drift report row against its document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...drift import DRIFT_FORMAT, report_status
from .chains import parse_record, short, show, utc
from .records import DriftRecord


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
    compared = data.get("compared")  # reports recorded before it was kept have none
    return "" if compared is None else _snapshots_difference(compared, record.snapshots)


def _snapshots_difference(compared: Any, rows: Mapping[str, tuple[str, str]]) -> str:
    """How the report's ``snapshots`` rows differ from the snapshots its document names."""
    if not isinstance(compared, dict):
        return "its document's compared snapshots are not a mapping"
    for target in sorted({*compared, *rows}):
        if target not in rows:
            return f"it compared a snapshot of {target} that has no row in the snapshots table"
        if target not in compared:
            return f"the snapshots table holds a snapshot of {target} it did not compare"
        recorded, (digest, taken_at) = compared[target], rows[target]
        try:
            named = (str(recorded["sha256"]), utc(str(recorded["taken_at"])))
        except (KeyError, TypeError, ValueError):
            return f"its document's compared snapshot of {target} lacks sha256 or taken_at"
        if named != (digest, taken_at):
            return (
                f"its snapshot of {target} is content {short(digest)} taken {taken_at} in the "
                f"snapshots table, content {short(named[0])} taken {named[1]} in the document"
            )
    return ""

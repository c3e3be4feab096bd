"""A drift report row against its document."""

from __future__ import annotations

from ...drift import DRIFT_FORMAT, report_status
from .chains import parse_record, show, utc
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
    return ""

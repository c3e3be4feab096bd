"""``lockd lint`` output: text lines, JSON, and SARIF 2.1.0 for code-scanning tools (pure)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

from .. import __version__
from ..lint import RULES, FileReport, Finding, Severity
from .console import printable

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def lint_text_report(reports: Sequence[FileReport], threshold: Severity) -> str:
    """``path:line: LD101 error: message (fix: …)`` per finding, then a summary line."""
    lines: list[str] = []
    for report in reports:
        lines += [
            f"{report.path}:{f.line}: {f.rule.id} {f.level}: {f.message} (fix: {f.rule.fix})"
            for f in report.findings
        ]
        lines += [f"{report.path}: note: {note}" for note in report.notes]
    findings = [f for r in reports for f in r.findings]
    failing = sum(len(r.failing(threshold)) for r in reports)
    suppressed = sum(len(r.suppressed) for r in reports)
    counts = ", ".join(
        f"{sum(1 for f in findings if f.level is level)} {level}" for level in Severity
    )
    lines.append(
        f"{len(reports)} file(s): {counts}; {failing} at or above {threshold}"
        + (f"; {suppressed} suppressed" if suppressed else "")
    )
    return "\n".join(map(printable, lines)) + "\n"  # a Dockerfile's text is shown, not obeyed


def lint_json(reports: Sequence[FileReport], threshold: Severity) -> str:
    """``{"format": "lockd.lint/1", "files": [...], "failing": N}``."""
    data = {
        "format": "lockd.lint/1",
        "fail_on": str(threshold),
        "failing": sum(len(r.failing(threshold)) for r in reports),
        "files": [r.to_dict() for r in reports],
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def lint_sarif(reports: Sequence[FileReport]) -> str:
    """One SARIF 2.1.0 run: every rule's metadata, every finding (suppressed ones marked)."""
    index = {rule.id: number for number, rule in enumerate(RULES)}
    results: list[dict[str, Any]] = []
    for report in reports:
        results += [_result(report, f, index, suppressed=False) for f in report.findings]
        results += [_result(report, f, index, suppressed=True) for f in report.suppressed]
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "lockd-lint",
                        "version": __version__,
                        "rules": [
                            {
                                "id": rule.id,
                                "name": rule.name,
                                "shortDescription": {"text": rule.summary},
                                "fullDescription": {"text": f"{rule.summary} {rule.fix}"},
                                "help": {"text": rule.fix},
                                "defaultConfiguration": {"level": rule.severity.sarif_level},
                                "properties": {"needs-lock": rule.needs_lock},
                            }
                            for rule in RULES
                        ],
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


def _result(
    report: FileReport, finding: Finding, index: dict[str, int], *, suppressed: bool
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.rule.id,
        "ruleIndex": index[finding.rule.id],
        "level": finding.level.sarif_level,
        "message": {"text": f"{finding.message} Fix: {finding.rule.fix}"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": quote(PurePath(report.path).as_posix())},
                    "region": {"startLine": finding.line},
                }
            }
        ],
    }
    if suppressed:
        result["suppressions"] = [{"kind": "inSource", "justification": "lockd-lint ignore"}]
    return result

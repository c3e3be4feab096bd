"""Drift report renderers: JSON (the DESIGN contract), Markdown, JUnit XML, rich table; progress."""

from __future__ import annotations

import json
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from ..drift import DriftReport, Finding
from .console import printable

if TYPE_CHECKING:
    from ..app.drift import DriftStep
    from ..app.nightly import Summary

_STATUS_ORDER = {"clean": 0, "error": 1, "drift": 2}


def overall_status(reports: Sequence[DriftReport]) -> str:
    return max((r.status for r in reports), key=_STATUS_ORDER.__getitem__, default="clean")


def drift_json(reports: Sequence[DriftReport]) -> str:
    """One report as DESIGN.md specifies it; several (``--all``) wrapped in ``reports``."""
    data: Any = (
        reports[0].to_dict()
        if len(reports) == 1
        else {"status": overall_status(reports), "reports": [r.to_dict() for r in reports]}
    )
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def summary_json(summary: Summary) -> str:
    """``drift summary --format json``: each project merged from the reports it names."""
    data = {
        "since": summary.since,
        "status": overall_status(summary.reports),
        "projects": [p.to_dict() for p in summary.projects],
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def drift_markdown(reports: Sequence[DriftReport]) -> str:
    """GitHub-flavoured Markdown; every recorded value escaped as the audit report escapes it
    (package names, details and messages come from indexes and environments: hostile)."""
    from .markdown import code, md

    lines = [f"# lockd drift: {overall_status(reports)}", ""]
    for report in reports:
        lines += [
            f"## {md(report.project)} — {report.status}",
            "",
            f"Lockset {code(report.lockset[:12] or '-')}, checked {md(report.checked_at)}; "
            f"checks: {md(', '.join(report.checks) or 'none')}.{_image_note(report, code, md)}",
            "",
        ]
        if report.findings:
            lines += [
                "| kind | target | package | expected | actual | severity | detail |",
                "| --- | --- | --- | --- | --- | --- | --- |",
            ]
            lines += [
                "| "
                + " | ".join(
                    md(cell or "")
                    for cell in (
                        f.kind,
                        f.target,
                        f.package,
                        f.expected,
                        f.actual,
                        f.severity,
                        f.detail,
                    )
                )
                + " |"
                for f in report.findings
            ]
            lines.append("")
        for error in report.errors:
            lines.append(
                f"- {md(error.heading)} ({md(error.target or 'all')}): {md(error.message)}"
            )
        if report.status == "clean":
            lines.append("No drift.")
        lines.append("")
    return "\n".join(lines)


def _image_note(
    report: DriftReport, quote: Callable[[object], str], text: Callable[[object], str]
) -> str:
    """Which image an image check read (``quote``/``text`` make values safe for the format)."""
    image = report.image
    if image is None:
        return ""
    return (
        f" Image {quote(image.get('reference'))} ({text(image.get('platform') or '?')}, "
        f"{quote(image.get('digest') or 'unread')}) for target {quote(image.get('target') or '?')}."
    )


def drift_junit(reports: Sequence[DriftReport]) -> str:
    """One test suite per project, one test case per check; findings are failures.

    ``info`` findings are no failure: they go to the test case's ``system-out``.
    """
    suites = ET.Element("testsuites", name="lockd drift")
    for report in reports:
        cases: dict[str, list[Finding]] = {check: [] for check in report.checks}
        notes: dict[str, list[Finding]] = {}
        for finding in report.findings:
            check = _check_of(report, finding)
            cases.setdefault(check, [])
            (notes.setdefault(check, []) if finding.severity == "info" else cases[check]).append(
                finding
            )
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"lockd drift: {report.project}",
            tests=str(len(cases) + len(report.errors)),
            failures=str(sum(1 for found in cases.values() if found)),
            errors=str(len(report.errors)),
            timestamp=report.checked_at,
        )
        for check, found in cases.items():
            case = ET.SubElement(suite, "testcase", classname=report.project, name=check)
            if found:
                failure = ET.SubElement(
                    case, "failure", message=f"{len(found)} finding(s)", type="drift"
                )
                failure.text = "\n".join(_line(f) for f in found)
            if notes.get(check):  # information: shown with the test case, never a failure
                ET.SubElement(case, "system-out").text = "\n".join(_line(f) for f in notes[check])
        for error in report.errors:
            case = ET.SubElement(
                suite, "testcase", classname=report.project, name=f"{error.check}:{error.target}"
            )
            ET.SubElement(case, "error", message=error.message, type="check-error")
    ET.indent(suites)
    # ElementTree writes control characters as they are: not XML 1.0, and obeyed by a
    # terminal that shows the report. Spelled out (\x1b) like every other output.
    text = printable(ET.tostring(suites, encoding="unicode"))
    return '<?xml version="1.0" encoding="utf-8"?>\n' + text + "\n"


def _check_of(report: DriftReport, finding: Finding) -> str:
    if finding.kind.startswith("image-"):
        return "images"
    if report.image is not None:  # an image check: every finding is about that image
        return "base-image" if finding.kind == "base-image-mismatch" else report.checks[0]
    if finding.kind == "version-creep":
        return f"creep:{finding.target}"
    return next(
        (
            c
            for c in report.checks
            if c.endswith(f":{finding.target}") and not c.startswith("creep")
        ),
        f"check:{finding.target}",
    )


def _line(finding: Finding) -> str:
    where = " ".join(p for p in (finding.target, finding.package) if p)
    return f"[{finding.kind}] {where}: expected {finding.expected}, got {finding.actual}" + (
        f" ({finding.detail})" if finding.detail else ""
    )


def print_drift_table(reports: Sequence[DriftReport]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from .console import make_console

    console = make_console()
    for report in reports:
        colour = {"clean": "green", "drift": "red", "error": "yellow"}[report.status]
        console.print(
            f"[bold]{escape(report.project)}[/] lockset {report.lockset[:12] or '-'}: "
            f"[{colour}]{report.status}[/] ({len(report.findings)} finding(s), "
            f"checks: {escape(', '.join(report.checks) or 'none')})"
        )
        if report.image is not None:
            console.print(escape(_image_note(report, str, str).lstrip()))  # plain: no Markdown
        if report.findings:
            table = Table()
            for column in ("kind", "target", "package", "expected", "actual", "detail"):
                table.add_column(column)
            for f in report.findings:
                table.add_row(
                    *(
                        escape(x or "")
                        for x in (f.kind, f.target, f.package, f.expected, f.actual, f.detail)
                    )
                )
            console.print(table)
        for error in report.errors:
            console.print(f"[yellow]{escape(error.heading)}[/]: {escape(error.message)}")


def step_line(step: DriftStep) -> str:
    """``ml-model linux-x86_64-py311-cu124: install: Downloading torch (528.9MiB)``."""
    where = " ".join(p for p in (step.project, step.target) if p)
    return f"{where}: {step.step}" + (f": {step.detail}" if step.detail else "")


@contextmanager
def drift_progress(stream: TextIO | None = None) -> Iterator[Callable[[DriftStep], None]]:
    """Progress of a drift run on ``stream`` (stderr): a rich status line on a TTY, else a line
    per step (a nightly job's log shows where a rebuild spends its time)."""
    out = stream or sys.stderr
    lock = threading.Lock()  # --all checks projects in threads
    if not out.isatty():

        def line(step: DriftStep) -> None:
            with lock:
                out.write(f"lockd drift: {step_line(step)}\n")
                out.flush()

        yield line
        return
    from rich.markup import escape

    from .console import make_console

    with make_console(file=out, soft_wrap=False, width=None).status("checking drift") as status:

        def update(step: DriftStep) -> None:
            with lock:
                status.update(f"checking drift: {escape(step_line(step))}")

        yield update

"""Where a lockset stands: the worst over the newest report of each check unit (pure).

A unit is one target as one origin checks it: the local checks (``lockd drift``
on the machine that runs it), one image repository (``drift --image``), or one
deployment posting snapshots to ``lockd serve``. A newer report of a unit
replaces that unit's older one; it never hides another unit's. So a deployment
in drift keeps its lockset in drift however many other deployments post clean
snapshots after it, until it posts a clean one itself.

``drift summary``, ``audit``, ``history`` and the dashboard all judge a lockset
this way; what a report's origin is comes from its ``snapshots`` rows
(:func:`origin_of`, and the same expression in SQL in ``store/drift_reports``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .report import DriftReport, Finding, statuses_of

LOCAL = ""  # the origin of the local checks
IMAGE_PREFIX = "image:"  # an image check's snapshot key: image:NAME:TARGET
DEPLOYMENT_PREFIX = "deployment:"
_RANK = {"clean": 0, "error": 1, "drift": 2}


def origin_of(deployment: str | None, snapshot_keys: Iterable[str]) -> str:
    """Who made a report, from its ``snapshots`` rows: the deployment that posted its
    snapshot, the image it read (its snapshot key), or the local checks."""
    if deployment:
        return DEPLOYMENT_PREFIX + deployment
    return next((key for key in sorted(snapshot_keys) if key.startswith(IMAGE_PREFIX)), LOCAL)


def worst(statuses: Iterable[str]) -> str | None:
    """``drift`` over ``error`` over ``clean``; ``None`` for no status at all."""
    return max(statuses, key=_RANK.__getitem__, default=None)


@dataclass(frozen=True, slots=True)
class _Unit:
    status: str
    findings: tuple[Finding, ...]  # its open ones (not ``info``)


class Standing:
    """One lockset's reports, given oldest first: the newest of each unit counts."""

    __slots__ = ("_units",)

    def __init__(self) -> None:
        self._units: dict[tuple[str | None, str], _Unit] = {}

    def add(self, report: DriftReport, origin: str) -> None:
        targets: dict[str | None, str] = dict(statuses_of(report).items())
        for target, status in (targets or {None: report.status}).items():
            findings = tuple(
                f for f in report.findings if f.target in (target, None) and f.severity != "info"
            )
            self._units[target, origin] = _Unit(status, findings)

    @property
    def status(self) -> str | None:
        """The worst status of the units; ``None`` when no report was given."""
        return worst(unit.status for unit in self._units.values())

    @property
    def open_findings(self) -> tuple[Finding, ...]:
        """Every unit's open findings, each once, in the order of the units' targets."""
        seen: dict[Finding, None] = {}
        for _, unit in sorted(self._units.items(), key=lambda item: (item[0][0] or "", item[0][1])):
            seen.update(dict.fromkeys(unit.findings))
        return tuple(seen)


def unit_statuses(rows: Iterable[tuple[str | None, str, str]]) -> str | None:
    """A lockset's status from ``(target, origin, status)`` rows, oldest first (the
    per-target index as ``store`` reads it): the worst over the newest of each unit."""
    newest: dict[tuple[str | None, str], str] = {}
    for target, origin, status in rows:
        newest[target, origin] = status
    return worst(newest.values())

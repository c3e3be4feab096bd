"""The drift report: findings, checks that could not run, and the report chained per project."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..lockset import canonical_json, sha256_text

DRIFT_FORMAT = "lockd.drift/1"

KINDS = (
    "version-creep",
    "version-changed",
    "missing",
    "unexpected",
    "hash-mismatch",
    "cpu-wheel",
    "cuda-mismatch",
    "wrong-index",
    "artifact-gone",
    "artifact-changed",
    "image-moved",
    "image-gone",
    "system-changed",
    "system-lib-missing",
    "driver-too-old",
    "python-mismatch",
    "base-image-mismatch",
)

# Severities: "error" and "warning" are drift (exit 1); "info" is told, never drift.
SEVERITIES = ("error", "warning", "info")


def report_status(severities: Iterable[str], has_errors: bool) -> str:
    """``drift`` when a finding counts (not ``info``), else ``error`` when a check failed."""
    if any(severity != "info" for severity in severities):
        return "drift"
    return "error" if has_errors else "clean"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    target: str | None
    package: str | None
    expected: str | None
    actual: str | None
    severity: str = "error"  # see SEVERITIES
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "package": self.package,
            "expected": self.expected,
            "actual": self.actual,
            "severity": self.severity,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(
            data["kind"],
            data.get("target"),
            data.get("package"),
            data.get("expected"),
            data.get("actual"),
            data.get("severity", "error"),
            data.get("detail", ""),
        )


NO_REPORT = "no-report"  # drift summary: no report of the period covered the check


@dataclass(frozen=True, slots=True)
class CheckError:
    """A check that could not run, or (``NO_REPORT``) that no report of the period covered
    (exit 3 if nothing else was found)."""

    target: str | None
    check: str
    message: str

    @property
    def heading(self) -> str:
        """What a report says before the message: ``could not check rebuild``."""
        return "not reported" if self.check == NO_REPORT else f"could not check {self.check}"

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "check": self.check, "message": self.message}


@dataclass(frozen=True, slots=True)
class CheckTiming:
    """How long one unit of a drift run took: a target's lock, or the project's base images.

    ``target`` None is the project-wide check (the lockset's base-image tags);
    ``image`` names a tracked image checked against the target's lock.
    """

    target: str | None
    image: str | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "image": self.image, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckTiming:
        return cls(data.get("target"), data.get("image"), float(data["seconds"]))


@dataclass(frozen=True, slots=True)
class DriftReport:
    """The findings of one drift run over one lockset, chained per project."""

    project: str
    lockset: str
    checked_at: str
    findings: tuple[Finding, ...]
    errors: tuple[CheckError, ...] = ()
    checks: tuple[str, ...] = ()  # which checks ran: rebuild:<target>, live:<target>, creep, images
    parent: str | None = None
    snapshots: Mapping[str, Any] = field(default_factory=dict)  # target -> snapshot dict
    # An image check: {"reference", "digest", "platform", "target"}; None for the others.
    image: Mapping[str, Any] | None = None
    timings: tuple[CheckTiming, ...] = ()  # what the sharded nightly run balances on
    shard: str | None = None  # "I/N" when one shard of a nightly run made the report
    # The snapshots it compared, as stored: target -> {"sha256" of the content, "taken_at"}.
    # Set when recorded, so the chain vouches for the ``snapshots`` rows (``audit verify``).
    compared: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return report_status((f.severity for f in self.findings), bool(self.errors))

    def body(self) -> dict[str, Any]:
        return {
            "format": DRIFT_FORMAT,
            "project": self.project,
            "lockset": self.lockset,
            "status": self.status,
            "checked_at": self.checked_at,
            "checks": list(self.checks),
            "findings": [f.to_dict() for f in self.findings],
            "errors": [e.to_dict() for e in self.errors],
            "parent": self.parent,
            # Only image checks carry the key: older reports keep their recorded hashes.
            **({"image": dict(self.image)} if self.image is not None else {}),
            "timings": [t.to_dict() for t in self.timings],
            "shard": self.shard,
            # Only reports that compared a snapshot carry the key (older ones: see above).
            **(
                {"compared": {t: dict(c) for t, c in self.compared.items()}}
                if self.compared
                else {}
            ),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReport:
        """A report from its recorded document (reports recorded before timings have none)."""
        return cls(
            project=data["project"],
            lockset=data["lockset"],
            checked_at=data["checked_at"],
            findings=tuple(Finding.from_dict(f) for f in data["findings"]),
            errors=tuple(
                CheckError(e.get("target"), e["check"], e["message"])
                for e in data.get("errors", [])
            ),
            checks=tuple(data.get("checks", [])),
            parent=data.get("parent"),
            timings=tuple(CheckTiming.from_dict(t) for t in data.get("timings", [])),
            shard=data.get("shard"),
            image=data.get("image"),
            compared=data.get("compared") or {},
        )

    @property
    def hash(self) -> str:
        return sha256_text(canonical_json(self.body()))

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash}


# Checks recorded as "<check>:<target>" (others, such as "images", are project-wide).
_TARGET_CHECKS = frozenset({"live", "rebuild", "artifacts", "creep", "conda"})


def target_statuses(body: Mapping[str, Any]) -> dict[str, str]:
    """Each target a recorded report (its ``body()``) concerns, with its status there.

    A target is concerned when a check ran on it or a finding or error names it;
    its status is ``drift`` when a finding that counts (not ``info``) names it or no
    target at all (a moved base image affects every target), else ``error`` likewise,
    else ``clean``.
    """
    return _statuses(
        [(f.get("target"), f.get("severity", "error")) for f in body.get("findings", [])],
        [e.get("target") for e in body.get("errors", [])],
        body.get("checks", []),
    )


def statuses_of(report: DriftReport) -> dict[str, str]:
    """:func:`target_statuses` of a report read back."""
    return _statuses(
        [(f.target, f.severity) for f in report.findings],
        [e.target for e in report.errors],
        report.checks,
    )


def _statuses(
    findings: Sequence[tuple[str | None, str]], errors: Sequence[str | None], checks: Iterable[str]
) -> dict[str, str]:
    targets = {t for t in (*(t for t, _ in findings), *errors) if t}
    for check in checks:
        kind, _, target = str(check).partition(":")
        if kind in _TARGET_CHECKS and target:
            targets.add(target)
    counted = [t for t, severity in findings if severity != "info"]
    statuses = {}
    for target in sorted(targets):
        if any(t in (target, None) for t in counted):
            statuses[target] = "drift"
        elif any(t in (target, None) for t in errors):
            statuses[target] = "error"
        else:
            statuses[target] = "clean"
    return statuses

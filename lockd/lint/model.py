"""What lint works with and produces: rules, findings, the lock's facts (pure data)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How bad a finding is; ``--fail-on`` counts this level and above."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """2 for errors, 1 for warnings, 0 for infos."""
        return {"error": 2, "warning": 1, "info": 0}[self.value]

    @property
    def sarif_level(self) -> str:
        """SARIF's word for it: ``error``, ``warning``, ``note``."""
        return "note" if self is Severity.INFO else self.value


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule: a stable id, its default severity, what it checks and how to fix it."""

    id: str  # "LD101"; never reused for another meaning
    name: str  # "from-without-digest"
    severity: Severity
    summary: str  # one line: what is wrong
    fix: str  # one line: how to fix it
    needs_lock: bool = False  # only checked with a lockset


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule broken at one line."""

    rule: Rule
    line: int  # 1-based
    message: str
    severity: Severity | None = None  # None: the rule's default

    @property
    def level(self) -> Severity:
        """The finding's severity."""
        return self.severity or self.rule.severity

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``lockd lint --format json``)."""
        return {
            "rule": self.rule.id,
            "name": self.rule.name,
            "severity": str(self.level),
            "line": self.line,
            "message": self.message,
            "fix": self.rule.fix,
        }


@dataclass(frozen=True, slots=True)
class LockFacts:
    """What lock-aware rules know about the lock a Dockerfile should install."""

    lockset: str  # content hash
    target: str | None  # the target the Dockerfile builds, if known
    python: tuple[int, int] | None  # the target's Python
    cuda: tuple[int, int] | None  # the target's CUDA; None for cpu/rocm/xpu or unknown
    accelerator: str | None  # "cu124", "cpu", …
    family: frozenset[str]  # the PyTorch family routed to the variant index
    lock_files: frozenset[str] = frozenset()  # lock file names of the lockset


@dataclass(frozen=True, slots=True)
class FileReport:
    """Lint's result for one Dockerfile."""

    path: str
    findings: tuple[Finding, ...]
    suppressed: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()  # what was not checked, and why
    lock: LockFacts | None = None

    def failing(self, threshold: Severity) -> tuple[Finding, ...]:
        """The findings at ``threshold`` or worse."""
        return tuple(f for f in self.findings if f.level.rank >= threshold.rank)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "path": self.path,
            "findings": [f.to_dict() for f in self.findings],
            "suppressed": [f.to_dict() for f in self.suppressed],
            "notes": list(self.notes),
            "lockset": self.lock.lockset if self.lock else None,
            "target": self.lock.target if self.lock else None,
        }

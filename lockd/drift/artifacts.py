"""Locked files against what their indexes serve today."""

from __future__ import annotations

from collections.abc import Mapping

from ..lockset import Lock
from .report import Finding


def check_artifacts(lock: Lock, served: Mapping[str, Mapping[str, str | None]]) -> list[Finding]:
    """Every locked file still served with the same sha256 (targets not buildable here).

    ``served`` maps a package name to ``{filename: sha256 or None}`` as listed today.
    """
    findings: list[Finding] = []
    for artifact in lock.artifacts:
        listed = served.get(artifact.name, {})
        if artifact.filename not in listed:
            findings.append(
                Finding(
                    "artifact-gone",
                    lock.target,
                    artifact.name,
                    artifact.filename,
                    None,
                    detail=f"no longer listed on {artifact.index}",
                )
            )
        elif listed[artifact.filename] is not None and listed[artifact.filename] != artifact.sha256:
            findings.append(
                Finding(
                    "artifact-changed",
                    lock.target,
                    artifact.name,
                    artifact.sha256[:16],
                    (listed[artifact.filename] or "")[:16],
                    detail=artifact.filename,
                )
            )
    return findings

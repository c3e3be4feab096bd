"""Locked files still served with their sha256: wheels on their index, conda archives."""

from __future__ import annotations

from ...drift import Finding, check_artifacts
from ...indexes import IndexClient
from ...lockset import Lock
from ...routing import IndexPlan
from .indexes import credentialed


def served_findings(lock: Lock, client: IndexClient, plan: IndexPlan) -> list[Finding]:
    served: dict[str, dict[str, str | None]] = {}
    for artifact in lock.artifacts:
        if artifact.name in served:
            continue
        links = client.project_links(credentialed(artifact.index, plan), artifact.name)
        served[artifact.name] = {link.filename: link.sha256 for link in links}
    return check_artifacts(lock, served)


def is_conda(lock: Lock) -> bool:
    return bool(lock.artifacts) and all(a.kind == "conda" for a in lock.artifacts)


def conda_served_findings(lock: Lock, client: IndexClient) -> list[Finding]:
    """Every locked conda archive still listed in its subdir's repodata with its sha256."""
    by_subdir: dict[str, dict[str, str | None]] = {}
    served: dict[str, dict[str, str | None]] = {}
    for artifact in lock.artifacts:
        subdir = artifact.url.rsplit("/", 1)[0]
        if subdir not in by_subdir:
            data = client.json(f"{subdir}/repodata.json")
            listing: dict[str, str | None] = {}
            if isinstance(data, dict):
                for key in ("packages", "packages.conda"):
                    for filename, record in (data.get(key) or {}).items():
                        listing[filename] = record.get("sha256")
            by_subdir[subdir] = listing
        served.setdefault(artifact.name, {}).update(by_subdir[subdir])
    return check_artifacts(lock, served)

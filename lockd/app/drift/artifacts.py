"""Locked files still served with their sha256: wheels on their index, conda archives."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ...drift import Finding, check_artifacts
from ...indexes import IndexClient, IndexLink
from ...lockset import Lock
from .indexes import credentialed
from .options import TargetCheck

PAGES_AT_ONCE = 8  # index pages fetched concurrently (one client, kept-alive connections)


def served_findings(check: TargetCheck, *, hash_unlisted: bool = False) -> list[Finding]:
    """Every locked file against the sha256 its index lists today.

    A file listed without one is downloaded and hashed when ``hash_unlisted``
    (a rebuild: it downloads the lock anyway); otherwise it cannot be checked.
    """
    pages = {a.name: credentialed(a.index, check.plan) for a in check.lock.artifacts}

    def links(name: str) -> list[IndexLink]:
        return check.client.project_links(pages[name], name, missing_ok=True)

    with ThreadPoolExecutor(max_workers=PAGES_AT_ONCE) as pool:  # one page per package
        listings = dict(zip(pages, pool.map(links, pages), strict=True))
    served = {
        name: {link.filename: link.sha256 for link in links} for name, links in listings.items()
    }
    urls = {name: {link.filename: link.url for link in links} for name, links in listings.items()}
    for artifact in check.lock.artifacts:
        listed = served[artifact.name]
        if hash_unlisted and artifact.filename in listed and listed[artifact.filename] is None:
            check.step("verify", f"downloading {artifact.filename} (listed without a sha256)")
            # the link as the index serves it now (credentials only for the index's own host)
            listed[artifact.filename] = check.client.sha256(urls[artifact.name][artifact.filename])
    return check_artifacts(check.lock, served)


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

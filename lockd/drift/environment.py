"""A live environment against its lock: dists, their files and sources, the torch flavour."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..lockset import Lock
from ..targets import Target
from .report import Finding
from .system import system_findings

if TYPE_CHECKING:
    from ..snapshot import Snapshot

# Installer tooling a live environment may carry without the lock naming it.
TOOLING = frozenset({"pip", "setuptools", "wheel", "uv", "distribute"})


def compare_snapshot(
    lock: Lock,
    target: Target,
    snapshot: Snapshot,
    *,
    baseline: Snapshot | None = None,
    dists_baseline: Snapshot | None = None,
    ignore: Iterable[str] = TOOLING,
) -> list[Finding]:
    """Everything in ``snapshot`` that contradicts ``lock`` (and the last clean ``baseline``).

    ``dists_baseline`` (default: ``baseline``) is the snapshot the dists' RECORD digests are
    held to when the system is not: a deployment's first post is held to the local checks'
    dists (a RECORD digest does not depend on the machine) but not to their system.
    """
    tid = target.id
    findings: list[Finding] = []
    locked = {a.name: a for a in lock.artifacts}
    files_by_name: dict[str, list[str]] = {}
    for artifact in lock.artifacts:
        files_by_name.setdefault(artifact.name, []).append(artifact.sha256)
    installed = snapshot.dists_by_name
    held_to = dists_baseline if dists_baseline is not None else baseline
    before_by_name = held_to.dists_by_name if held_to is not None else {}
    skip = {canonicalize_name(n) for n in ignore}

    if snapshot.python.minor != target.python_version:
        findings.append(
            Finding(
                "python-mismatch",
                tid,
                None,
                target.python_version,
                snapshot.python.version or None,
                detail=_no_python(snapshot),
            )
        )
    for name, artifact in sorted(locked.items()):
        dist = installed.get(name)
        if dist is None:
            findings.append(
                Finding(
                    "missing", tid, name, artifact.version, None, detail="locked but not installed"
                )
            )
            continue
        if not same_version(dist.version, artifact.version):
            findings.append(Finding("version-changed", tid, name, artifact.version, dist.version))
            continue
        findings += _direct_url_findings(tid, name, dist.direct_url, files_by_name[name], lock)
        if held_to is not None:
            before = before_by_name.get(canonicalize_name(name))
            if (
                before is not None
                and before.record_sha256
                and dist.record_sha256
                and same_version(before.version, dist.version)
                and before.record_sha256 != dist.record_sha256
            ):
                findings.append(
                    Finding(
                        "hash-mismatch",
                        tid,
                        name,
                        before.record_sha256[:16],
                        dist.record_sha256[:16],
                        detail="same version, different files (RECORD digest) than at the last "
                        "clean check",
                    )
                )
    for name, dist in sorted(installed.items()):
        if name not in locked and name not in skip:
            findings.append(
                Finding(
                    "unexpected",
                    tid,
                    name,
                    None,
                    dist.version,
                    severity="warning",
                    detail="installed but not in the lock",
                )
            )
    findings += _flavour_findings(lock, target, snapshot)
    findings += system_findings(tid, snapshot, baseline)
    return findings


def _no_python(snapshot: Snapshot) -> str:
    python = snapshot.python
    if python.version:
        return f"the environment runs Python {python.version}"
    if python.site_packages:  # an image with site-packages copied in, and no interpreter
        return f"no Python interpreter to run {', '.join(python.site_packages)}"
    return "no Python environment found"


def same_version(a: str, b: str) -> bool:
    """Equal as versions (``2.1`` is ``2.1.0``), or as text when either is no version."""
    if a == b:  # the common case, without parsing two versions
        return True
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _direct_url_findings(
    tid: str, name: str, direct_url: Mapping[str, Any] | None, hashes: Sequence[str], lock: Lock
) -> list[Finding]:
    """pip and uv record the URL and hash of a file installed by URL (PEP 610)."""
    if not direct_url or "url" not in direct_url:
        return []
    out: list[Finding] = []
    url = str(direct_url["url"])
    archive = direct_url.get("archive_info") or {}
    digest = (archive.get("hashes") or {}).get("sha256") or str(
        archive.get("hash", "")
    ).removeprefix("sha256=")
    locked_urls = {a.url for a in lock.artifacts if a.name == name}
    indexes = {a.index for a in lock.artifacts if a.name == name}
    if url.startswith("file:") or "dir_info" in direct_url:
        out.append(
            Finding(
                "wrong-index",
                tid,
                name,
                ", ".join(sorted(indexes)),
                url,
                detail="installed from a local path, not from the locked index",
            )
        )
    elif url not in locked_urls and not any(url.startswith(i.rsplit("/", 1)[0]) for i in indexes):
        out.append(Finding("wrong-index", tid, name, ", ".join(sorted(indexes)), url))
    if digest and digest not in hashes:
        out.append(
            Finding(
                "hash-mismatch",
                tid,
                name,
                hashes[0][:16],
                digest[:16],
                detail="the installed file's sha256 is not one the lock recorded",
            )
        )
    return out


def _flavour_findings(lock: Lock, target: Target, snapshot: Snapshot) -> list[Finding]:
    if "torch" not in lock.packages():
        return []
    flavour = snapshot.torch_flavour
    if flavour is None:
        return []  # torch itself is reported missing
    tid = target.id
    acc = target.accelerator
    actual = f"{flavour.kind.value}" + (f" {flavour.cuda}" if flavour.cuda else "")
    if acc.kind == "cuda":
        if flavour.kind.value == "cpu":
            return [
                Finding(
                    "cpu-wheel",
                    tid,
                    "torch",
                    f"{lock.packages()['torch']} (cuda {acc.cuda_version})",
                    flavour.module_version or flavour.dist_version,
                    detail="; ".join(flavour.evidence),
                )
            ]
        if flavour.cuda and _major_minor(flavour.cuda) != acc.cuda_version:
            return [
                Finding(
                    "cuda-mismatch",
                    tid,
                    "torch",
                    acc.cuda_version,
                    flavour.cuda,
                    detail="; ".join(flavour.evidence),
                )
            ]
    elif acc.kind == "cpu" and flavour.kind.value == "cuda":
        return [
            Finding(
                "cuda-mismatch", tid, "torch", "cpu", actual, detail="; ".join(flavour.evidence)
            )
        ]
    return []


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])

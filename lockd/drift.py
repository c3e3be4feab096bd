"""Drift: comparing the record with reality (pure).

Each function takes recorded values (a lock, a baseline snapshot, what an
index offered) and observed values (a snapshot, a fresh resolution, today's
index pages, an image lookup) and returns findings. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .lockset import Lock, Offered, canonical_json, sha256_text
from .targets import Target

if TYPE_CHECKING:
    from .snapshot import Snapshot

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

# Installer tooling a live environment may carry without the lock naming it.
TOOLING = frozenset({"pip", "setuptools", "wheel", "uv", "distribute"})

# NVIDIA's minimum Linux driver per CUDA runtime (CUDA Toolkit release notes,
# "CUDA Toolkit and Corresponding Driver Versions"; minor-version compatibility
# lets a runtime X.Y run on any driver >= the X.0 minimum).
MIN_DRIVER_LINUX: Mapping[str, str] = {
    "11.0": "450.80.02",
    "11.8": "450.80.02",
    "12.0": "525.60.13",
    "12.1": "525.60.13",
    "12.4": "525.60.13",
    "12.6": "525.60.13",
    "12.8": "525.60.13",
    "12.9": "525.60.13",
    "13.0": "580.65.06",
}


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


@dataclass(frozen=True, slots=True)
class CheckError:
    """A check that could not run (exit 3 if nothing else was found)."""

    target: str | None
    check: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "check": self.check, "message": self.message}


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
        }

    @property
    def hash(self) -> str:
        return sha256_text(canonical_json(self.body()))

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash}


# -- live environment against the lock ------------------------------------------


def compare_snapshot(
    lock: Lock,
    target: Target,
    snapshot: Snapshot,
    *,
    baseline: Snapshot | None = None,
    ignore: Iterable[str] = TOOLING,
) -> list[Finding]:
    """Everything in ``snapshot`` that contradicts ``lock`` (and the last clean ``baseline``)."""
    tid = target.id
    findings: list[Finding] = []
    locked = {a.name: a for a in lock.artifacts}
    files_by_name: dict[str, list[str]] = {}
    for artifact in lock.artifacts:
        files_by_name.setdefault(artifact.name, []).append(artifact.sha256)
    installed = snapshot.dists_by_name
    skip = {canonicalize_name(n) for n in ignore}

    if snapshot.python.minor != target.python_version:
        findings.append(
            Finding(
                "python-mismatch",
                tid,
                None,
                target.python_version,
                snapshot.python.version or None,
                detail=f"the environment runs Python {snapshot.python.version}"
                if snapshot.python.version
                else "no Python environment found",
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
        if not _same_version(dist.version, artifact.version):
            findings.append(Finding("version-changed", tid, name, artifact.version, dist.version))
            continue
        findings += _direct_url_findings(tid, name, dist.direct_url, files_by_name[name], lock)
        if baseline is not None:
            before = baseline.dist(name)
            if (
                before is not None
                and before.record_sha256
                and dist.record_sha256
                and _same_version(before.version, dist.version)
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
    findings += _system_findings(tid, snapshot, baseline)
    return findings


def _same_version(a: str, b: str) -> bool:
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


def _system_findings(tid: str, snapshot: Snapshot, baseline: Snapshot | None) -> list[Finding]:
    from .snapshot import LibraryStatus

    out: list[Finding] = []
    for lib in snapshot.unresolved_libraries or ():
        if lib.status is LibraryStatus.missing:
            detail, severity = "needed by " + _some(lib.needed_by) + " (loaded on import)", "error"
        elif lib.status is LibraryStatus.plugin:
            plugins = "plugins " if len(lib.needed_by) > 1 else "plugin "
            detail = f"{plugins}{_some(lib.needed_by)} would need it; no import loads them"
            severity = "info"
        else:
            continue  # driver (mounted at run time) and bundled libraries are not drift
        out.append(
            Finding(
                "system-lib-missing",
                tid,
                lib.soname,
                "resolvable",
                "not found",
                severity=severity,
                detail=detail,
            )
        )
    if baseline is None:
        return out
    if (
        baseline.glibc_version
        and snapshot.glibc_version
        and baseline.glibc_version != snapshot.glibc_version
    ):
        out.append(
            Finding("system-changed", tid, "glibc", baseline.glibc_version, snapshot.glibc_version)
        )
    if (
        baseline.driver_version
        and snapshot.driver_version
        and baseline.driver_version != snapshot.driver_version
    ):
        out.append(
            Finding(
                "system-changed",
                tid,
                "nvidia-driver",
                baseline.driver_version,
                snapshot.driver_version,
                severity="warning",
            )
        )
    before, now = baseline.dpkg_packages, snapshot.dpkg_packages
    if before is not None and now is not None:
        for name in sorted(set(before) | set(now)):
            old, new = before.get(name), now.get(name)
            if old is None or new is None or old.version != new.version:
                out.append(
                    Finding(
                        "system-changed",
                        tid,
                        f"deb:{name}",
                        old.version if old else None,
                        new.version if new else None,
                    )
                )
    return out


def _some(names: Sequence[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def driver_findings(lock: Lock, target: Target, driver_version: str | None) -> list[Finding]:
    """A driver too old for the CUDA runtime the lock ships (only where a driver exists)."""
    cuda = target.accelerator.cuda_version
    if cuda is None or driver_version is None:
        return []
    flavour = lock.flavour or ""
    runtime = flavour.removeprefix("cuda ").strip() if flavour.startswith("cuda") else cuda
    needed = MIN_DRIVER_LINUX.get(runtime) or MIN_DRIVER_LINUX.get(f"{runtime.split('.')[0]}.0")
    if needed is None:
        return []
    if _version_tuple(driver_version) < _version_tuple(needed):
        return [
            Finding(
                "driver-too-old",
                target.id,
                "nvidia-driver",
                f">= {needed}",
                driver_version,
                detail=f"CUDA {runtime} needs driver {needed} or newer",
            )
        ]
    return []


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


# -- re-resolution and index checks ------------------------------------------------


def compare_resolution(
    lock: Lock,
    today: Mapping[str, str],
    as_of_cutoff: Mapping[str, str] | None,
    *,
    cutoff_known: bool = True,
) -> list[Finding]:
    """Version creep: what a resolution today would change.

    ``as_of_cutoff`` is the same resolution limited to files uploaded before the
    lockset's cut-off (indexes with upload times). Where it still reproduces the
    lock, a difference today is upstream releasing something newer; where it
    does not, upstream changed or removed what was there at lock time. Without
    a cut-off (``cutoff_known=False``: conda channels) the finding says only
    that today's resolution differs.
    """
    locked = lock.packages()
    findings: list[Finding] = []
    for name in sorted(set(locked) | set(today)):
        old, new = locked.get(name), today.get(name)
        if old is not None and new is not None and _same_version(old, new):
            continue
        history_changed = (
            as_of_cutoff is not None
            and name in locked
            and as_of_cutoff.get(name) not in (None, old)
        )
        if not cutoff_known:
            detail = "a resolution today picks another version"
        elif history_changed:
            detail = "upstream changed what was published before the cut-off"
        elif old and new:
            detail = "upstream released a newer version"
        else:
            detail = "the dependency set changed upstream"
        findings.append(
            Finding("version-creep", lock.target, name, old, new, severity="warning", detail=detail)
        )
    return findings


def compare_offered(
    target: str, offered: Offered, today: Mapping[str, str | None], versions: Sequence[str]
) -> list[Finding]:
    """An index without upload times: what it offers now against what it offered at lock time.

    ``today`` maps file names of the locked version to their published sha256
    (``None`` when listed without one); ``versions`` are the versions listed now.
    """
    findings: list[Finding] = []
    for filename, digest in sorted(offered.files.items()):
        if filename not in today:
            findings.append(
                Finding(
                    "artifact-gone",
                    target,
                    offered.name,
                    filename,
                    None,
                    detail=f"no longer listed on {offered.index}",
                )
            )
        elif today[filename] is not None and today[filename] != digest:
            findings.append(
                Finding(
                    "artifact-changed",
                    target,
                    offered.name,
                    digest[:16],
                    (today[filename] or "")[:16],
                    detail=f"{filename} was replaced on {offered.index}",
                )
            )
    new = [v for v in versions if v not in offered.versions]
    if new:
        findings.append(
            Finding(
                "version-creep",
                target,
                offered.name,
                None,
                ", ".join(sorted(new)[-3:]),
                severity="warning",
                detail=f"{offered.index} lists versions it did not at lock time",
            )
        )
    return findings


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


def compare_image(
    reference: str, recorded: str, current: str | None, target: str | None = None
) -> list[Finding]:
    """A base image tag that moved to other content or disappeared."""
    if current is None:
        return [
            Finding(
                "image-gone", target, reference, recorded, None, detail="the tag no longer resolves"
            )
        ]
    if current != recorded:
        return [
            Finding(
                "image-moved",
                target,
                reference,
                recorded,
                current,
                detail="the tag points at new content",
            )
        ]
    return []


def compare_base_image(
    target: str, diff_ids: Sequence[str], bases: Mapping[str, Sequence[str]]
) -> list[Finding]:
    """An image not built on any base image recorded with its lockset.

    ``diff_ids`` are the image's layers (its config's ``rootfs.diff_ids``);
    ``bases`` maps each recorded base (``python:3.11-slim@sha256:…``, the
    platform's manifest digest) to its own ``diff_ids``. An image built ``FROM``
    a base starts with the base's layers; one that starts with none of them was
    built on something else (a moved tag, a local base, another Dockerfile).
    """
    if not bases:
        return []
    for layers in bases.values():
        if layers and tuple(diff_ids[: len(layers)]) == tuple(layers):
            return []
    best = max(bases, key=lambda ref: _common_prefix(diff_ids, bases[ref]))
    shared = _common_prefix(diff_ids, bases[best])
    return [
        Finding(
            "base-image-mismatch",
            target,
            None,
            " or ".join(sorted(bases)),
            f"{shared} of {len(bases[best])} base layers",
            detail=f"the image's first layers are not those of {best}"
            + (f" (only the first {shared} match)" if shared else ""),
        )
    ]


def _common_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


__all__ = [
    "DRIFT_FORMAT",
    "KINDS",
    "MIN_DRIVER_LINUX",
    "SEVERITIES",
    "CheckError",
    "DriftReport",
    "Finding",
    "check_artifacts",
    "compare_base_image",
    "compare_image",
    "compare_offered",
    "compare_resolution",
    "compare_snapshot",
    "driver_findings",
    "report_status",
]

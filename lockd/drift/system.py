"""The system around an environment: shared libraries, glibc, the NVIDIA driver, OS packages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..lockset import Lock
from ..targets import Target
from .report import Finding

if TYPE_CHECKING:
    from ..snapshot import DebPackage, RpmPackage, Snapshot

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


def system_findings(tid: str, snapshot: Snapshot, baseline: Snapshot | None) -> list[Finding]:
    """Libraries an import lacks (plugins' needs as ``info``), and changes since ``baseline``."""
    from ..snapshot import LibraryStatus

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
    out += _package_changes(tid, "deb", baseline.dpkg_packages, snapshot.dpkg_packages)
    out += _package_changes(tid, "rpm", baseline.rpm_packages, snapshot.rpm_packages)
    return out


def _package_changes(
    tid: str,
    kind: str,
    before: Mapping[str, DebPackage | RpmPackage] | None,
    now: Mapping[str, DebPackage | RpmPackage] | None,
) -> list[Finding]:
    """OS packages added, removed or at another version (only where both sides were read)."""
    if before is None or now is None:
        return []
    out = []
    for name in sorted(set(before) | set(now)):
        old, new = before.get(name), now.get(name)
        if old is None or new is None or old.version != new.version:
            out.append(
                Finding(
                    "system-changed",
                    tid,
                    f"{kind}:{name}",
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

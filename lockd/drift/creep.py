"""Version creep: what resolving again today would change, and what an index offers now."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..lockset import Lock, Offered
from .environment import same_version
from .report import Finding


def compare_resolution(
    lock: Lock,
    today: Mapping[str, str],
    as_of_cutoff: Mapping[str, str] | None,
    *,
    cutoff_known: bool = True,
    kept_at_cutoff: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Version creep: what a resolution today would change.

    ``as_of_cutoff`` is the same resolution limited to files uploaded before the
    lockset's cut-off (indexes with upload times). Where it still reproduces the
    lock, a difference today is upstream releasing something newer. Where it does
    not, ``kept_at_cutoff`` (that resolution again, preferring the lock's own pins,
    as a re-lock does) tells why: reproduced, the lock keeps an older pin although
    a newer version was already published; not reproduced, upstream changed or
    removed what was there at lock time. Without a cut-off (``cutoff_known=False``:
    conda channels) the finding says only that today's resolution differs.
    """
    locked = lock.packages()
    findings: list[Finding] = []
    for name in sorted(set(locked) | set(today)):
        old, new = locked.get(name), today.get(name)
        if old is not None and new is not None and same_version(old, new):
            continue
        moved_at_cutoff = (
            as_of_cutoff is not None
            and old is not None
            and as_of_cutoff.get(name) not in (None, old)
        )
        kept = (kept_at_cutoff or {}).get(name)
        if not cutoff_known:
            detail = "a resolution today picks another version"
        elif moved_at_cutoff and old is not None and kept is not None and same_version(kept, old):
            detail = "a newer version was already published at the cut-off: the lock keeps an "
            detail += "older pin (re-lock keeps pins; --upgrade-package moves one)"
        elif moved_at_cutoff:
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

"""Are the locks on disk current for the inputs and configuration? (no resolving)

``lockd compile`` is a no-op, and ``lockd compile --check`` exits 0, exactly
when :func:`staleness` finds nothing: the manifest on disk was compiled from the
same inputs and configuration (its input key), recorded no failed target, and
every lock file it names is on disk with the content it recorded. When the key
differs, the recorded inputs, targets, resolver, indexes and options are
compared with the current ones to say what changed; a difference the record
does not show (``--exclude-newer``, ``--allow-partial``, base images) is named
as such.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FormatError
from ..lockfiles.files import MAX_LOCK_FILE_BYTES, read_regular_file
from ..lockfiles.manifest import MANIFEST
from ..lockset import InputFile, Lockset, sha256_text

# The options a lockset records (in ``extra``) that are part of its input key, as the
# user knows them.
OPTIONS = {
    "constraints": "the constraints",
    "glibc": "glibc",
    "family": "pytorch-family",
    "extras": "the extras",
    "groups": "the dependency groups",
    "routes": "the [[index]] routes",
    "allow_build": "allow-build",
    "dockerfile": "the Dockerfile",
}


@dataclass(frozen=True, slots=True)
class Expected:
    """What compiling the current inputs and configuration would record, as far as it
    is known before resolving."""

    key: str
    inputs: tuple[InputFile, ...]
    targets: tuple[str, ...] | None  # None where conda solutions decide the target ids
    resolver: str
    resolver_version: str
    indexes: Mapping[str, str]
    options: Mapping[str, Any] = field(default_factory=dict)  # recorded in the lockset's extra


@dataclass(frozen=True, slots=True)
class LockCheck:
    """The answer of ``lockd compile --check``."""

    manifest: Path
    lockset: str | None  # hash of the lockset on disk, if there is a readable one
    stale: tuple[str, ...]  # what is out of date; empty when the locks are current

    @property
    def current(self) -> bool:
        return not self.stale

    def to_dict(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "manifest": str(self.manifest),
            "lockset": self.lockset,
            "stale": list(self.stale),
        }


def staleness(
    on_disk: Lockset | None, expected: Expected, out_dir: Path, unreadable: str | None = None
) -> tuple[str, ...]:
    """Everything that makes the lockset on disk out of date; empty when it is current.

    ``unreadable``: why the manifest there is not a lockset (``read_manifest``'s
    message: edited after lockd wrote it, a field of the wrong type, not JSON).
    """
    if on_disk is None:
        manifest = out_dir / MANIFEST
        if unreadable:
            return (unreadable.removesuffix("."),)
        return (f"{manifest} is {'unreadable' if manifest.exists() else 'missing'}",)
    reasons: list[str] = []
    if on_disk.input_key != expected.key:
        reasons += _changes(on_disk, expected) or [
            f"the compile options (--exclude-newer, --allow-partial, base images) differ from "
            f"those of lockset {on_disk.hash[:12]}"
        ]
    if on_disk.failures:
        failed = ", ".join(f.target for f in on_disk.failures)
        reasons.append(f"lockset {on_disk.hash[:12]} recorded failed targets ({failed})")
    for lock in on_disk.locks:
        for name, digest in lock.files.items():
            try:  # never through a link, never more than a lock file can be
                data = read_regular_file(out_dir / name, MAX_LOCK_FILE_BYTES)
            except FormatError:
                reasons.append(f"{name} is not a regular file")
                continue
            if data is None:
                reasons.append(f"{name} is missing")
            elif sha256_text(data.decode("utf-8", "replace")) != digest:
                reasons.append(f"{name} differs from what lockd wrote")
    return tuple(reasons)


def _changes(on_disk: Lockset, expected: Expected) -> list[str]:
    out: list[str] = []
    before = {i.path: i.sha256 for i in on_disk.inputs}
    now = {i.path: i.sha256 for i in expected.inputs}
    for path in sorted(set(before) | set(now)):
        if path not in before:
            out.append(f"input {path} is new")
        elif path not in now:
            out.append(f"input {path} is no longer an input")
        elif before[path] != now[path]:
            out.append(f"input {path} changed")
    if expected.targets is not None and set(on_disk.targets) != set(expected.targets):
        added = sorted(set(expected.targets) - set(on_disk.targets))
        removed = sorted(set(on_disk.targets) - set(expected.targets))
        out.append(
            "the target matrix changed"
            + (f" (new: {', '.join(added)})" if added else "")
            + (f" (dropped: {', '.join(removed)})" if removed else "")
        )
    recorded = f"{on_disk.resolver} {on_disk.resolver_version}"
    current = f"{expected.resolver} {expected.resolver_version}"
    if recorded != current:
        out.append(f"the resolver is {current}, the locks were made by {recorded}")
    if dict(on_disk.indexes) != dict(expected.indexes):
        out.append("the index URLs changed")
    for key, label in OPTIONS.items():
        if on_disk.extra.get(key) != expected.options.get(key):
            out.append(f"{label} changed")
    return out

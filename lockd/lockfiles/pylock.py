"""PEP 751 ``pylock.toml``: read a resolver's output, write lockd's own (pure)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

from ..errors import FormatError
from ..lockset import Artifact, Lock
from ..resolvers.interface import ResolvedFile, ResolvedPackage

SUPPORTED_LOCK_VERSIONS = ("1.0",)


def filename_of(url: str) -> str:
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def parse_pylock(text: str, source: str = "pylock.toml") -> tuple[ResolvedPackage, ...]:
    """The packages of a pylock document, each with its files."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(f"{source} is not valid TOML: {exc}.") from None
    version = str(data.get("lock-version", ""))
    if version not in SUPPORTED_LOCK_VERSIONS:
        raise FormatError(
            f"{source} has lock-version {version!r}; "
            f"lockd reads {', '.join(SUPPORTED_LOCK_VERSIONS)}.",
            hint="Regenerate it with this lockd, or upgrade lockd.",
        )
    packages = []
    for entry in data.get("packages", []):
        files = [_file(wheel, "wheel") for wheel in entry.get("wheels", [])]
        if "sdist" in entry:
            files.append(_file(entry["sdist"], "sdist"))
        if not files:  # archive, vcs or directory sources: nothing lockd can record
            kinds = sorted(k for k in ("archive", "vcs", "directory") if k in entry) or ["no file"]
            raise FormatError(
                f"{source}: {entry.get('name')} {entry.get('version', '')} comes from "
                f"{', '.join(kinds)}, not from an index file; lockd cannot lock it.",
                hint="Require it by name and version from an index.",
            )
        packages.append(
            ResolvedPackage(canonicalize_name(entry["name"]), str(entry["version"]), tuple(files))
        )
    return tuple(packages)


def _file(entry: Mapping[str, Any], kind: str) -> ResolvedFile:
    url = entry.get("url") or entry.get("path", "")
    upload = entry.get("upload-time")
    return ResolvedFile(
        url=url,
        filename=entry.get("name") or filename_of(url),
        sha256=(entry.get("hashes") or {}).get("sha256") or None,
        upload_time=_utc_text(upload),
        size=entry.get("size"),
        kind=kind,
    )


def _utc_text(value: object) -> str | None:
    """TOML datetimes (tomllib gives ``datetime``) as ``2024-06-01T00:00:00Z``."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value) if value else None


def render_pylock(lock: Lock, *, requires_python: str, created_by: str = "lockd") -> dict[str, Any]:
    """The PEP 751 document of one lock (credentials already stripped), for ``tomli_w``.

    With a dependency graph, each package lists the entries it requires in
    ``dependencies`` (by name: one entry per name in a lock), as PEP 751 allows;
    installers do not use it.
    """
    by_name: dict[str, list[Artifact]] = {}
    for artifact in lock.artifacts:
        by_name.setdefault(artifact.name, []).append(artifact)
    requires: dict[str, set[str]] = {}
    for edge in lock.graph.edges if lock.graph else ():
        requires.setdefault(edge.parent, set()).add(edge.child)
    packages: list[dict[str, Any]] = []
    for name in sorted(by_name):
        artifacts = by_name[name]
        entry: dict[str, Any] = {
            "name": name,
            "version": artifacts[0].version,
            "index": artifacts[0].index,
        }
        if lock.graph is not None and name not in lock.graph.unknown:
            entry["dependencies"] = [{"name": child} for child in sorted(requires.get(name, ()))]
        wheels = [_render_file(a) for a in artifacts if a.kind == "wheel"]
        sdists = [_render_file(a) for a in artifacts if a.kind == "sdist"]
        if wheels:
            entry["wheels"] = wheels
        if sdists:
            entry["sdist"] = sdists[0]
        packages.append(entry)
    return {
        "lock-version": "1.0",
        "created-by": created_by,
        "requires-python": requires_python,
        "packages": packages,
    }


def _render_file(artifact: Artifact) -> dict[str, Any]:
    out: dict[str, Any] = {"name": artifact.filename, "url": artifact.url}
    if artifact.size is not None:
        out["size"] = artifact.size
    out["hashes"] = {"sha256": artifact.sha256}
    return out

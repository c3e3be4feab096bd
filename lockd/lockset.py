"""Locksets: the immutable, content-addressed result of one ``lockd compile`` (pure).

A lockset holds one lock per target (a list of artifacts), the inputs that
produced it, and who/when/where. Its hash is the sha256 of its canonical JSON
(sorted keys, no whitespace) without the hash field itself; ``parent`` chains
it to the project's previous lockset.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import FormatError

LOCKSET_FORMAT = "lockd.lockset/1"


def canonical_json(value: Any) -> str:
    """The one serialisation that hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Artifact:
    """One file a lock installs: what, from where, with which hash."""

    name: str
    version: str
    index: str  # base URL of the index it came from, credentials stripped
    url: str
    filename: str
    sha256: str
    kind: str = "wheel"  # wheel | sdist | conda
    upload_time: str | None = None
    size: int | None = None
    md5: str | None = None  # conda packages carry both hashes

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "version": self.version,
            "index": self.index,
            "url": self.url,
            "filename": self.filename,
            "sha256": self.sha256,
            "kind": self.kind,
            "upload_time": self.upload_time,
            "size": self.size,
        }
        if self.md5 is not None:  # absent, not null: older lockset hashes stay valid
            out["md5"] = self.md5
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Artifact:
        return cls(
            name=data["name"],
            version=data["version"],
            index=data["index"],
            url=data["url"],
            filename=data["filename"],
            sha256=data["sha256"],
            kind=data.get("kind", "wheel"),
            upload_time=data.get("upload_time"),
            size=data.get("size"),
            md5=data.get("md5"),
        )


@dataclass(frozen=True, slots=True)
class Offered:
    """What an index without upload times offered for one package at lock time."""

    name: str
    index: str
    versions: tuple[str, ...]
    files: Mapping[str, str]  # filename -> sha256 of the locked version's files

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "index": self.index,
            "versions": list(self.versions),
            "files": dict(sorted(self.files.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Offered:
        return cls(data["name"], data["index"], tuple(data["versions"]), dict(data["files"]))


@dataclass(frozen=True, slots=True)
class Lock:
    """One target's resolution."""

    target: str
    artifacts: tuple[Artifact, ...]
    files: Mapping[str, str] = field(default_factory=dict)  # lock file name -> sha256
    offered: tuple[Offered, ...] = ()
    notes: tuple[str, ...] = ()  # verification remarks that are not failures
    flavour: str | None = None  # "cuda 12.4" | "cpu" | … as verified

    def packages(self) -> dict[str, str]:
        """Name -> version, one entry per package."""
        return {a.name: a.version for a in self.artifacts}

    def source_builds(self) -> dict[str, str]:
        """Name -> version of the packages locked as sdists only: installing them runs
        their build code."""
        kinds: dict[str, set[str]] = {}
        for artifact in self.artifacts:
            kinds.setdefault(artifact.name, set()).add(artifact.kind)
        versions = self.packages()
        return {name: versions[name] for name in sorted(kinds) if kinds[name] == {"sdist"}}

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "artifacts": [a.to_dict() for a in self.artifacts],
            "files": dict(sorted(self.files.items())),
            "offered": [o.to_dict() for o in self.offered],
            "notes": list(self.notes),
            "flavour": self.flavour,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lock:
        return cls(
            target=data["target"],
            artifacts=tuple(Artifact.from_dict(a) for a in data["artifacts"]),
            files=dict(data.get("files", {})),
            offered=tuple(Offered.from_dict(o) for o in data.get("offered", [])),
            notes=tuple(data.get("notes", [])),
            flavour=data.get("flavour"),
        )


@dataclass(frozen=True, slots=True)
class Failure:
    """A target that did not lock (kept only with ``--allow-partial``)."""

    target: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "message": self.message}


@dataclass(frozen=True, slots=True)
class InputFile:
    path: str
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class Provenance:
    """Who, when and where."""

    user: str
    host: str
    created_at: str
    git_commit: str | None = None
    lockd_version: str = ""
    git_dirty: bool | None = None  # uncommitted changes in the work tree at compile time

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "user": self.user,
            "host": self.host,
            "created_at": self.created_at,
            "git_commit": self.git_commit,
            "lockd_version": self.lockd_version,
        }
        if self.git_dirty is not None:  # absent, not null: older lockset hashes stay valid
            out["git_dirty"] = self.git_dirty
        return out


@dataclass(frozen=True, slots=True)
class Lockset:
    """Everything one compile decided. ``hash`` covers all other fields."""

    project: str
    inputs: tuple[InputFile, ...]
    requirements: tuple[str, ...]
    targets: tuple[str, ...]
    resolver: str
    resolver_version: str
    indexes: Mapping[str, str]
    cutoff: str
    input_key: str
    provenance: Provenance
    locks: tuple[Lock, ...]
    failures: tuple[Failure, ...] = ()
    images: tuple[Mapping[str, Any], ...] = ()
    parent: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The hashed content (everything but the hash)."""
        return {
            "format": LOCKSET_FORMAT,
            "project": self.project,
            "inputs": [i.to_dict() for i in self.inputs],
            "requirements": list(self.requirements),
            "targets": list(self.targets),
            "resolver": {"name": self.resolver, "version": self.resolver_version},
            "indexes": dict(sorted(self.indexes.items())),
            "cutoff": self.cutoff,
            "input_key": self.input_key,
            "provenance": self.provenance.to_dict(),
            "locks": [lock.to_dict() for lock in self.locks],
            "failures": [f.to_dict() for f in self.failures],
            "images": [dict(i) for i in self.images],
            "parent": self.parent,
            "extra": dict(self.extra),
        }

    @property
    def hash(self) -> str:
        return sha256_text(canonical_json(self.body()))

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash}

    def lock(self, target: str) -> Lock | None:
        return next((lock for lock in self.locks if lock.target == target), None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, verify: bool = True) -> Lockset:
        """Rebuild a lockset; with ``verify``, reject one whose hash does not match."""
        fmt = data.get("format")
        if fmt != LOCKSET_FORMAT:
            raise FormatError(
                f"Unknown lockset format {fmt!r} (this lockd reads {LOCKSET_FORMAT!r}).",
                hint="Upgrade lockd, or recompile the lockset with this version.",
            )
        prov = data["provenance"]
        lockset = cls(
            project=data["project"],
            inputs=tuple(InputFile(i["path"], i["sha256"]) for i in data["inputs"]),
            requirements=tuple(data["requirements"]),
            targets=tuple(data["targets"]),
            resolver=data["resolver"]["name"],
            resolver_version=data["resolver"]["version"],
            indexes=dict(data["indexes"]),
            cutoff=data["cutoff"],
            input_key=data["input_key"],
            provenance=Provenance(
                prov["user"],
                prov["host"],
                prov["created_at"],
                prov.get("git_commit"),
                prov.get("lockd_version", ""),
                prov.get("git_dirty"),
            ),
            locks=tuple(Lock.from_dict(lock) for lock in data["locks"]),
            failures=tuple(Failure(f["target"], f["message"]) for f in data.get("failures", [])),
            images=tuple(data.get("images", [])),
            parent=data.get("parent"),
            extra=dict(data.get("extra", {})),
        )
        if verify and "hash" in data and data["hash"] != lockset.hash:
            raise FormatError(
                f"Lockset {data['hash'][:12]} does not match its content hash "
                f"({lockset.hash[:12]}): it was edited after lockd wrote it.",
                hint="Recompile with `lockd compile` instead of editing lock files by hand.",
            )
        return lockset


def input_key(parts: Iterable[Any]) -> str:
    """A hash of everything that determines a resolution (for the no-op check)."""
    return sha256_text(canonical_json(list(parts)))


def diff_locksets(a: Lockset, b: Lockset) -> dict[str, Any]:
    """Per target: added, removed, upgraded, downgraded, hash or source changes, and the
    pins kept; per base image reference: added, removed, and digest changes."""
    from packaging.version import InvalidVersion, Version

    targets: dict[str, Any] = {}
    for target in sorted(set(a.targets) | set(b.targets)):
        lock_a, lock_b = a.lock(target), b.lock(target)
        if lock_a is None or lock_b is None:
            targets[target] = {"status": "only-in-b" if lock_a is None else "only-in-a"}
            continue
        old, new = _by_name(lock_a), _by_name(lock_b)
        entry: dict[str, list[dict[str, Any]]] = {
            "added": [],
            "removed": [],
            "upgraded": [],
            "downgraded": [],
            "changed": [],
            "kept": [],  # same version, same files
        }
        for name in sorted(set(old) | set(new)):
            if name not in old:
                entry["added"].append({"name": name, "version": new[name][0].version})
            elif name not in new:
                entry["removed"].append({"name": name, "version": old[name][0].version})
            else:
                va, vb = old[name][0].version, new[name][0].version
                if va != vb:
                    try:
                        up = Version(vb) > Version(va)
                    except InvalidVersion:
                        up = vb > va
                    entry["upgraded" if up else "downgraded"].append(
                        {"name": name, "from": va, "to": vb}
                    )
                else:
                    change = _file_change(old[name], new[name])
                    if change:
                        entry["changed"].append({"name": name, "version": va, **change})
                    else:
                        entry["kept"].append({"name": name, "version": va})
        targets[target] = entry
    return {"a": a.hash, "b": b.hash, "targets": targets, "images": _image_changes(a, b)}


def _image_changes(a: Lockset, b: Lockset) -> dict[str, list[dict[str, Any]]]:
    old = {str(i["reference"]): i for i in a.images}
    new = {str(i["reference"]): i for i in b.images}
    out: dict[str, list[dict[str, Any]]] = {"added": [], "removed": [], "changed": []}
    for ref in sorted(set(old) | set(new)):
        if ref not in old:
            out["added"].append({"reference": ref, "digest": new[ref]["index_digest"]})
        elif ref not in new:
            out["removed"].append({"reference": ref, "digest": old[ref]["index_digest"]})
        elif old[ref]["index_digest"] != new[ref]["index_digest"]:
            was, now = old[ref], new[ref]
            before, after = _platform_digests(was), _platform_digests(now)
            platforms = {
                platform: {"from": before.get(platform), "to": after.get(platform)}
                for platform in sorted(set(before) | set(after))
                if before.get(platform) != after.get(platform)
            }
            change = {"from": was["index_digest"], "to": now["index_digest"]}
            out["changed"].append({"reference": ref, **change, "platforms": platforms})
    return out


def _platform_digests(image: Mapping[str, Any]) -> dict[str, str]:
    """``linux/arm64/v8`` -> that platform's manifest digest."""
    out = {}
    for p in image.get("platforms", []):
        variant = f"/{p['variant']}" if p.get("variant") else ""
        out[f"{p['os']}/{p['architecture']}{variant}"] = str(p["digest"])
    return out


def _by_name(lock: Lock) -> dict[str, list[Artifact]]:
    out: dict[str, list[Artifact]] = {}
    for artifact in lock.artifacts:
        out.setdefault(artifact.name, []).append(artifact)
    return out


def _file_change(old: list[Artifact], new: list[Artifact]) -> dict[str, Any] | None:
    sources_a, sources_b = {x.index for x in old}, {x.index for x in new}
    if sources_a != sources_b:
        return {"what": "source", "from": sorted(sources_a), "to": sorted(sources_b)}
    hashes_a = {x.filename: x.sha256 for x in old}
    hashes_b = {x.filename: x.sha256 for x in new}
    if hashes_a != hashes_b:
        files = sorted(
            f for f in set(hashes_a) | set(hashes_b) if hashes_a.get(f) != hashes_b.get(f)
        )
        return {"what": "hash", "files": files}
    return None

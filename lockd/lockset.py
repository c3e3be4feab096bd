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
from .fields import Fields
from .graph import Graph
from .names import check_name

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
        return cls.read(Fields(data, "artifact"))

    @classmethod
    def read(cls, fields: Fields) -> Artifact:
        """From an untrusted document: every field checked (``FormatError``)."""
        name, version, index, url, filename, sha256 = fields.text_fields(
            "name", "version", "index", "url", "filename", "sha256"
        )
        kind, upload_time, md5 = fields.optional_text_fields("kind", "upload_time", "md5")
        size = fields.optional_integer("size")
        # Positional: read 100,000 times by an audit, keywords cost a tenth more.
        return cls(
            name, version, index, url, filename, sha256, kind or "wheel", upload_time, size, md5
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
        return cls.read(Fields(data, "offered"))

    @classmethod
    def read(cls, fields: Fields) -> Offered:
        return cls(
            fields.text("name"),
            fields.text("index"),
            fields.texts("versions"),
            fields.text_map("files"),
        )


@dataclass(frozen=True, slots=True)
class Lock:
    """One target's resolution."""

    target: str
    artifacts: tuple[Artifact, ...]
    files: Mapping[str, str] = field(default_factory=dict)  # lock file name -> sha256
    offered: tuple[Offered, ...] = ()
    notes: tuple[str, ...] = ()  # verification remarks that are not failures
    flavour: str | None = None  # "cuda 12.4" | "cpu" | … as verified
    graph: Graph | None = None  # why each package is here; None: recorded without one

    def is_conda(self) -> bool:
        """A conda environment's lock (its artifacts are conda archives)."""
        return bool(self.artifacts) and all(a.kind == "conda" for a in self.artifacts)

    def packages(self) -> dict[str, str]:
        """Name -> version, one entry per package."""
        return {a.name: a.version for a in self.artifacts}

    def source_builds(self) -> dict[str, str]:
        """Name -> version of the packages locked as sdists only: installing them runs
        their build code."""
        if all(artifact.kind != "sdist" for artifact in self.artifacts):
            return {}  # the common case, asked for every lock of every lockset an audit shows
        kinds: dict[str, set[str]] = {}
        for artifact in self.artifacts:
            kinds.setdefault(artifact.name, set()).add(artifact.kind)
        versions = self.packages()
        return {name: versions[name] for name in sorted(kinds) if kinds[name] == {"sdist"}}

    def to_dict(self) -> dict[str, Any]:
        out = {
            "target": self.target,
            "artifacts": [a.to_dict() for a in self.artifacts],
            "files": dict(sorted(self.files.items())),
            "offered": [o.to_dict() for o in self.offered],
            "notes": list(self.notes),
            "flavour": self.flavour,
        }
        if self.graph is not None:  # absent, not empty: older lockset hashes stay valid
            out["graph"] = self.graph.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lock:
        return cls.read(Fields(data, "lock"))

    @classmethod
    def read(cls, fields: Fields) -> Lock:
        return cls(
            target=fields.text("target"),
            artifacts=tuple(Artifact.read(a) for a in fields.objects("artifacts")),
            files=fields.text_map("files", required=False),
            offered=tuple(Offered.read(o) for o in fields.objects("offered", required=False)),
            notes=fields.texts("notes", required=False),
            flavour=fields.optional_text("flavour"),
            graph=Graph.read(fields.object("graph")) if "graph" in fields else None,
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
        fields = Fields(data, "")
        fields.check_format(LOCKSET_FORMAT, "lockset")
        resolver, prov = fields.object("resolver"), fields.object("provenance")
        lockset = cls(
            project=check_name(
                "project",
                fields.text("project"),
                where="the lockset",
                hint="It was not written by lockd: recompile with `lockd compile`.",
                error=FormatError,
            ),
            inputs=tuple(
                InputFile(i.text("path"), i.text("sha256")) for i in fields.objects("inputs")
            ),
            requirements=fields.texts("requirements"),
            targets=fields.texts("targets"),
            resolver=resolver.text("name"),
            resolver_version=resolver.text("version"),
            indexes=fields.text_map("indexes"),
            cutoff=fields.text("cutoff"),
            input_key=fields.text("input_key"),
            provenance=Provenance(
                prov.text("user"),
                prov.text("host"),
                prov.text("created_at"),
                prov.optional_text("git_commit"),
                prov.optional_text("lockd_version") or "",
                prov.optional_bool("git_dirty"),
            ),
            locks=tuple(Lock.read(lock) for lock in fields.objects("locks")),
            failures=tuple(
                Failure(f.text("target"), f.text("message"))
                for f in fields.objects("failures", required=False)
            ),
            images=fields.raw_objects("images"),
            parent=fields.optional_text("parent"),
            extra=fields.raw_object("extra"),
        )
        claimed = fields.optional_text("hash")
        if verify and claimed is not None and claimed != lockset.hash:
            raise FormatError(
                f"Lockset {claimed[:12]} does not match its content hash "
                f"({lockset.hash[:12]}): it was edited after lockd wrote it.",
                hint="Recompile with `lockd compile` instead of editing lock files by hand.",
            )
        return lockset


def input_key(parts: Iterable[Any]) -> str:
    """A hash of everything that determines a resolution (for the no-op check)."""
    return sha256_text(canonical_json(list(parts)))


def diff_locksets(a: Lockset, b: Lockset) -> dict[str, Any]:
    """Per target: added, removed, upgraded, downgraded, hash or source changes, and the
    pins kept; per base image reference: added, removed, and digest changes.

    Where a lock has a dependency graph, each moved, added or removed pin carries
    ``why`` (the path that holds it, and the changed direct inputs that lead to it);
    ``inputs`` lists the direct requirements and constraints that changed.
    """
    from packaging.version import InvalidVersion, Version

    from .graph import explain_moves, input_changes

    changes = input_changes(_direct(a), _direct(b))
    targets: dict[str, Any] = {}
    failed_a, failed_b = {f.target for f in a.failures}, {f.target for f in b.failures}
    for target in sorted(set(a.targets) | set(b.targets) | failed_a | failed_b):
        lock_a, lock_b = a.lock(target), b.lock(target)
        if lock_a is None or lock_b is None:
            targets[target] = {"status": _unpaired(target in failed_a, target in failed_b, lock_a)}
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
        targets[target] = explain_moves(entry, lock_a.graph, lock_b.graph, changes)
    return {
        "a": a.hash,
        "b": b.hash,
        "targets": targets,
        "images": _image_changes(a, b),
        "inputs": [change.to_dict() for change in changes.values()],
    }


def _direct(lockset: Lockset) -> list[str]:
    """The direct requirements and constraints of a lockset (recorded by every version)."""
    constraints = lockset.extra.get("constraints")  # free-form: read back from disk as is
    listed = constraints if isinstance(constraints, list) else []
    return [*lockset.requirements, *(c for c in listed if isinstance(c, str))]


def _unpaired(failed_a: bool, failed_b: bool, lock_a: Lock | None) -> str:
    """How a target without a lock on one side (or both) differs."""
    if failed_a and failed_b:
        return "failed-in-both"
    if failed_b:
        return "failed-in-b"
    if failed_a:
        return "failed-in-a"
    return "only-in-a" if lock_a is not None else "only-in-b"


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

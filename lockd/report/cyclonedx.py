"""CycloneDX 1.6 JSON SBOMs of a lockset, built with ``cyclonedx-python-lib``.

Shape (NTIA minimum elements: supplier, name, version, unique id (purl),
relationships, author, timestamp):

* One BOM per call. Without a target it describes the whole lockset: the root
  (``metadata.component``) is the project at this lockset, each target is an
  ``application`` component, and each distinct file (sha256 + index) is one
  ``library`` component shared by the targets that install it. With a target
  the root is that target and its artifacts are the components.
* Every artifact: name, version, purl (``pkg:pypi/torch@2.4.0%2Bcu124``, with
  ``repository_url`` when it came from another index than the lockset's
  default one; ``pkg:conda/…`` for conda artifacts), its SHA-256, the file URL
  as a ``distribution`` reference, and the index host as supplier (the
  distributor: lockd does not read package authors).
* Base images are ``container`` components (``pkg:oci/…@sha256:…``) with
  their index digest as hash and each platform's manifest digest as property.
* Dependencies: root → targets (and root → images); a target → the
  components of its direct inputs; each artifact → the artifacts of the
  packages it requires in that target (the lock's dependency graph). A file
  shared by several targets is one component only where everything below it
  is the same in each (a pure wheel whose requirements pick other wheels per
  platform is one component per platform), so walking down from a target
  never reaches a file that target does not install. ``compositions`` say
  which components' dependencies are ``complete`` and which are ``unknown``
  (an sdist whose metadata needs a build; every artifact of a lock recorded
  before lockd kept graphs, where the target → its artifacts instead).
* Metadata: the lockset's creation time as timestamp, its user as author, lockd
  and the resolver as tools. The serial number is derived from the lockset hash
  and target, so the same lockset always gives the same BOM.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import UsageError
from ..graph import Graph
from ..lockset import Artifact, Lock, Lockset

if TYPE_CHECKING:
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component
    from packageurl import PackageURL

PYPI_HOSTS = frozenset({"pypi.org", "files.pythonhosted.org"})
CONDA_SUFFIXES = (".conda", ".tar.bz2")
_SERIAL_NAMESPACE = uuid.UUID("5f0c6a52-8f3e-4c57-9d0b-6b1f2b7f4c11")  # lockd's own uuid5 namespace


@dataclass(frozen=True, slots=True)
class BomRequest:
    lockset: Lockset
    lockset_hash: str  # the hash it is filed under (not recomputed)
    target: str | None = None  # None: all targets in one BOM
    lockd_version: str = ""


def purl_for(artifact: Artifact, default_index: str | None) -> PackageURL:
    """The package URL of one locked artifact.

    ``repository_url`` is added for any index other than the lockset's default
    one (a PyTorch variant index, a private index): the same name and version
    there is a different build (``+cu124``) than on the default index.
    """
    from packageurl import PackageURL
    from packaging.utils import canonicalize_name

    if artifact.kind == "conda" or artifact.filename.endswith(CONDA_SUFFIXES):
        return _conda_purl(artifact)
    qualifiers: dict[str, str] = {}
    if _norm(artifact.index) != _norm(default_index) and urlsplit(artifact.index).hostname not in (
        PYPI_HOSTS
    ):
        qualifiers["repository_url"] = artifact.index
    return PackageURL(
        type="pypi",
        name=canonicalize_name(artifact.name),
        version=artifact.version,
        qualifiers=qualifiers or None,
    )


def _conda_purl(artifact: Artifact) -> PackageURL:
    from packageurl import PackageURL

    stem = artifact.filename
    suffix = next(s for s in (*CONDA_SUFFIXES, "") if stem.endswith(s))
    stem = stem.removesuffix(suffix)
    qualifiers = {"channel": artifact.index}
    prefix = f"{artifact.name}-{artifact.version}-"
    if stem.startswith(prefix):
        qualifiers["build"] = stem.removeprefix(prefix)
    if suffix:
        qualifiers["type"] = suffix.lstrip(".")
    return PackageURL(
        type="conda", name=artifact.name, version=artifact.version, qualifiers=qualifiers
    )


def _norm(url: str | None) -> str:
    return (url or "").rstrip("/")


def build_bom(request: BomRequest) -> Bom:
    """The BOM of a lockset (all targets) or of one of its targets."""
    return _build(request).bom


@dataclass(slots=True)
class _Built:
    bom: Bom
    complete: set[str] = field(default_factory=set)  # bom-refs whose dependencies are known
    unknown: set[str] = field(default_factory=set)
    # ref -> (component, what it depends on by ref): collected here and added to the BOM
    # once, as Bom.register_dependency looks each ref up in a list (minutes for big BOMs)
    edges: dict[str, tuple[Component, dict[str, Component]]] = field(default_factory=dict)

    def depend(self, component: Component, needed: Iterable[Component]) -> None:
        for item in (component, *needed):
            self.edges.setdefault(str(item.bom_ref), (item, {}))
        self.edges[str(component.bom_ref)][1].update((str(n.bom_ref), n) for n in needed)

    def finish(self) -> None:
        from cyclonedx.model.dependency import Dependency

        self.bom.dependencies.update(
            Dependency(
                ref=component.bom_ref,
                dependencies=[Dependency(ref=n.bom_ref) for n in needed.values()],
            )
            for component, needed in self.edges.values()
        )


def _build(request: BomRequest) -> _Built:
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.contact import OrganizationalContact
    from cyclonedx.model.lifecycle import LifecyclePhase, PredefinedLifecycle

    lockset, digest = request.lockset, request.lockset_hash
    locks = lockset.locks
    if request.target is not None:
        lock = lockset.lock(request.target)
        if lock is None:
            raise UsageError(
                f"Lockset {digest[:12]} has no lock for target {request.target!r}.",
                hint="It has: " + (", ".join(lockset.targets) or "no targets") + ".",
            )
        locks = (lock,)
    prov = lockset.provenance
    scope = f"{digest}:{request.target or '*'}"
    root = Component(
        type=ComponentType.APPLICATION,
        name=lockset.project,
        version=digest[:12],
        bom_ref=f"lockset:{scope}",
        description=(
            f"{lockset.project} locked by lockd"
            + (f" for target {request.target}" if request.target else "")
        ),
        properties=_properties(
            {
                "lockd:lockset": digest,
                "lockd:parent": lockset.parent,
                "lockd:target": request.target,
                "lockd:cutoff": lockset.cutoff,
                "lockd:host": prov.host,
                "lockd:git-commit": prov.git_commit,
                "lockd:dependency-graph": "packages"
                if all(lock.graph is not None for lock in locks)
                else "root-to-components-only",
                **{f"lockd:index:{k}": v for k, v in sorted(lockset.indexes.items())},
                **{f"lockd:input:{i.path}": i.sha256 for i in lockset.inputs},
            }
        ),
    )
    bom = Bom(
        serial_number=uuid.uuid5(_SERIAL_NAMESPACE, scope),
        metadata=BomMetaData(
            timestamp=datetime.fromisoformat(prov.created_at),
            authors=[OrganizationalContact(name=prov.user)],
            component=root,
            tools=_tools(lockset, request.lockd_version),
            lifecycles=[PredefinedLifecycle(LifecyclePhase.PRE_BUILD)],
        ),
    )
    built = _Built(bom)
    files = _Files(bom, lockset.indexes.get("default"))
    for lock in locks:
        parent = root
        if request.target is None:
            parent = Component(
                type=ComponentType.APPLICATION,
                group=lockset.project,
                name=lock.target,
                version=digest[:12],
                bom_ref=f"target:{digest}:{lock.target}",
                properties=_properties(
                    {
                        "lockd:flavour": lock.flavour,
                        **{f"lockd:lockfile:{n}": h for n, h in sorted(lock.files.items())},
                    }
                ),
            )
            bom.components.add(parent)
            built.depend(root, [parent])
        if lock.graph is None:
            needed = [files.component(a, lock.target) for a in lock.artifacts]
            built.depend(parent, needed)
            built.unknown.update(str(c.bom_ref) for c in needed)
        else:
            _register_graph(built, files, parent, lock, lock.graph)
    for component, targets in files.users():
        component.properties.update(Property(name="lockd:target", value=t) for t in targets)
    images = [_image_component(image, n) for n, image in enumerate(lockset.images)]
    for image in images:
        bom.components.add(image)
    if images:
        built.depend(root, images)
    built.finish()
    return built


class _Files:
    """One component per distinct file (sha256 + index) and what lies below it."""

    def __init__(self, bom: Bom, default_index: str | None) -> None:
        self._bom = bom
        self._default = default_index
        self._made: dict[Hashable, tuple[Component, list[str]]] = {}

    def component(self, artifact: Artifact, target: str, below: Hashable = None) -> Component:
        key = (artifact.sha256, artifact.index, below)
        if key not in self._made:
            made = _artifact_component(artifact, self._default, len(self._made))
            self._bom.components.add(made)
            self._made[key] = (made, [])
        self._made[key][1].append(target)
        return self._made[key][0]

    def users(self) -> list[tuple[Component, list[str]]]:
        return list(self._made.values())


def _register_graph(
    built: _Built, files: _Files, parent: Component, lock: Lock, graph: Graph
) -> None:
    """target → its direct inputs' files; each file → the files of what its package requires."""
    children: dict[str, set[str]] = {}
    for edge in graph.edges:
        children.setdefault(edge.parent, set()).add(edge.child)
    by_name: dict[str, list[Artifact]] = {}
    for artifact in lock.artifacts:
        by_name.setdefault(artifact.name, []).append(artifact)
    files_of = {name: tuple(sorted(a.sha256 for a in group)) for name, group in by_name.items()}
    made = {}
    for name, group in by_name.items():
        below = _below(name, children, files_of)
        made[name] = [files.component(a, lock.target, below) for a in group]
    direct = sorted({r.package for r in graph.roots if not r.constraint} & set(made))
    built.depend(parent, [c for name in direct for c in made[name]])
    for name, components in made.items():
        needed = [c for child in sorted(children.get(name, ())) for c in made.get(child, ())]
        for component in components:
            built.depend(component, needed)
            refs = built.unknown if name in graph.unknown else built.complete
            refs.add(str(component.bom_ref))


def _below(
    name: str, children: Mapping[str, set[str]], files_of: Mapping[str, tuple[str, ...]]
) -> Hashable:
    """Everything under ``name`` in one lock: the packages it reaches, their files and edges.

    Two targets share a file's component only when this is equal for both.
    """
    seen, stack = {name}, [name]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return (
        frozenset((n, files_of.get(n, ())) for n in seen),
        frozenset((n, c) for n in seen for c in children.get(n, ())),
    )


def _artifact_component(artifact: Artifact, default_index: str | None, n: int) -> Component:
    from cyclonedx.model import (
        ExternalReference,
        ExternalReferenceType,
        HashAlgorithm,
        HashType,
        XsUri,
    )
    from cyclonedx.model.component import Component, ComponentType

    digest = HashType(alg=HashAlgorithm.SHA_256, content=artifact.sha256)
    return Component(
        type=ComponentType.LIBRARY,
        name=artifact.name,
        version=artifact.version,
        # sha256 alone is not unique: one file can be served by two indexes.
        bom_ref=f"artifact:{artifact.name}@{artifact.version}:{artifact.sha256[:16]}:{n}",
        purl=purl_for(artifact, default_index),
        hashes=[digest],
        supplier=_supplier(artifact.index),
        external_references=[
            ExternalReference(
                type=ExternalReferenceType.DISTRIBUTION, url=XsUri(artifact.url), hashes=[digest]
            )
        ],
        properties=_properties(
            {
                "lockd:filename": artifact.filename,
                "lockd:kind": artifact.kind,
                "lockd:index": artifact.index,
                "lockd:upload-time": artifact.upload_time,
            }
        ),
    )


def _image_component(image: Mapping[str, Any], n: int) -> Component:
    from cyclonedx.model import HashAlgorithm, HashType
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    reference = str(image.get("reference") or image.get("image") or "image")
    registry = str(image.get("registry") or "")
    repository = str(image.get("repository") or _repository_of(reference))
    digest = image.get("index_digest") or image.get("digest")
    qualifiers = {"repository_url": f"{registry}/{repository}" if registry else repository}
    if image.get("tag"):
        qualifiers["tag"] = str(image["tag"])
    hashes = []
    if isinstance(digest, str) and digest.startswith("sha256:"):
        hashes.append(HashType(alg=HashAlgorithm.SHA_256, content=digest.removeprefix("sha256:")))
    platforms = {
        "lockd:platform:"
        + "/".join(str(p[k]) for k in ("os", "architecture", "variant") if p.get(k)): str(
            p.get("digest")
        )
        for p in image.get("platforms") or ()
        if isinstance(p, Mapping)
    }
    return Component(
        type=ComponentType.CONTAINER,
        name=repository.rsplit("/", 1)[-1],
        version=str(digest) if digest else None,
        bom_ref=f"image:{reference}:{n}",
        purl=PackageURL(
            type="oci",
            name=repository.rsplit("/", 1)[-1].lower(),
            version=str(digest) if digest else None,
            qualifiers=qualifiers,
        ),
        hashes=hashes,
        supplier=_supplier(f"https://{registry}" if registry else None),
        properties=_properties({"lockd:reference": reference, **platforms}),
    )


def _repository_of(reference: str) -> str:
    """``host:5000/team/app:tag@sha256:…`` -> ``host:5000/team/app`` (no registry lookup)."""
    name = reference.split("@", maxsplit=1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def _supplier(url: str | None) -> Any:
    from cyclonedx.model import XsUri
    from cyclonedx.model.contact import OrganizationalEntity

    host = urlsplit(url).hostname if url else None
    if not host or url is None:
        return OrganizationalEntity(name="unknown")
    base = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
    return OrganizationalEntity(name=host, urls=[XsUri(base)])


def _tools(lockset: Lockset, lockd_version: str) -> Any:
    from cyclonedx.contrib.this.builders import this_component
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.tool import ToolRepository

    return ToolRepository(
        components=[
            Component(
                type=ComponentType.APPLICATION,
                name="lockd",
                version=lockd_version or lockset.provenance.lockd_version or None,
                description="dependency locks for ML containers; wrote this SBOM",
            ),
            Component(
                type=ComponentType.APPLICATION,
                name=lockset.resolver,
                version=lockset.resolver_version,
                description="the resolver that produced the locks",
            ),
            this_component(),
        ]
    )


def _properties(values: Mapping[str, str | None]) -> list[Any]:
    """Name/value properties, leaving out empty values."""
    from cyclonedx.model import Property

    return [Property(name=name, value=value) for name, value in values.items() if value]


def render_cyclonedx(request: BomRequest) -> str:
    """The CycloneDX 1.6 JSON text of :func:`build_bom`'s BOM."""
    from cyclonedx.output.json import JsonV1Dot6

    built = _build(request)
    data = json.loads(JsonV1Dot6(built.bom).output_as_string())
    # cyclonedx-python-lib has no compositions: state whose dependencies are listed in
    # full, and whose are unknown (not absent).
    compositions = [
        {"aggregate": aggregate, "dependencies": sorted(refs)}
        for aggregate, refs in (("complete", built.complete), ("unknown", built.unknown))
        if refs
    ]
    if compositions:
        data["compositions"] = compositions
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


__all__ = ["BomRequest", "build_bom", "purl_for", "render_cyclonedx"]

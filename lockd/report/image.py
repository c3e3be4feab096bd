"""``lockd images inspect``: the image as a table, and its CycloneDX 1.6 SBOM.

The SBOM's root is the image (a ``container`` component, ``pkg:oci/…@digest``)
with its layer digests and ``diff_id``\\ s as properties; its components are the
Debian and RPM packages (``pkg:deb/<os-id>/name@version?arch=…``,
``pkg:rpm/<os-id>/name@version?arch=…&epoch=…``) and the Python dists
of the primary environment (``pkg:pypi/…``, with the RECORD digest as a
property: an installed dist has no wheel hash). Dependencies are root →
components only, and a composition says the rest is ``unknown``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..snapshot import Available, summary_rows

if TYPE_CHECKING:
    from ..images import ImageInspection
    from ..snapshot import Snapshot, SystemInfo

_SERIAL_NAMESPACE = uuid.UUID("3c1f3f8e-5a7e-4a39-9d55-4f5b8c2b7a10")
# The package that names the distribution: the SBOM's operating-system component.
_OS_BASE_PACKAGES = frozenset(
    {"base-files", "redhat-release", "fedora-release", "rocky-release", "almalinux-release"}
)


def human(size: int) -> str:
    """``1.2 GB``: decimal units, as registries and ``docker images`` show sizes."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover - the loop always returns


@contextmanager
def step_progress(label: str) -> Iterator[Callable[[str], None]]:
    """A spinner on a TTY; one line per step on stderr otherwise."""
    import sys

    if sys.stderr.isatty():
        from .console import status_progress

        with status_progress(label) as hook:
            yield hook or (lambda _step: None)
        return
    yield lambda step: print(f"{label}: {step}", file=sys.stderr, flush=True)


def print_inspection(inspection: ImageInspection) -> None:
    from rich.table import Table
    from rich.text import Text

    from .console import make_console

    snapshot, size = inspection.snapshot, inspection.size
    facts = snapshot.image
    console = make_console(width=None)
    summary = Table(show_header=False, box=None)
    summary.add_column(no_wrap=True)
    summary.add_column(overflow="fold")  # digests are shown whole
    rows: list[tuple[str, str]] = []
    if facts is not None:
        rows += [
            ("Image", facts.reference),
            ("Digest", facts.digest or f"(no manifest) config {facts.config_digest}"),
            ("Platform", facts.platform),
            ("Created", facts.created or "-"),
            ("User", facts.user or "root (unset)"),
            ("Entrypoint", " ".join(facts.entrypoint or ()) or "-"),
            ("Cmd", " ".join(facts.cmd or ()) or "-"),
        ]
        rows += [(f"Label {k}", v) for k, v in sorted(facts.labels.items())]
        others = [e for e in facts.environments if not e.primary]
        if others:
            rows.append(
                ("Other Pythons", ", ".join(f"{e.prefix} ({len(e.dists)} dists)" for e in others))
            )
        if facts.cuda_libraries:
            rows.append(("CUDA libraries", ", ".join(facts.cuda_libraries)))
        if facts.skipped:
            rows.append(("Skipped", ", ".join(f"{n}× {w}" for w, n in facts.skipped.items())))
    rows += summary_rows(snapshot)
    rows += [
        ("Size", f"{human(size.compressed_size)} compressed, {human(size.size)} uncompressed, "
         f"{size.files} files ({human(size.files_size)})"),
        ("Wasted", human(size.wasted)),
    ]  # fmt: skip
    for label, value in rows:
        summary.add_row(Text(label, style="bold"), Text(value))
    console.print(summary)

    layers = Table("#", "compressed", "size", "files", "wasted below", "created by", title="Layers")
    for layer in size.layers:
        layers.add_row(
            str(layer.index),
            human(layer.compressed_size),
            human(layer.size),
            str(layer.files),
            human(layer.removed_bytes),
            Text((layer.created_by or "-")[:100]),
        )
    console.print(layers)
    largest = Table("directory", "size", title="Largest directories")
    for path, total in size.largest:
        largest.add_row(Text("/" + path), human(total))
    console.print(largest)
    if size.findings:
        findings = Table("finding", "what", "size", "why", title="Size findings")
        for finding in size.findings:
            findings.add_row(
                finding.kind, Text(finding.subject), human(finding.bytes), Text(finding.detail)
            )
        console.print(findings)
    else:
        console.print("No size findings.")


# -- CycloneDX ------------------------------------------------------------------------------


def render_image_sbom(inspection: ImageInspection) -> str:
    """The CycloneDX 1.6 JSON SBOM of an inspected image."""
    from cyclonedx.output.json import JsonV1Dot6

    bom = _bom(inspection.snapshot)
    data = json.loads(JsonV1Dot6(bom).output_as_string())
    refs = sorted(c["bom-ref"] for c in data.get("components", []))
    if refs:
        data["compositions"] = [{"aggregate": "unknown", "dependencies": refs}]
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _bom(snapshot: Snapshot) -> Any:
    from datetime import datetime

    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.lifecycle import LifecyclePhase, PredefinedLifecycle
    from cyclonedx.model.tool import ToolRepository
    from packageurl import PackageURL

    from .. import __version__

    facts = snapshot.image
    if facts is None:  # pragma: no cover - inspect always sets it
        raise ValueError("not an image snapshot")
    identity = facts.digest or facts.config_digest
    name = facts.name.rsplit("/", 1)[-1] or "image"
    properties = [
        Property(name="lockd:reference", value=facts.reference),
        Property(name="lockd:platform", value=facts.platform),
        Property(name="lockd:config", value=facts.config_digest),
    ]
    for n, layer in enumerate(facts.layers):
        if layer.digest:
            properties.append(Property(name=f"lockd:layer:{n}:digest", value=layer.digest))
        if layer.diff_id:
            properties.append(Property(name=f"lockd:layer:{n}:diff_id", value=layer.diff_id))
    qualifiers = {"repository_url": facts.name} if facts.transport == "registry" else {}
    root = Component(
        type=ComponentType.CONTAINER,
        name=name,
        version=identity,
        bom_ref=f"image:{identity}",
        purl=PackageURL(type="oci", name=name.lower(), version=identity, qualifiers=qualifiers),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=identity.removeprefix("sha256:"))],
        properties=properties,
    )
    created = datetime.fromisoformat(snapshot.taken_at.replace("Z", "+00:00"))
    bom = Bom(
        serial_number=uuid.uuid5(_SERIAL_NAMESPACE, identity),
        metadata=BomMetaData(
            timestamp=created,
            component=root,
            tools=ToolRepository(
                components=[
                    Component(type=ComponentType.APPLICATION, name="lockd", version=__version__)
                ]
            ),
            lifecycles=[PredefinedLifecycle(LifecyclePhase.POST_BUILD)],
        ),
    )
    components = []
    info = snapshot.system_info
    os_id = "linux"
    if info is not None and isinstance(info.os_release, Available):
        os_id = info.os_release.value.get("ID", "linux") or "linux"
    if info is not None:
        components += _os_packages(info, os_id)
    for dist in snapshot.dists:
        components.append(
            Component(
                type=ComponentType.LIBRARY,
                name=dist.name,
                version=dist.version,
                bom_ref=f"pypi:{dist.canonical_name}@{dist.version}:{dist.location}",
                purl=PackageURL(type="pypi", name=dist.canonical_name, version=dist.version),
                properties=[
                    Property(name=f"lockd:{key}", value=value)
                    for key, value in (
                        ("location", dist.location),
                        ("installer", dist.installer),
                        ("record-sha256", dist.record_sha256),
                    )
                    if value
                ],
            )
        )
    for component in components:
        bom.components.add(component)
    if components:
        bom.register_dependency(root, components)
    return bom


def _os_packages(info: SystemInfo, os_id: str) -> list[Any]:
    """Debian and RPM packages as components, with purl-spec's deb and rpm package URLs."""
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    rows: list[tuple[str, str, str, str, dict[str, str]]] = []  # type, ref, name, version, quals
    if isinstance(info.dpkg, Available):
        for deb in info.dpkg.value:
            arch = {"arch": deb.architecture} if deb.architecture else {}
            rows.append(("deb", deb.name, deb.name.split(":")[0], deb.version, arch))
    if isinstance(info.rpm, Available):
        for rpm in info.rpm.value:
            epoch, _, version = rpm.version.rpartition(":")
            qualifiers = {"arch": rpm.architecture} if rpm.architecture else {}
            if epoch:
                qualifiers["epoch"] = epoch
            ref = f"{rpm.name}.{rpm.architecture}" if rpm.architecture else rpm.name
            rows.append(("rpm", ref, rpm.name, version, qualifiers))
    return [
        Component(
            type=ComponentType.OPERATING_SYSTEM
            if name in _OS_BASE_PACKAGES
            else ComponentType.LIBRARY,
            name=name,
            version=f"{quals['epoch']}:{version}" if "epoch" in quals else version,
            bom_ref=f"{kind}:{ref}@{version}",
            purl=PackageURL(
                type=kind, namespace=os_id, name=name, version=version, qualifiers=quals
            ),
        )
        for kind, ref, name, version, quals in rows
    ]

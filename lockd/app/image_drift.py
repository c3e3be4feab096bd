"""Drift of a shipped image: does ``registry/app:prod`` contain what the lockset says?

For one image (``drift --image REF``, or each tracked image under ``--all``):

1. read it without a runtime (``images.inspect_image``): the snapshot a venv
   probe would give, plus the image's config and layers;
2. pick the lockset (``--lockset``, else the image's ``dev.lockd.lockset``
   label, else the project's latest) and the target (``--target``, else the
   ``dev.lockd.target`` label, else the lockset's only target for the image's
   platform);
3. compare with the same code as a venv (``drift.compare_snapshot``), the
   baseline being this image repository's last clean snapshot for the target;
4. check the base: the image's first layers must be those of a base image
   recorded with the lockset, for the image's platform
   (``base-image-mismatch``).

The report is stored and chained like every drift report, with the image's
digest. An image that cannot be read fails ``drift --image`` (exit 3); under
``--all`` it becomes an error report, so one broken image never stops the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from ..drift import CheckError, DriftReport, Finding, compare_base_image, compare_snapshot
from ..errors import LockdError, NotFoundError, UsageError, excerpt
from ..images import (
    InspectRequest,
    RegistryOptions,
    ResolvedImage,
    VerifiedLayers,
    inspect_image,
    open_source,
)
from ..lockset import Lockset
from ..snapshot import Snapshot
from ..store import Store, TrackedImage
from ..targets import PLATFORMS, Target, parse_target_id
from ..urls import redact

LOCKSET_LABEL = "dev.lockd.lockset"
TARGET_LABEL = "dev.lockd.target"

Progress = Callable[[str], None]
PickLockset = Callable[[str | None], Lockset]  # the label's lockset id -> the lockset


@dataclass(frozen=True, slots=True)
class ImageCheck:
    reference: str
    target: str | None = None  # None: from the label, else the only one for the platform
    verified: VerifiedLayers | None = None  # layers whose diff_id was checked before


def check_image(
    store: Store,
    check: ImageCheck,
    pick: PickLockset,
    registry: RegistryOptions,
    progress: Progress | None = None,
) -> DriftReport:
    """Check one image against its lockset; the report is not yet recorded."""
    wanted = _platform_of(check.target)
    request = InspectRequest(check.reference, wanted, registry, check.verified)
    inspection = inspect_image(request, progress)
    snapshot = inspection.snapshot
    facts = snapshot.image
    if facts is None:  # pragma: no cover - inspect_image always sets it
        raise UsageError(f"{check.reference} was not read as an image.")
    lockset = pick(facts.labels.get(LOCKSET_LABEL))
    target = _target(lockset, check, facts.labels.get(TARGET_LABEL), facts.platform)
    lock = lockset.lock(target.id)
    if lock is None:  # _target only returns targets of the lockset
        raise UsageError(f"Lockset {lockset.hash[:12]} has no target {target.id}.")
    key = f"image:{facts.name}:{target.id}"
    baseline_doc = store.baseline_snapshot(lockset.project, key)
    baseline = Snapshot.from_dict(baseline_doc) if baseline_doc else None
    findings: list[Finding] = compare_snapshot(lock, target, snapshot, baseline=baseline)
    errors: list[CheckError] = []
    checks = [f"image:{check.reference}"]
    try:
        bases = _base_layers(lockset, facts.platform, registry)
        if bases:
            findings += compare_base_image(target.id, facts.diff_ids, bases)
            checks.append("base-image")
    except LockdError as err:
        errors.append(CheckError(target.id, "base-image", redact(err.render())))
    return DriftReport(
        project=lockset.project,
        lockset=lockset.hash,
        checked_at=_now(),
        findings=tuple(findings),
        errors=tuple(errors),
        checks=tuple(checks),
        snapshots={key: snapshot.to_dict()},
        image={
            "reference": check.reference,
            "digest": facts.digest or facts.config_digest,
            "platform": facts.platform,
            "target": target.id,
        },
    )


def failed_check(lockset: Lockset, check: ImageCheck, err: LockdError) -> DriftReport:
    """The report of an image that could not be read (a tracked image under ``--all``)."""
    return DriftReport(
        project=lockset.project,
        lockset=lockset.hash,
        checked_at=_now(),
        findings=(),
        errors=(CheckError(check.target, f"image:{check.reference}", redact(err.render())),),
        checks=(f"image:{check.reference}",),
        image={"reference": check.reference, "digest": None, "platform": None,
               "target": check.target},
    )  # fmt: skip


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _platform_of(target: str | None) -> str | None:
    return parse_target_id(target).platform.oci_platform if target else None


def _target(lockset: Lockset, check: ImageCheck, label: str | None, platform: str) -> Target:
    chosen = check.target or label
    if chosen:
        if chosen not in lockset.targets:
            source = "--target" if check.target else f"the image's label {TARGET_LABEL}"
            raise UsageError(
                f"{source} names {chosen}, which lockset {lockset.hash[:12]} of "
                f"{lockset.project} does not have.",
                hint="Its targets: " + ", ".join(lockset.targets) + ".",
            )
        return parse_target_id(chosen)
    os_arch = "/".join(platform.split("/")[:2])
    names = {p.name for p in PLATFORMS.values() if p.oci_platform == os_arch}
    fitting = [
        t
        for t in lockset.targets
        if (lock := lockset.lock(t)) is not None
        and not all(a.kind == "conda" for a in lock.artifacts)
        and parse_target_id(t).platform.name in names
    ]
    if len(fitting) != 1:
        raise UsageError(
            f"Which target of lockset {lockset.hash[:12]} does {check.reference} ({platform}) "
            f"ship? {'Several fit: ' + ', '.join(fitting) if fitting else 'None fits'}.",
            hint=f"Pass --target ID, or label the image {TARGET_LABEL}=ID "
            "(lockd dockerfile writes the label).",
        )
    return parse_target_id(fitting[0])


def _base_layers(
    lockset: Lockset, platform: str, registry: RegistryOptions
) -> Mapping[str, tuple[str, ...]]:
    """Each recorded base image's layers (diff_ids) for the image's platform."""
    found: dict[str, tuple[str, ...]] = {}
    for record in lockset.images:
        image = ResolvedImage.from_dict(record)
        try:
            digest = image.for_platform(platform).digest
        except LockdError:
            continue  # a base for another platform (a multi-stage build's builder, say)
        reference = f"{image.registry}/{image.repository}@{digest}"
        with open_source(reference, registry) as source:
            found[f"{image.reference}@{digest}"] = source.manifest(platform).diff_ids
    return found


@dataclass(frozen=True, slots=True)
class TrackRequest:
    database_url: str
    reference: str
    target: str
    project: str | None = None
    check: bool = True  # read the image's manifest for the target's platform first
    registry: RegistryOptions | None = None


def track_image(request: TrackRequest) -> tuple[bool, list[TrackedImage]]:
    """Track an image for ``drift --all``: (newly tracked, the project's tracked images)."""
    from ..images import parse_reference
    from .drift import default_project

    reference = _lasting(request.reference.strip())
    if not reference.startswith(("oci:", "docker-archive:")):
        parse_reference(reference.removeprefix("docker://"))
    target = parse_target_id(request.target)
    if request.check:
        # A tag that does not exist would fail every night instead of now.
        with open_source(reference, request.registry or RegistryOptions.from_env()) as source:
            source.manifest(target.platform.oci_platform)
    store = Store(request.database_url)
    try:
        project = request.project or default_project(store, only_one=True)
        lockset = store.latest(project)
        if lockset is None:
            raise UsageError(
                f"Project {project!r} has no lockset to check the image against.",
                hint="Run `lockd compile` first, or name the project with --project.",
            )
        if request.target not in lockset.targets:
            raise UsageError(
                f"The latest lockset of {project} has no target {request.target}.",
                hint="Its targets: " + ", ".join(lockset.targets) + ".",
            )
        added = store.track_image(project, reference, request.target)
        return added, store.tracked_images(project)
    finally:
        store.close()


def untrack_image(request: TrackRequest) -> list[TrackedImage]:
    """Stop tracking an image for a target; the project's tracked images that remain."""
    from .drift import default_project

    reference = _lasting(request.reference.strip())
    store = Store(request.database_url)
    try:
        project = request.project or default_project(store, only_one=True)
        if not store.untrack_image(project, reference, request.target):
            tracked = store.tracked_images(project)
            raise NotFoundError(
                f"{excerpt(reference)} is not tracked for {excerpt(request.target)} in "
                f"project {project}.",
                hint="Tracked there: "
                + (", ".join(f"{t.reference} ({t.target})" for t in tracked) or "nothing")
                + ".",
            )
        return store.tracked_images(project)
    finally:
        store.close()


def tracked(database_url: str, project: str | None) -> list[TrackedImage]:
    """Every tracked image (of one project, with ``project``)."""
    from .record import require_database

    require_database(database_url)
    store = Store(database_url)
    try:
        return store.tracked_images(project)
    finally:
        store.close()


def _lasting(reference: str) -> str:
    """A local image path made absolute: ``drift --all`` runs from elsewhere (cron)."""
    from ..images import local_path

    for transport in ("oci:", "docker-archive:"):
        if reference.startswith(transport):
            path, tag = local_path(reference.removeprefix(transport), transport.rstrip(":"))
            return f"{transport}{path.resolve()}" + (f":{tag}" if tag else "")
    return reference

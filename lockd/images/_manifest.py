"""Manifests and what lockd records about an image (pure).

A tag points either at an *index* (OCI image index or Docker manifest list),
which lists one manifest per platform, or at a single image manifest. lockd
records the digest the tag points at and the digest of every platform's
manifest, so that a target can be pinned to its own platform later.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lockd.errors import FormatError, RegistryError, UsageError, clipped, excerpt
from lockd.targets import Platform

from ._reference import DIGEST_RE, ImageRef

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
# All four, always: with only the single-manifest types a registry answers a
# multi-platform tag with one platform's child digest (or 404 for an OCI index).
ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
IMAGE_CONFIG_TYPES = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)

# Registries and Go spell architectures their own way; Platform.oci_platform uses these.
_ARCH_ALIASES = {"x86_64": "amd64", "aarch64": "arm64", "x86-64": "amd64"}


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of the exact bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class PlatformDigest:
    """One platform's manifest inside an image."""

    os: str
    architecture: str
    variant: str | None
    digest: str
    media_type: str

    @property
    def oci_platform(self) -> str:
        """``linux/arm64/v8`` or ``linux/amd64``."""
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``from_dict`` reads it back."""
        return {
            "os": self.os,
            "architecture": self.architecture,
            "variant": self.variant,
            "digest": self.digest,
            "media_type": self.media_type,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlatformDigest:
        """Read ``to_dict``'s output; ``FormatError`` on a wrong shape."""
        variant = data.get("variant")
        return cls(
            os=_text(data, "os"),
            architecture=_text(data, "architecture"),
            variant=variant if isinstance(variant, str) and variant else None,
            digest=_digest(data, "digest"),
            media_type=_text(data, "media_type"),
        )


@dataclass(frozen=True, slots=True)
class ResolvedImage:
    """A base image reference resolved to digests at one moment.

    ``index_digest`` is the digest the tag pointed at: the index of a
    multi-platform image, or the manifest itself for a single-platform one
    (then ``platforms`` holds that one manifest, platform read from its config).
    """

    reference: str  # as the user wrote it
    registry: str
    repository: str
    tag: str | None
    index_digest: str
    media_type: str
    platforms: tuple[PlatformDigest, ...]
    resolved_at: datetime

    @property
    def is_index(self) -> bool:
        """The tag points at an index (multi-platform), not at one manifest."""
        return self.media_type in INDEX_TYPES

    @property
    def pinned(self) -> str:
        """The reference with its digest: ``python:3.11-slim@sha256:…``."""
        ref = ImageRef(self.registry, self.repository, self.tag)
        return ref.with_digest(self.index_digest).familiar

    def for_platform(self, platform: Platform | str) -> PlatformDigest:
        """The manifest a target platform runs (``Platform`` or ``"linux/arm64"``).

        Architecture spellings are normalised (``aarch64`` = ``arm64``); without
        a variant in the request, the entry without one (or ``arm64/v8``, or the
        highest ``arm`` variant) wins, as container runtimes choose.
        """
        wanted = platform.oci_platform if isinstance(platform, Platform) else platform
        return choose_platform(self.platforms, wanted, self.pinned)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``from_dict`` reads it back."""
        return {
            "reference": self.reference,
            "registry": self.registry,
            "repository": self.repository,
            "tag": self.tag,
            "index_digest": self.index_digest,
            "media_type": self.media_type,
            "platforms": [p.to_dict() for p in self.platforms],
            "resolved_at": self.resolved_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResolvedImage:
        """Read ``to_dict``'s output; ``FormatError`` on a wrong shape."""
        platforms = data.get("platforms")
        if not isinstance(platforms, list) or not all(isinstance(p, dict) for p in platforms):
            raise FormatError("A resolved image record has no 'platforms' list.")
        try:
            resolved_at = datetime.fromisoformat(_text(data, "resolved_at"))
        except ValueError:
            raise FormatError(
                f"A resolved image record has a bad time {data.get('resolved_at')!r}."
            ) from None
        tag = data.get("tag")
        return cls(
            reference=_text(data, "reference"),
            registry=_text(data, "registry"),
            repository=_text(data, "repository"),
            tag=tag if isinstance(tag, str) else None,
            index_digest=_digest(data, "index_digest"),
            media_type=_text(data, "media_type"),
            platforms=tuple(PlatformDigest.from_dict(p) for p in platforms),
            resolved_at=resolved_at if resolved_at.tzinfo else resolved_at.replace(tzinfo=UTC),
        )


def choose_platform(
    platforms: tuple[PlatformDigest, ...], wanted: str, where: str
) -> PlatformDigest:
    """The entry of ``platforms`` for ``wanted`` (``linux/arm64``), as runtimes choose it."""
    candidates = _matching(platforms, wanted)
    if not candidates:
        offered = ", ".join(p.oci_platform for p in platforms) or "no platform"
        raise RegistryError(
            f"{where} has no {wanted} image; it offers {offered}.",
            hint="Choose a base image built for that platform, or drop the platform "
            "from the matrix.",
        )
    return max(candidates, key=_preference)


def check_single_platform(config: Mapping[str, Any], wanted: str | None, where: str) -> None:
    """Refuse a single-manifest image whose config (os, architecture, variant) is not
    ``wanted``'s platform: there is no other platform to choose."""
    if not wanted:
        return
    arch, variant = str(config.get("architecture") or "unknown"), config.get("variant")
    have = PlatformDigest(
        str(config.get("os") or "unknown"),
        _ARCH_ALIASES.get(arch, arch),
        str(variant) if variant else None,
        digest="",
        media_type="",
    )
    # A config without a variant does not contradict a variant asked for.
    asked = wanted if have.variant else "/".join(wanted.strip().split("/")[:2])
    if not _matching((have,), asked):
        raise RegistryError(
            f"{where} is a single-platform {clipped(have.oci_platform, 60)} image, not "
            f"{wanted.strip()}.",
            hint=f"Drop --platform, or name an image built for {wanted.strip()} (or a "
            "multi-platform image that offers it).",
        )


def check_platform(wanted: str) -> list[str]:
    """The parts of an ``os/arch[/variant]`` the user wrote (a usage error otherwise)."""
    parts = wanted.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(
            f"{clipped(wanted, 60)!r} is not a platform.",
            hint="Write it as os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8.",
        )
    return parts


def _matching(platforms: tuple[PlatformDigest, ...], wanted: str) -> list[PlatformDigest]:
    parts = check_platform(wanted)
    os_, arch = parts[0], _ARCH_ALIASES.get(parts[1], parts[1])
    variant = parts[2] if len(parts) == 3 else None
    candidates = [p for p in platforms if (p.os, p.architecture) == (os_, arch)]
    if variant is not None:
        candidates = [p for p in candidates if _variant(p) == _variant_of(arch, variant)]
    return candidates


def select_platform(
    platforms: tuple[PlatformDigest, ...], wanted: str | None, where: str
) -> PlatformDigest:
    """``wanted``'s entry; without one, the only platform, else this machine's."""
    if wanted:
        return choose_platform(platforms, wanted, where)
    if len(platforms) == 1:
        return platforms[0]
    from lockd.targets import host_platform

    host = host_platform()
    if host is None or not platforms:
        offered = ", ".join(p.oci_platform for p in platforms) or "no platform"
        raise RegistryError(
            f"{where} is a multi-platform image ({offered}); which one?",
            hint="Pass --platform OS/ARCH.",
        )
    return choose_platform(platforms, host.oci_platform, where)


def parse_manifest(body: bytes, content_type: str | None, where: str) -> tuple[str, dict[str, Any]]:
    """The media type and JSON document of a manifest body."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise RegistryError(f"{where} answered with a manifest that is not a JSON object.")
    media_type = document.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        # Old OCI documents omit mediaType; the header or the shape tells.
        header = (content_type or "").split(";", 1)[0].strip()
        if header in INDEX_TYPES | MANIFEST_TYPES:
            media_type = header
        else:
            media_type = OCI_INDEX if "manifests" in document else OCI_MANIFEST
    if media_type not in INDEX_TYPES | MANIFEST_TYPES:
        raise RegistryError(
            f"{where} answered with a manifest of type {excerpt(media_type)}, which lockd "
            "cannot read.",
            hint="lockd reads OCI and Docker v2 manifests and indexes.",
        )
    return media_type, document


def index_platforms(document: Mapping[str, Any]) -> tuple[PlatformDigest, ...]:
    """The per-platform manifests of an index, attestation entries left out."""
    found: list[PlatformDigest] = []
    for entry in document.get("manifests") or []:
        if not isinstance(entry, dict):
            continue
        platform = entry.get("platform")
        digest = entry.get("digest")
        annotations = entry.get("annotations") or {}
        if not isinstance(platform, dict) or not isinstance(digest, str):
            continue
        os_, arch = platform.get("os"), platform.get("architecture")
        if not isinstance(os_, str) or not isinstance(arch, str):
            continue
        # BuildKit's provenance/SBOM attestations ride along as unknown/unknown.
        if (os_, arch) == ("unknown", "unknown") or (
            isinstance(annotations, dict)
            and annotations.get("vnd.docker.reference.type") == "attestation-manifest"
        ):
            continue
        found.append(_platform_digest(platform, digest, str(entry.get("mediaType") or "")))
    return tuple(found)


def config_platform(
    config: Mapping[str, Any], digest: str, media_type: str
) -> tuple[PlatformDigest, ...]:
    """The platform of a single-manifest image, read from its image config."""
    if not isinstance(config.get("os"), str) or not isinstance(config.get("architecture"), str):
        return ()
    return (_platform_digest(config, digest, media_type),)


def _platform_digest(platform: Mapping[str, Any], digest: str, media_type: str) -> PlatformDigest:
    arch = str(platform["architecture"])
    variant = platform.get("variant")
    return PlatformDigest(
        os=str(platform["os"]),
        architecture=_ARCH_ALIASES.get(arch, arch),
        variant=variant if isinstance(variant, str) and variant else None,
        digest=digest,
        media_type=media_type,
    )


def _variant_of(arch: str, variant: str | None) -> str | None:
    # arm64 images usually omit "v8"; treat both spellings as one.
    return None if arch == "arm64" and variant == "v8" else variant


def _variant(entry: PlatformDigest) -> str | None:
    return _variant_of(entry.architecture, entry.variant)


def _preference(entry: PlatformDigest) -> tuple[bool, str]:
    return _variant(entry) is None, entry.variant or ""


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise FormatError(f"A resolved image record has no text field {key!r}.")
    return value


def _digest(data: Mapping[str, Any], key: str) -> str:
    value = _text(data, key)
    if not DIGEST_RE.fullmatch(value):
        raise FormatError(f"A resolved image record has a bad digest {key}={value!r}.")
    return value

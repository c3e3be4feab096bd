"""Image references: ``[registry/]repository[:tag][@sha256:digest]`` (pure).

The grammar follows distribution's ``reference`` package, and Docker's
normalisation: a first component is a registry when it holds a ``.`` or a
``:``, is ``localhost`` or has capitals; otherwise the image lives on Docker
Hub, whose one-component names get ``library/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from lockd.errors import UsageError, excerpt

DOCKER_HUB = "docker.io"
# Every spelling of Docker Hub ends up as DOCKER_HUB; its API lives on another host.
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_HUB_API_HOST = "registry-1.docker.io"

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN = re.compile(
    r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")
MAX_REFERENCE = 512  # a registry host (253), a repository (255), a tag or digest
_HINT = (
    "Write it as [registry/]name[:tag][@sha256:<64 hex digits>], "
    "for example python:3.11-slim or nvcr.io/nvidia/pytorch:24.05-py3."
)


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A parsed, normalised image reference."""

    registry: str  # "docker.io", "ghcr.io", "127.0.0.1:5000"
    repository: str  # "library/python", "nvidia/cuda"
    tag: str | None  # None only when the reference names a digest alone
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host that serves ``/v2/`` for this registry."""
        return _HUB_API_HOST if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        """The repository as Docker shows it: ``python``, ``nvidia/cuda``, ``ghcr.io/o/i``."""
        if self.registry == DOCKER_HUB:
            return self.repository.removeprefix("library/")
        return f"{self.registry}/{self.repository}"

    @property
    def familiar(self) -> str:
        """The short form: ``python:3.11-slim``, ``ghcr.io/o/i@sha256:…``."""
        return self.name + self._suffix()

    def with_digest(self, digest: str) -> ImageRef:
        """The same reference pinned to ``digest`` (the tag is kept for readers)."""
        return replace(self, digest=digest)

    def _suffix(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        return tag + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}{self._suffix()}"


def parse_reference(text: str) -> ImageRef:
    """Parse and normalise an image reference; ``UsageError`` when it is malformed."""
    value = text.strip()
    if not value:
        raise UsageError("An empty image reference was given.", hint=_HINT)
    if value.startswith(("/", "./", "../", "~")):
        raise UsageError(
            f"{excerpt(value)} is a path, not an image reference.",
            hint=f"An OCI layout directory is oci:{value}; a docker save archive is "
            f"docker-archive:{value}.",
        )

    def bad(why: str) -> UsageError:
        return UsageError(f"{excerpt(value)} is not a valid image reference: {why}.", hint=_HINT)

    if len(value) > MAX_REFERENCE:
        raise bad(f"it is longer than {MAX_REFERENCE} characters")

    rest, at, digest = value.partition("@")
    if at and not DIGEST_RE.fullmatch(digest):
        raise bad("the digest must be sha256: followed by 64 lowercase hex digits")
    tag: str | None = None
    slash, colon = rest.rfind("/"), rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise bad(f"{excerpt(tag, 40)} is not a valid tag")

    registry, path = _split_registry(rest)
    if registry is None:
        raise bad(f"{excerpt(rest.partition('/')[0], 40)} is not a valid registry host")
    for component in path.split("/"):
        if not _COMPONENT.fullmatch(component):
            if component.lower() != component:
                raise bad("repository names must be lowercase")
            raise bad(f"{excerpt(component, 40)} is not a valid repository name component")
    if len(path) > 255:
        raise bad("the repository name is longer than 255 characters")
    if tag is None and not at:
        tag = "latest"  # as docker pull does
    return ImageRef(registry, path, tag, digest or None)


def _split_registry(name: str) -> tuple[str | None, str]:
    """``(registry, repository)``; registry ``None`` when the host part is malformed."""
    first, sep, remainder = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        host = first.rsplit(":", 1)[0] if not first.endswith("]") else first
        if (
            not _DOMAIN.fullmatch(first)
            or len(host) > 253
            or any(len(label) > 63 for label in host.split("."))
        ):  # DNS limits: longer names cannot be looked up
            return None, name
        registry, path = first.lower(), remainder
    else:
        registry, path = DOCKER_HUB, name
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    return registry, path

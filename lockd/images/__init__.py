"""Base images: tag -> digest against OCI registries, and Dockerfile pinning.

``RegistryClient`` speaks the OCI distribution API (``_client``);
``ResolvedImage`` is what lockd records (``_manifest``); ``parse_reference``
normalises names (``_reference``); ``parse_dockerfile`` and
``pin_dockerfile_text`` read and rewrite ``FROM`` lines (``_dockerfile``);
``read_dockerfile`` reads a file's ``FROM`` lines and ``pin_dockerfile`` is the
``lockd images pin`` use case (``_pin``).
"""

from ._auth import Credentials, CredentialStore
from ._client import RegistryClient, RegistryOptions, resolve_images
from ._dockerfile import FromInstruction, FromKind, parse_dockerfile, pin_dockerfile_text
from ._manifest import (
    ACCEPT,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    PlatformDigest,
    ResolvedImage,
)
from ._pin import DockerfilePins, PinnedFrom, PinStatus, pin_dockerfile, read_dockerfile
from ._reference import ImageRef, parse_reference

__all__ = [
    "ACCEPT",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "CredentialStore",
    "Credentials",
    "DockerfilePins",
    "FromInstruction",
    "FromKind",
    "ImageRef",
    "PinStatus",
    "PinnedFrom",
    "PlatformDigest",
    "RegistryClient",
    "RegistryOptions",
    "ResolvedImage",
    "parse_dockerfile",
    "parse_reference",
    "pin_dockerfile",
    "pin_dockerfile_text",
    "read_dockerfile",
    "resolve_images",
]

"""Base images: tag -> digest against OCI registries, and Dockerfile pinning.

``RegistryClient`` speaks the OCI distribution API (``_client``);
``ResolvedImage`` is what lockd records (``_manifest``); ``parse_reference``
normalises names (``_reference``); ``split_instructions`` reads a Dockerfile's
instructions as BuildKit does (``_dockerfile``); ``parse_dockerfile_stages``
adds ARG substitution, platform ARGs and stages, and ``parse_dockerfile`` /
``pin_dockerfile_text`` read and rewrite ``FROM`` lines (``_stages``);
``read_dockerfile`` reads a file's ``FROM`` lines and ``pin_dockerfile`` is the
``lockd images pin`` use case (``_pin``).

Reading what an image contains, without a runtime: ``open_source`` names a
registry image, an ``oci:`` layout or a ``docker-archive:`` file
(``_sources``), whose layer blobs stream through digest checks and
decompression (``_blobs``) into an in-memory root file system (``_rootfs``,
ELF dynamic sections read from the stream by ``_elf``); ``_facts`` turns it
into the ``Snapshot`` a venv probe yields, ``_sizes`` into a size report, and
``inspect_image`` is the ``lockd images inspect`` use case (``_inspect``).

The names are imported from their modules on first use: reading a Dockerfile's
``FROM`` lines (``lockd compile --check --dockerfile``) needs neither the
registry client nor httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..lazy import export

if TYPE_CHECKING:
    from ._auth import Credentials, CredentialStore
    from ._client import RegistryClient, RegistryOptions, resolve_images
    from ._dockerfile import (
        DockerfileText,
        Heredoc,
        Instruction,
        key_values,
        split_instructions,
        words,
    )
    from ._inspect import IMAGE_FORMAT, ImageInspection, InspectRequest, inspect_image
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
    from ._sizes import SizeFinding, SizeReport
    from ._sources import ImageManifest, ImageSource, local_path, open_source
    from ._stages import (
        BuildOptions,
        Dockerfile,
        FromInstruction,
        FromKind,
        Stage,
        parse_build_args,
        parse_dockerfile,
        parse_dockerfile_stages,
        pin_dockerfile_text,
        require_resolved,
    )
    from ._verified import VerifiedLayers

__all__ = [
    "ACCEPT",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "IMAGE_FORMAT",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "BuildOptions",
    "CredentialStore",
    "Credentials",
    "Dockerfile",
    "DockerfilePins",
    "DockerfileText",
    "FromInstruction",
    "FromKind",
    "Heredoc",
    "ImageInspection",
    "ImageManifest",
    "ImageRef",
    "ImageSource",
    "InspectRequest",
    "Instruction",
    "PinStatus",
    "PinnedFrom",
    "PlatformDigest",
    "RegistryClient",
    "RegistryOptions",
    "ResolvedImage",
    "SizeFinding",
    "SizeReport",
    "Stage",
    "VerifiedLayers",
    "inspect_image",
    "key_values",
    "local_path",
    "open_source",
    "parse_build_args",
    "parse_dockerfile",
    "parse_dockerfile_stages",
    "parse_reference",
    "pin_dockerfile",
    "pin_dockerfile_text",
    "read_dockerfile",
    "require_resolved",
    "resolve_images",
    "split_instructions",
    "words",
]

# name -> the private module that defines it
_MODULES = {
    "ACCEPT": "_manifest",
    "DOCKER_MANIFEST": "_manifest",
    "DOCKER_MANIFEST_LIST": "_manifest",
    "IMAGE_FORMAT": "_inspect",
    "OCI_INDEX": "_manifest",
    "OCI_MANIFEST": "_manifest",
    "BuildOptions": "_stages",
    "CredentialStore": "_auth",
    "Credentials": "_auth",
    "Dockerfile": "_stages",
    "DockerfilePins": "_pin",
    "DockerfileText": "_dockerfile",
    "FromInstruction": "_stages",
    "FromKind": "_stages",
    "Heredoc": "_dockerfile",
    "ImageInspection": "_inspect",
    "ImageManifest": "_sources",
    "ImageRef": "_reference",
    "ImageSource": "_sources",
    "InspectRequest": "_inspect",
    "Instruction": "_dockerfile",
    "PinStatus": "_pin",
    "PinnedFrom": "_pin",
    "PlatformDigest": "_manifest",
    "RegistryClient": "_client",
    "RegistryOptions": "_client",
    "ResolvedImage": "_manifest",
    "SizeFinding": "_sizes",
    "SizeReport": "_sizes",
    "Stage": "_stages",
    "VerifiedLayers": "_verified",
    "inspect_image": "_inspect",
    "key_values": "_dockerfile",
    "local_path": "_sources",
    "open_source": "_sources",
    "parse_build_args": "_stages",
    "parse_dockerfile": "_stages",
    "parse_dockerfile_stages": "_stages",
    "parse_reference": "_reference",
    "pin_dockerfile": "_pin",
    "pin_dockerfile_text": "_stages",
    "read_dockerfile": "_pin",
    "require_resolved": "_stages",
    "resolve_images": "_client",
    "split_instructions": "_dockerfile",
    "words": "_dockerfile",
}


def __getattr__(name: str) -> Any:
    return export(__name__, _MODULES, name, globals())

"""Where an image's manifest, config and layer blobs come from, like skopeo's transports.

* ``REGISTRY/REPO:TAG[@DIGEST]``: the OCI distribution API (``RegistryClient``:
  auth, retries, platform selection from an index);
* ``oci:DIR[:TAG]``: an OCI image layout directory (``index.json``, ``blobs/``);
* ``docker-archive:FILE[:REF]``: ``docker save`` / ``skopeo copy`` output
  (``manifest.json`` naming a config and uncompressed layer tars).

Each source yields one platform's :class:`ImageManifest` and the raw bytes of
its blobs; :class:`~lockd.images._blobs.LayerStream` checks them against their
digests. Nothing is unpacked here.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import stat
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO

from lockd.errors import ImageError, UsageError

from ._blobs import CHUNK
from ._client import RegistryClient, RegistryOptions
from ._manifest import (
    INDEX_TYPES,
    PlatformDigest,
    check_single_platform,
    index_platforms,
    parse_manifest,
    select_platform,
    sha256_digest,
)
from ._reference import DIGEST_RE, parse_reference

CONFIG_LIMIT = 16 << 20  # an image config is kilobytes; more is not a config
_REF_NAME = "org.opencontainers.image.ref.name"
_ARCHIVE_LAYER = "application/vnd.docker.image.rootfs.diff.tar"


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A blob as a manifest names it."""

    media_type: str
    digest: str | None  # None: the source has no digest for it (docker-archive layers)
    size: int | None
    path: str | None = None  # a docker-archive layer's member name


@dataclass(frozen=True, slots=True)
class ImageManifest:
    """One platform's image: where it came from, its config and its layers, lowest first."""

    reference: str  # as the user wrote it
    transport: str  # registry | oci | docker-archive
    name: str  # repository (registry), directory or file
    digest: str | None  # the manifest's digest (None: a docker-archive has no manifest)
    index_digest: str | None  # the index it was chosen from, if any
    config_digest: str
    config: Mapping[str, Any]
    layers: tuple[Descriptor, ...]

    @property
    def diff_ids(self) -> tuple[str, ...]:
        rootfs = self.config.get("rootfs")
        ids = rootfs.get("diff_ids") if isinstance(rootfs, Mapping) else None
        return tuple(str(i) for i in ids) if isinstance(ids, list) else ()

    @property
    def platform(self) -> str:
        """``linux/amd64`` (``linux/arm/v7`` with a variant), from the config."""
        parts = [str(self.config.get(k) or "") for k in ("os", "architecture", "variant")]
        return "/".join(p for p in parts if p) or "unknown"


class ImageSource(ABC):
    """One image, read-only. Use as a context manager."""

    @abstractmethod
    def manifest(self, platform: str | None) -> ImageManifest:
        """The manifest and config of ``platform``'s image (see ``select_platform``)."""

    @abstractmethod
    def blob(self, descriptor: Descriptor) -> AbstractContextManager[Iterator[bytes]]:
        """The raw bytes of one layer blob, as chunks (digests are checked by the reader)."""

    def blob_file(self, descriptor: Descriptor) -> Path | None:
        """The file that holds exactly this blob, where there is one (an OCI layout's)."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Release connections and files."""

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_source(reference: str, options: RegistryOptions | None = None) -> ImageSource:
    """The source a reference names: ``oci:``, ``docker-archive:`` or a registry."""
    text = reference.strip()
    if text.startswith("oci:"):
        return OciLayoutSource(reference, *local_path(text.removeprefix("oci:"), "oci"))
    if text.startswith("docker-archive:"):
        path, tag = local_path(text.removeprefix("docker-archive:"), "docker-archive")
        return DockerArchiveSource(reference, path, tag)
    if text.startswith("docker://"):
        text = text.removeprefix("docker://")
    parse_reference(text)  # a usage error before any connection
    return RegistrySource(text, RegistryClient(options))


def local_path(rest: str, transport: str) -> tuple[Path, str | None]:
    """``DIR:TAG`` or ``DIR`` after ``oci:`` (``FILE[:REF]`` after ``docker-archive:``).

    A colon inside an existing path is part of the path.
    """
    if not rest:
        raise UsageError(
            f"{transport}: needs a path.", hint=f"Write {transport}:PATH or {transport}:PATH:TAG."
        )
    if Path(rest).exists():
        return Path(rest), None
    for colon in (i for i, c in enumerate(rest) if c == ":"):
        if colon and Path(rest[:colon]).exists():  # the reference after it may hold colons
            return Path(rest[:colon]), rest[colon + 1 :] or None
    head, sep, tail = rest.rpartition(":")
    if sep and head and "/" not in tail:
        return Path(head), tail or None
    return Path(rest), None


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading if it is a regular file; ``OSError`` otherwise (a FIFO,
    a device or a directory in a layout is hostile: it is never waited on or read)."""
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, os.O_RDONLY | nonblocking | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if nonblocking:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _bounded(handle: BinaryIO, limit: int) -> Iterator[bytes]:
    while limit > 0 and (chunk := handle.read(min(CHUNK, limit))):
        limit -= len(chunk)
        yield chunk


def _config(data: bytes, where: str, what: str | None = None) -> dict[str, Any]:
    """A JSON object: the image config of ``where``, or the file ``what`` names."""
    try:
        config = json.loads(data)
    except (ValueError, RecursionError):
        config = None
    if not isinstance(config, dict):
        raise ImageError(f"{what or f'The image config of {where}'} is not a JSON object.")
    return config


def _layers(document: Mapping[str, Any], where: str) -> tuple[Descriptor, ...]:
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise ImageError(f"The manifest of {where} lists no layers.")
    found = []
    for layer in layers:
        digest = layer.get("digest") if isinstance(layer, dict) else None
        size = layer.get("size") if isinstance(layer, dict) else None
        if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
            raise ImageError(f"The manifest of {where} names a layer without a sha256 digest.")
        if not isinstance(size, int) or size < 0:
            raise ImageError(f"The manifest of {where} gives layer {digest} no size.")
        found.append(Descriptor(str(layer.get("mediaType") or ""), digest, size))
    return tuple(found)


def _config_descriptor(document: Mapping[str, Any], where: str) -> str:
    config = document.get("config")
    digest = config.get("digest") if isinstance(config, dict) else None
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        raise ImageError(f"The manifest of {where} names no config blob.")
    return digest


# -- registry ------------------------------------------------------------------------


class RegistrySource(ImageSource):
    def __init__(self, reference: str, client: RegistryClient) -> None:
        self._reference = reference
        self._ref = parse_reference(reference)
        self._client = client

    def manifest(self, platform: str | None) -> ImageManifest:
        index_digest, digest, document = self._client.image_manifest(self._ref, platform)
        where = f"{self._ref.registry}/{self._ref.repository}@{digest}"
        config_digest = _config_descriptor(document, where)
        config = _config(self._client.blob(self._ref, config_digest, limit=CONFIG_LIMIT), where)
        if index_digest is None:
            check_single_platform(config, platform, self._reference)
        return ImageManifest(
            reference=self._reference,
            transport="registry",
            name=f"{self._ref.registry}/{self._ref.repository}",
            digest=digest,
            index_digest=index_digest,
            config_digest=config_digest,
            config=config,
            layers=_layers(document, where),
        )

    def blob(self, descriptor: Descriptor) -> AbstractContextManager[Iterator[bytes]]:
        return self._client.blob_chunks(self._ref, descriptor.digest or "", descriptor.size or 0)

    def close(self) -> None:
        self._client.close()


# -- OCI image layout -----------------------------------------------------------------


class OciLayoutSource(ImageSource):
    def __init__(self, reference: str, directory: Path, tag: str | None) -> None:
        self._reference = reference
        self._dir = directory
        self._tag = tag
        layout = self._read_json(directory / "oci-layout", 1 << 16, "oci-layout")
        if layout.get("imageLayoutVersion") is None:
            raise ImageError(f"{directory} is not an OCI image layout (no imageLayoutVersion).")

    def close(self) -> None:
        pass  # every blob is opened and closed by its reader

    def _read_json(self, path: Path, limit: int, what: str) -> dict[str, Any]:
        try:
            with open_regular(path) as handle:
                data = handle.read(limit + 1)
        except OSError as exc:
            raise UsageError(
                f"Cannot read {what} of the OCI layout {self._dir}: {exc.strerror or exc}.",
                hint="oci:DIR must name a directory written by skopeo, buildah or umoci.",
            ) from None
        if len(data) > limit:
            raise ImageError(f"{path} is larger than {limit} bytes.")
        return _config(data, str(path), f"The {what} of the OCI layout {self._dir}")

    def _blob_path(self, digest: str) -> Path:
        if not DIGEST_RE.fullmatch(digest):
            raise ImageError(f"The OCI layout {self._dir} names a blob {digest!r}.")
        return self._dir / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def _verified(self, digest: str, limit: int) -> bytes:
        path = self._blob_path(digest)
        try:
            with open_regular(path) as handle:
                data = handle.read(limit + 1)
        except OSError as exc:
            raise ImageError(
                f"The OCI layout {self._dir} lacks blob {digest}: {exc.strerror or exc}."
            ) from None
        if len(data) > limit or sha256_digest(data) != digest:
            raise ImageError(
                f"The blob {digest} in {self._dir} does not match its digest.",
                hint="The layout was altered; copy the image again.",
            )
        return data

    def manifest(self, platform: str | None) -> ImageManifest:
        index = self._read_json(self._dir / "index.json", CONFIG_LIMIT, "index.json")
        entries = [e for e in index.get("manifests") or [] if isinstance(e, dict)]
        names = [str((e.get("annotations") or {}).get(_REF_NAME, "")) for e in entries]
        if self._tag is not None:
            chosen = [e for e, n in zip(entries, names, strict=True) if n == self._tag]
        else:
            chosen = entries
        if len(chosen) != 1:
            listed = ", ".join(n for n in names if n) or "none"
            what = f"no image tagged {self._tag!r}" if self._tag else f"{len(entries)} images"
            raise UsageError(
                f"The OCI layout {self._dir} holds {what} (tags: {listed}).",
                hint="Name one as oci:DIR:TAG.",
            )
        digest = str(chosen[0].get("digest", ""))
        index_digest: str | None = None
        media_type, document = parse_manifest(
            self._verified(digest, CONFIG_LIMIT), chosen[0].get("mediaType"), str(self._dir)
        )
        if media_type in INDEX_TYPES:
            index_digest = digest
            picked: PlatformDigest = select_platform(
                index_platforms(document), platform, str(self._dir)
            )
            digest = picked.digest
            _, document = parse_manifest(
                self._verified(digest, CONFIG_LIMIT), picked.media_type, str(self._dir)
            )
        where = f"{self._dir}@{digest}"
        config_digest = _config_descriptor(document, where)
        config = _config(self._verified(config_digest, CONFIG_LIMIT), where)
        if index_digest is None:
            check_single_platform(config, platform, self._reference)
        return ImageManifest(
            reference=self._reference,
            transport="oci",
            name=str(self._dir),
            digest=digest,
            index_digest=index_digest,
            config_digest=config_digest,
            config=config,
            layers=_layers(document, where),
        )

    def blob_file(self, descriptor: Descriptor) -> Path | None:
        return self._blob_path(descriptor.digest or "")

    @contextmanager
    def blob(self, descriptor: Descriptor) -> Iterator[Iterator[bytes]]:
        path = self._blob_path(descriptor.digest or "")
        try:
            handle = open_regular(path)
        except OSError as exc:
            raise ImageError(
                f"The OCI layout {self._dir} has no readable layer {descriptor.digest}: "
                f"{exc.strerror or exc}.",
                hint="Copy the image into the layout again.",
            ) from None
        with handle:
            # Past the size the manifest gives, the digest cannot match: read no further.
            yield _bounded(handle, (descriptor.size or 0) + 1)


# -- docker-archive --------------------------------------------------------------------


class DockerArchiveSource(ImageSource):
    """``docker save`` output: layers are tar members, checked against the config's diff_ids."""

    def __init__(self, reference: str, path: Path, tag: str | None) -> None:
        self._reference = reference
        self._path = path
        self._tag = tag
        try:
            self._tar = tarfile.open(path, mode="r:")  # noqa: SIM115 - closed by close()
        except (OSError, tarfile.TarError) as exc:
            raise UsageError(
                f"Cannot read the docker archive {path}: {exc}.",
                hint="docker-archive:FILE must name a tar written by docker save or skopeo.",
            ) from None

    def close(self) -> None:
        self._tar.close()

    def _member(self, name: str) -> IO[bytes]:
        """A regular member by name; symbolic links inside the archive are followed."""
        for _ in range(8):
            try:
                member = self._tar.getmember(posixpath.normpath(name))
            except KeyError:
                break
            if member.issym():
                name = posixpath.join(posixpath.dirname(member.name), member.linkname)
                continue
            handle = self._tar.extractfile(member) if member.isreg() else None
            if handle is not None:
                return handle
            break
        raise ImageError(f"The docker archive {self._path} lacks {name!r}.")

    def _read(self, name: str, limit: int) -> bytes:
        with self._member(name) as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise ImageError(f"{name} in {self._path} is larger than {limit} bytes.")
        return data

    def manifest(self, platform: str | None) -> ImageManifest:
        try:
            listing = json.loads(self._read("manifest.json", CONFIG_LIMIT))
        except ValueError:
            listing = None
        if not isinstance(listing, list) or not all(isinstance(e, dict) for e in listing):
            raise ImageError(f"The docker archive {self._path} has no readable manifest.json.")
        chosen = [
            e
            for e in listing
            if self._tag is None or self._tag in (e.get("RepoTags") or ()) or self._matches(e)
        ]
        if len(chosen) != 1:
            tags = ", ".join(t for e in listing for t in e.get("RepoTags") or ()) or "none"
            what = f"no image tagged {self._tag!r}" if self._tag else f"{len(listing)} images"
            raise UsageError(
                f"The docker archive {self._path} holds {what} (tags: {tags}).",
                hint="Name one as docker-archive:FILE:REPO:TAG.",
            )
        entry = chosen[0]
        config_name = str(entry.get("Config", ""))
        data = self._read(config_name, CONFIG_LIMIT)
        config_digest = sha256_digest(data)  # the image id
        named = posixpath.basename(config_name).removesuffix(".json")
        if DIGEST_RE.fullmatch(f"sha256:{named}") and f"sha256:{named}" != config_digest:
            raise ImageError(
                f"The config {config_name} in {self._path} does not match its digest.",
                hint="The archive was altered; save the image again.",
            )
        config = _config(data, str(self._path))
        check_single_platform(config, platform, self._reference)
        layers = entry.get("Layers")
        if not isinstance(layers, list) or not all(isinstance(n, str) for n in layers):
            raise ImageError(f"The docker archive {self._path} lists no layers.")
        return ImageManifest(
            reference=self._reference,
            transport="docker-archive",
            name=str(self._path),
            digest=None,
            index_digest=None,
            config_digest=config_digest,
            config=config,
            layers=tuple(Descriptor(_ARCHIVE_LAYER, None, None, name) for name in layers),
        )

    def _matches(self, entry: Mapping[str, Any]) -> bool:
        wanted = parse_reference(self._tag or "")
        for tag in entry.get("RepoTags") or ():
            try:
                if parse_reference(str(tag)) == wanted:
                    return True
            except UsageError:
                continue
        return False

    @contextmanager
    def blob(self, descriptor: Descriptor) -> Iterator[Iterator[bytes]]:
        with self._member(descriptor.path or "") as handle:
            yield iter(lambda: handle.read(CHUNK), b"")

"""The ``lockd images inspect`` use case: read an image once, snapshot it, size it.

::

    inspection = inspect_image(InspectRequest("registry.example/app:prod"))
    inspection.snapshot.dist("torch").version, inspection.size.wasted

The image is read through its source (registry, ``oci:``, ``docker-archive:``),
one layer after the other, each layer blob streamed once and checked against
its digest and ``diff_id``; nothing is unpacked to disk and nothing from the
image runs. The snapshot is the model a venv probe yields, so drift compares
both with the same code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lockd.errors import ImageError
from lockd.snapshot.model import Snapshot

from ._ahead import digests_ahead
from ._blobs import LayerStream
from ._client import RegistryOptions
from ._facts import classify, image_snapshot
from ._manifest import check_platform
from ._rootfs import Classifier, LayerStats, RootFs
from ._sizes import SizeReport, size_report
from ._sources import ImageManifest, ImageSource, open_source
from ._verified import VerifiedLayers

IMAGE_FORMAT = "lockd.image/1"
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class InspectRequest:
    reference: str
    platform: str | None = None  # os/arch; None: the only one, else this machine's
    registry: RegistryOptions | None = None
    verified: VerifiedLayers | None = None  # where checked (digest, diff_id) pairs are kept


@dataclass(frozen=True, slots=True)
class ImageInspection:
    snapshot: Snapshot
    size: SizeReport

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": IMAGE_FORMAT,
            "snapshot": self.snapshot.to_dict(),
            "size": self.size.to_dict(),
        }


def inspect_image(request: InspectRequest, progress: Progress | None = None) -> ImageInspection:
    """Read the image ``request`` names; its snapshot and size report."""
    if request.platform is not None:
        check_platform(request.platform)  # before anything is fetched
    with open_source(request.reference, request.registry) as source:
        manifest = source.manifest(request.platform)
        rootfs = read_rootfs(source, manifest, classify, progress, request.verified)
    snapshot = image_snapshot(manifest, rootfs)
    return ImageInspection(snapshot, size_report(rootfs, snapshot))


def read_rootfs(
    source: ImageSource,
    manifest: ImageManifest,
    want: Classifier,
    progress: Progress | None = None,
    verified: VerifiedLayers | None = None,
) -> RootFs:
    """Apply every layer in order, each blob read once and verified.

    A layer whose (digest, ``diff_id``) pair is in ``verified`` has only its blob's
    digest checked (which proves the ``diff_id``); the others are added to it.
    """
    diff_ids = manifest.diff_ids
    if len(diff_ids) != len(manifest.layers):
        raise ImageError(
            f"{manifest.reference} lists {len(manifest.layers)} layers but its config "
            f"{len(diff_ids)} diff_ids.",
            hint="The image is malformed; build and push it again.",
        )
    known = [
        verified is not None and verified.known(descriptor.digest, diff_id)
        for descriptor, diff_id in zip(manifest.layers, diff_ids, strict=True)
    ]
    # Blob files whose digest a child process checks ahead (see ``_ahead``): the layers
    # not known before, whose uncompressed bytes are hashed here.
    files = {
        index: (path, descriptor.size or 0)
        for index, descriptor in enumerate(manifest.layers)
        if not known[index] and descriptor.digest and (path := source.blob_file(descriptor))
    }
    rootfs = RootFs()
    with digests_ahead(list(files.values())) as ahead:
        ahead_of = {index: n for n, index in enumerate(files)} if ahead is not None else {}
        for index, (descriptor, diff_id) in enumerate(zip(manifest.layers, diff_ids, strict=True)):
            what = f"layer {index + 1}/{len(diff_ids)} of {manifest.reference}"
            if progress:
                progress(what)
            stats = LayerStats(index, descriptor.digest, diff_id, descriptor.media_type)
            rootfs.layers.append(stats)
            elsewhere = (
                functools.partial(ahead.result, ahead_of[index], what)
                if ahead is not None and index in ahead_of
                else None
            )
            with (
                source.blob(descriptor) as chunks,
                LayerStream(
                    chunks,
                    descriptor.digest,
                    None if known[index] else diff_id,
                    what,
                    digest_elsewhere=elsewhere,
                ) as stream,
            ):
                rootfs.apply(stream, stats, want)
            if verified is not None and not known[index] and elsewhere is None:
                verified.remember(descriptor.digest, diff_id)  # both hashed over these bytes
            stats.compression = stream.compression
            stats.compressed_size = stream.compressed_size
            stats.size = stream.size
    return rootfs

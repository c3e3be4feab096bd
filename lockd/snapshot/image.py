"""What only an image's snapshot has: where the image came from, its config, its layers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lockd.fields import Fields


@dataclass(frozen=True, slots=True)
class ImageLayer:
    """One layer of an image, its sizes and the instruction that made it (config history)."""

    digest: str | None  # of the blob as stored (None: a docker-archive layer)
    diff_id: str | None  # of the uncompressed tar
    media_type: str
    compression: str  # gzip | zstd | none (sniffed, not taken from the media type)
    compressed_size: int
    size: int
    created_by: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "diff_id": self.diff_id,
            "media_type": self.media_type,
            "compression": self.compression,
            "compressed_size": self.compressed_size,
            "size": self.size,
            "created_by": self.created_by,
        }

    @classmethod
    def read(cls, fields: Fields) -> ImageLayer:
        return cls(
            digest=fields.optional_text("digest"),
            diff_id=fields.optional_text("diff_id"),
            media_type=fields.text("media_type"),
            compression=fields.text("compression"),
            compressed_size=fields.integer("compressed_size"),
            size=fields.integer("size"),
            created_by=fields.optional_text("created_by"),
        )


@dataclass(frozen=True, slots=True)
class PythonEnvironment:
    """A Python environment found in an image; the snapshot describes the primary one."""

    prefix: str
    executable: str | None
    version: str
    site_packages: tuple[str, ...]
    dists: tuple[str, ...]  # "name==version"
    primary: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "executable": self.executable,
            "version": self.version,
            "site_packages": list(self.site_packages),
            "dists": list(self.dists),
            "primary": self.primary,
        }

    @classmethod
    def read(cls, fields: Fields) -> PythonEnvironment:
        return cls(
            prefix=fields.text("prefix"),
            executable=fields.optional_text("executable"),
            version=fields.text("version"),
            site_packages=fields.texts("site_packages"),
            dists=fields.texts("dists"),
            primary=fields.flag("primary"),
        )


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What only an image has: where it came from, its config and its layers.

    ``env`` values that look like secrets (names with TOKEN, SECRET, PASSWORD,
    KEY, …) and credentials in URLs are redacted before they get here.
    """

    reference: str
    transport: str  # registry | oci | docker-archive
    name: str
    digest: str | None  # the manifest's (None for a docker-archive)
    index_digest: str | None
    config_digest: str
    platform: str  # linux/amd64
    created: str | None
    user: str | None
    env: tuple[str, ...]  # "KEY=value"
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    working_dir: str | None
    labels: Mapping[str, str]
    layers: tuple[ImageLayer, ...]
    environments: tuple[PythonEnvironment, ...]
    skipped: Mapping[str, int]  # layer entries not applied (outside the root, devices, …)
    # CUDA and cuDNN libraries present: "libcudnn" -> ("/usr/lib/…/libcudnn.so.9", …)
    cuda_libraries: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return tuple(layer.diff_id or "" for layer in self.layers)

    @property
    def env_map(self) -> dict[str, str]:
        return dict(item.partition("=")[::2] for item in self.env)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "transport": self.transport,
            "name": self.name,
            "digest": self.digest,
            "index_digest": self.index_digest,
            "config_digest": self.config_digest,
            "platform": self.platform,
            "created": self.created,
            "user": self.user,
            "env": list(self.env),
            "entrypoint": list(self.entrypoint) if self.entrypoint is not None else None,
            "cmd": list(self.cmd) if self.cmd is not None else None,
            "working_dir": self.working_dir,
            "labels": dict(self.labels),
            "layers": [layer.to_dict() for layer in self.layers],
            "environments": [e.to_dict() for e in self.environments],
            "skipped": dict(self.skipped),
            "cuda_libraries": {k: list(v) for k, v in self.cuda_libraries.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageFacts:
        return cls.read(Fields(data, "image"))

    @classmethod
    def read(cls, fields: Fields) -> ImageFacts:
        """From an untrusted document: every field checked (``FormatError``)."""
        return cls(
            reference=fields.text("reference"),
            transport=fields.text("transport"),
            name=fields.text("name"),
            digest=fields.optional_text("digest"),
            index_digest=fields.optional_text("index_digest"),
            config_digest=fields.text("config_digest"),
            platform=fields.text("platform"),
            created=fields.optional_text("created"),
            user=fields.optional_text("user"),
            env=fields.texts("env"),
            entrypoint=fields.optional_texts("entrypoint"),
            cmd=fields.optional_texts("cmd"),
            working_dir=fields.optional_text("working_dir"),
            labels=fields.text_map("labels"),
            layers=tuple(ImageLayer.read(layer) for layer in fields.objects("layers")),
            environments=tuple(PythonEnvironment.read(e) for e in fields.objects("environments")),
            skipped=fields.integer_map("skipped"),
            cuda_libraries=fields.texts_map("cuda_libraries", required=False),
        )

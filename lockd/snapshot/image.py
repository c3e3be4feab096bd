"""What only an image's snapshot has: where the image came from, its config, its layers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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
    def from_dict(cls, data: Mapping[str, Any]) -> ImageLayer:
        return cls(
            digest=_opt_str(data.get("digest")),
            diff_id=_opt_str(data.get("diff_id")),
            media_type=str(data["media_type"]),
            compression=str(data["compression"]),
            compressed_size=int(data["compressed_size"]),
            size=int(data["size"]),
            created_by=_opt_str(data.get("created_by")),
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
    def from_dict(cls, data: Mapping[str, Any]) -> PythonEnvironment:
        return cls(
            prefix=str(data["prefix"]),
            executable=_opt_str(data.get("executable")),
            version=str(data["version"]),
            site_packages=tuple(str(p) for p in data["site_packages"]),
            dists=tuple(str(d) for d in data["dists"]),
            primary=bool(data["primary"]),
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
        def words(value: Any) -> tuple[str, ...] | None:
            return tuple(str(v) for v in value) if value is not None else None

        return cls(
            reference=str(data["reference"]),
            transport=str(data["transport"]),
            name=str(data["name"]),
            digest=_opt_str(data.get("digest")),
            index_digest=_opt_str(data.get("index_digest")),
            config_digest=str(data["config_digest"]),
            platform=str(data["platform"]),
            created=_opt_str(data.get("created")),
            user=_opt_str(data.get("user")),
            env=tuple(str(e) for e in data["env"]),
            entrypoint=words(data.get("entrypoint")),
            cmd=words(data.get("cmd")),
            working_dir=_opt_str(data.get("working_dir")),
            labels={str(k): str(v) for k, v in data["labels"].items()},
            layers=tuple(ImageLayer.from_dict(layer) for layer in data["layers"]),
            environments=tuple(PythonEnvironment.from_dict(e) for e in data["environments"]),
            skipped={str(k): int(v) for k, v in data["skipped"].items()},
            cuda_libraries={
                str(k): tuple(str(p) for p in v)
                for k, v in (data.get("cuda_libraries") or {}).items()
            },
        )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)

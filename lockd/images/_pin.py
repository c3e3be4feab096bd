"""``lockd images pin``: resolve a Dockerfile's base images and pin them, atomically."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from lockd.errors import UsageError

from ._manifest import ResolvedImage
from ._stages import (
    BuildOptions,
    FromInstruction,
    FromKind,
    parse_dockerfile,
    pin_dockerfile_text,
    unresolved_fix,
)


class PinStatus(StrEnum):
    """What pinning does to one ``FROM``."""

    PINNED = "pinned"  # a digest is added (or would be, without --write)
    ALREADY_PINNED = "already-pinned"  # names a digest already; checked to exist
    NOT_PINNED = "not-pinned"  # assembled from several ARGs, or unresolvable: a person must act
    STAGE = "stage"
    SCRATCH = "scratch"


@dataclass(frozen=True, slots=True)
class PinnedFrom:
    """One ``FROM`` and what its reference resolved to."""

    instruction: FromInstruction
    status: PinStatus
    image: ResolvedImage | None  # None for stages, scratch and unresolvable references

    @property
    def pinned_reference(self) -> str | None:
        """``python:3.11-slim@sha256:…`` (the reference as written, with the digest).

        ``None`` when the file does not, or cannot, carry that digest.
        """
        if self.image is None or self.status is PinStatus.NOT_PINNED:
            return None
        if self.instruction.is_pinned:
            return self.instruction.reference
        return f"{self.instruction.reference}@{self.image.index_digest}"

    @property
    def reason(self) -> str | None:
        """Why a ``FROM`` is not pinned; ``None`` when it is (or needs no digest)."""
        return self.instruction.unpinnable if self.status is PinStatus.NOT_PINNED else None

    @property
    def fix(self) -> str | None:
        """What a person does about it."""
        if self.status is not PinStatus.NOT_PINNED:
            return None
        if self.instruction.kind is FromKind.UNRESOLVED:
            return unresolved_fix(self.instruction)
        return (
            "move the whole reference into one ARG default "
            f"(ARG BASE_IMAGE={self.instruction.reference}, then FROM ${{BASE_IMAGE}}), "
            "which lockd pins"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``lockd images pin --format json``)."""
        entry = self.instruction
        return {
            "line": entry.line,
            "image": entry.image,
            "reference": entry.reference,
            "kind": str(entry.kind),
            "stage": entry.stage,
            "platform": entry.platform,
            "status": str(self.status),
            "reason": self.reason,
            "fix": self.fix,
            "pinned_reference": self.pinned_reference,
            "resolved": self.image.to_dict() if self.image else None,
        }


@dataclass(frozen=True, slots=True)
class DockerfilePins:
    """The outcome of pinning one Dockerfile."""

    path: Path
    entries: tuple[PinnedFrom, ...]
    text: str  # the pinned text; equal to the file's when nothing changes
    changed: bool
    written: bool

    @property
    def not_pinned(self) -> tuple[PinnedFrom, ...]:
        """The ``FROM``s a person has to pin (``lockd images pin`` exits 1 for them)."""
        return tuple(e for e in self.entries if e.status is PinStatus.NOT_PINNED)

    @property
    def images(self) -> tuple[ResolvedImage, ...]:
        """Each resolved base image once, in file order."""
        seen = {e.image.reference: e.image for e in self.entries if e.image is not None}
        return tuple(seen.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``lockd images pin --format json``)."""
        return {
            "dockerfile": str(self.path),
            "changed": self.changed,
            "written": self.written,
            "from": [entry.to_dict() for entry in self.entries],
        }


def read_dockerfile(
    path: Path, options: BuildOptions | None = None, *, root: Path | None = None
) -> tuple[str, tuple[FromInstruction, ...]]:
    """The text of a Dockerfile and its ``FROM`` instructions; ``UsageError`` if unreadable.

    ``FROM``s whose reference cannot be formed come back ``UNRESOLVED``
    (``require_resolved`` turns them into an error where every image is needed).
    A Dockerfile named by the project's configuration has a ``root`` it must lie in
    (the configuration may come from a pull request); one typed on the command line
    may lie anywhere. Either way only a bounded regular file is read.

    The text is decoded with ``surrogateescape``: bytes that are not UTF-8
    survive the round trip (``text.encode("utf-8", "surrogateescape")``) unchanged.
    """
    from lockd.inputs.files import read_lossless_text

    text = read_lossless_text(path, root, kind="The Dockerfile")
    instructions = parse_dockerfile(text, options=options, source=str(path))
    if not instructions:
        raise UsageError(f"{path} has no FROM instruction.", hint="Is it a Dockerfile?")
    return text, instructions


def pin_dockerfile(
    path: Path,
    resolve: Callable[[str], ResolvedImage],
    *,
    write: bool = False,
    options: BuildOptions | None = None,
) -> DockerfilePins:
    """Resolve every base image of ``path`` with ``resolve``; with ``write``, pin the file.

    Only the digests are inserted; every other byte is kept. The file is
    replaced atomically (a temporary file in the same directory, then
    ``os.replace``), so a reader never sees half a Dockerfile.
    """
    text, instructions = read_dockerfile(path, options)
    resolved: dict[str, ResolvedImage] = {}
    for instruction in instructions:
        if instruction.kind is FromKind.IMAGE and instruction.reference not in resolved:
            resolved[instruction.reference] = resolve(instruction.reference)
    pinned = pin_dockerfile_text(
        text,
        {ref: image.index_digest for ref, image in resolved.items()},
        options=options,
    )
    entries = tuple(
        PinnedFrom(i, _status(i), resolved.get(i.reference) if i.kind is FromKind.IMAGE else None)
        for i in instructions
    )
    changed = pinned != text
    if write and changed:
        _replace(path, pinned.encode("utf-8", "surrogateescape"))
    return DockerfilePins(path, entries, pinned, changed, write and changed)


def _status(instruction: FromInstruction) -> PinStatus:
    if instruction.kind is FromKind.STAGE:
        return PinStatus.STAGE
    if instruction.kind is FromKind.SCRATCH:
        return PinStatus.SCRATCH
    if instruction.is_pinned:
        return PinStatus.ALREADY_PINNED
    return PinStatus.PINNED if instruction.insert_at is not None else PinStatus.NOT_PINNED


def _replace(path: Path, data: bytes) -> None:
    target = path.resolve()  # write through a symlink, keeping the link
    mode = stat.S_IMODE(target.stat().st_mode)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".lockd")
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.chmod(mode)
        temporary.replace(target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise UsageError(
            f"Cannot write the Dockerfile {path}: {exc.strerror or exc}.",
            hint="Check that its directory is writable.",
        ) from None

"""Base images: tags against the digests recorded with the lockset, images against their bases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .report import Finding


def compare_image(
    reference: str, recorded: str, current: str | None, target: str | None = None
) -> list[Finding]:
    """A base image tag that moved to other content or disappeared."""
    if current is None:
        return [
            Finding(
                "image-gone", target, reference, recorded, None, detail="the tag no longer resolves"
            )
        ]
    if current != recorded:
        return [
            Finding(
                "image-moved",
                target,
                reference,
                recorded,
                current,
                detail="the tag points at new content",
            )
        ]
    return []


def compare_base_image(
    target: str, diff_ids: Sequence[str], bases: Mapping[str, Sequence[str]]
) -> list[Finding]:
    """An image not built on any base image recorded with its lockset.

    ``diff_ids`` are the image's layers (its config's ``rootfs.diff_ids``);
    ``bases`` maps each recorded base (``python:3.11-slim@sha256:…``, the
    platform's manifest digest) to its own ``diff_ids``. An image built ``FROM``
    a base starts with the base's layers; one that starts with none of them was
    built on something else (a moved tag, a local base, another Dockerfile).
    """
    if not bases:
        return []
    for layers in bases.values():
        if layers and tuple(diff_ids[: len(layers)]) == tuple(layers):
            return []
    best = max(bases, key=lambda ref: _common_prefix(diff_ids, bases[ref]))
    shared = _common_prefix(diff_ids, bases[best])
    return [
        Finding(
            "base-image-mismatch",
            target,
            None,
            " or ".join(sorted(bases)),
            f"{shared} of {len(bases[best])} base layers",
            detail=f"the image's first layers are not those of {best}"
            + (f" (only the first {shared} match)" if shared else ""),
        )
    ]


def _common_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count

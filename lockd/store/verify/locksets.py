"""The lockset chain: each lockset row, its locks, artifacts and images against its document."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from ...lockset import LOCKSET_FORMAT
from .chains import parse_record, short, show, utc
from .dependencies import dependencies_difference
from .records import (
    ARTIFACT_FIELDS,
    FIELD_SEP,
    IMAGE_FIELDS,
    ImageRecord,
    LockFileRecord,
    LockRecord,
    LocksetRecord,
)

_artifact_fields = itemgetter(*ARTIFACT_FIELDS)


def lockset_difference(record: LocksetRecord) -> str:
    """Why the row, its locks or artifacts contradict the document; '' when they agree."""
    data, why = parse_record(record, LOCKSET_FORMAT)
    if data is None or why:
        return why
    try:
        expected = _lockset_columns(data)
    except (KeyError, TypeError, AttributeError):
        return "its document lacks fields every lockset has"
    for name, value in expected.items():
        if record.columns.get(name) != value:
            return (
                f"column {name} is {show(record.columns.get(name))} in the locksets table, "
                f"{show(value)} in the document"
            )
    return (
        _locks_difference(record.locks, data["locks"])
        or _images_difference(record.images, data.get("images", []))
        or _lock_files_difference(record.lock_files, data["locks"])
    )


def _lockset_columns(data: Mapping[str, Any]) -> dict[str, Any]:
    prov = data["provenance"]
    return {
        "input_key": data["input_key"],
        "resolver": data["resolver"]["name"],
        "resolver_version": data["resolver"]["version"],
        "cutoff": data["cutoff"],
        "created_at": utc(prov["created_at"]),
        "user": prov["user"],
        "host": prov["host"],
        "git_commit": prov.get("git_commit"),
        "status": "partial" if data["failures"] else "complete",
        "targets": data["targets"],
        "inputs": data["inputs"],
        "indexes": data["indexes"],
        "failures": data["failures"],
    }


def _locks_difference(rows: Sequence[LockRecord], locks: Sequence[Mapping[str, Any]]) -> str:
    by_target = {row.target: row for row in rows}
    documented = {lock["target"] for lock in locks}
    for target in sorted(set(by_target) - documented):
        return f"locks row {by_target[target].id} for target {target} is not in the document"
    for lock in locks:
        row = by_target.get(lock["target"])
        if row is None:
            return f"the lock of target {lock['target']} is missing from the locks table"
        if row.flavour != lock.get("flavour"):
            return (
                f"target {row.target}: flavour {show(row.flavour)} in the locks table, "
                f"{show(lock.get('flavour'))} in the document"
            )
        if dict(row.files) != lock.get("files", {}):
            return f"target {row.target}: the lock file hashes differ from the document"
        detail = _artifacts_difference(row, lock["artifacts"]) or dependencies_difference(
            row, lock.get("graph")
        )
        if detail:
            return f"target {row.target}: {detail}"
    return ""


def _artifacts_difference(row: LockRecord, artifacts: Sequence[Mapping[str, Any]]) -> str:
    # Fast path: the same multiset of rows, compared as text without the row ids.
    try:
        documented = sorted(FIELD_SEP.join(_artifact_fields(a)) for a in artifacts)
    except (KeyError, TypeError):  # a field missing or not text: compare field by field
        documented = []
    if documented == sorted(line.partition(FIELD_SEP)[2] for line in row.artifact_lines):
        return ""
    stored = {(a.name, a.filename): a for a in row.artifacts()}
    for artifact in artifacts:
        key = (artifact["name"], artifact["filename"])
        found = stored.pop(key, None)
        if found is None:
            return (
                f"artifact {artifact['name']} {artifact['filename']} is missing from the "
                "artifacts table"
            )
        for name in ARTIFACT_FIELDS:
            if getattr(found, name) != artifact.get(name, "wheel" if name == "kind" else None):
                return (
                    f"artifact {found.name} {found.version} ({found.filename}, row {found.id}): "
                    f"{name} is {show(getattr(found, name))} in the artifacts table, "
                    f"{show(artifact.get(name))} in the document"
                )
    for extra in stored.values():
        return f"artifact row {extra.id} ({extra.name} {extra.filename}) is not in the document"
    return "its artifact rows differ from the document (duplicated or unreadable rows)"


def _images_difference(rows: Sequence[ImageRecord], images: Sequence[Mapping[str, Any]]) -> str:
    if len(rows) != len(images):
        return f"{len(rows)} image rows for the {len(images)} base images of the document"
    for row, image in zip(rows, images, strict=True):  # both in recording order
        for name in IMAGE_FIELDS:
            value = image.get(name)
            if name == "resolved_at" and value is not None:
                value = utc(value)
            if row.columns.get(name) != value:
                return (
                    f"image {image.get('reference')} (row {row.id}): {name} is "
                    f"{show(row.columns.get(name))} in the images table, {show(value)} in the "
                    "document"
                )
    return ""


def _lock_files_difference(
    rows: Sequence[LockFileRecord], locks: Sequence[Mapping[str, Any]]
) -> str:
    """The stored lock files (if the lockset's were stored) against the sha256 of each file
    the document lists: an edited content, column or name, or a file gone."""
    if not rows:
        return ""  # recorded without its files (the server then has none to hand out)
    listed = {name: sha for lock in locks for name, sha in lock.get("files", {}).items()}
    for row in rows:
        if row.name not in listed:
            return f"the lock_files table holds {row.name!r}, a file it does not list"
        if row.sha256 != listed[row.name]:
            return (
                f"lock file {row.name}: sha256 {short(row.sha256)} in the lock_files table, "
                f"{short(listed[row.name])} in the document"
            )
        if row.content_sha256 != listed[row.name]:
            return (
                f"lock file {row.name}: its stored content hashes to "
                f"{short(row.content_sha256)}, the document records {short(listed[row.name])}"
            )
    for name in sorted(set(listed) - {row.name for row in rows}):
        return f"lock file {name} is missing from the lock_files table"
    return ""

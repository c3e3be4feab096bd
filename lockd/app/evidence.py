"""Reading what a project directory keeps about its records, for ``lockd audit verify``.

``locks/lockd.json`` (the ``out`` directory of ``lockd.toml``) names the
lockset it was written from and its parent; its versions in git name earlier
ones (the last ``GIT_HISTORY`` commits that touched it); the lock files beside
it are hashed once the record says which ones it lists. All of it is read as
untrusted input: only well-formed hashes and plain file names are used, and
nothing is written. The comparison itself is pure
(:func:`lockd.store.verify.check_evidence`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..lockfiles.manifest import MANIFEST
from ..store.verify import Anchor, LocksetRecord, ProjectEvidence, recorded_files

GIT_HISTORY = 100  # commits of locks/lockd.json compared
_MANIFEST_LIMIT = 64 << 20
_HASH = re.compile(r"[0-9a-f]{64}")
_GIT_TIMEOUT_S = 30


def read_evidence(workdir: Path) -> ProjectEvidence | None:
    """The evidence of the project in ``workdir``; ``None`` when it has no ``lockd.json``."""
    from ..settings import load_project_config

    config = load_project_config(workdir)
    directory = config.root / (config.out or "locks")
    shown = _shown(directory, workdir)
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return None
    data = _read_json(manifest)
    anchors: list[Anchor] = []
    source = f"{shown}/{MANIFEST}"
    project, head, parent = _head(data) if data is not None else (None, None, None)
    if project and head:
        anchors.append(Anchor(project, head, source))
        if parent:
            anchors.append(Anchor(project, parent, f"{source} (as the parent of {head[:12]})"))
    history = _git_anchors(manifest, source)
    sources = (source, *([f"{len(history)} version(s) of it in git"] if history else ()))
    return ProjectEvidence(
        directory=shown,
        anchors=(*anchors, *history),
        head=head,
        edited=_edited(data, head) if data is not None else "it is not a JSON object",
        sources=sources,
    )


def with_lock_files(
    evidence: ProjectEvidence, record: LocksetRecord | None, workdir: Path
) -> ProjectEvidence:
    """``evidence`` with the sha256 on disk of every lock file ``record`` (the record of its
    head, when the database holds it) lists."""
    from ..settings import load_project_config

    if record is None or record.hash != evidence.head:
        return evidence
    config = load_project_config(workdir)
    directory = config.root / (config.out or "locks")
    files = {name: _sha256(directory / name) for name in recorded_files(record)}
    return replace(evidence, files=files)


def _head(data: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    project = data.get("project")
    head, parent = data.get("hash"), data.get("parent")
    return (
        project if isinstance(project, str) and 0 < len(project) <= 200 else None,
        head if isinstance(head, str) and _HASH.fullmatch(head) else None,
        parent if isinstance(parent, str) and _HASH.fullmatch(parent) else None,
    )


def _edited(data: Mapping[str, Any], claimed: str | None) -> str:
    """Why the manifest's content does not hash to what it claims ('' when it does)."""
    from ..errors import LockdError
    from ..lockset import Lockset

    if claimed is None:
        return "it carries no lockset hash"
    try:
        actual = Lockset.from_dict(data, verify=False).hash
    except (LockdError, KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"it is not a complete lockset ({type(exc).__name__})"
    if actual != claimed:
        return (
            f"its content hashes to {actual[:12]}, it claims {claimed[:12]}: "
            "it was edited after lockd wrote it"
        )
    return ""


def _git_anchors(manifest: Path, source: str) -> list[Anchor]:
    """The lockset each committed version of ``manifest`` names, newest commit first."""
    log = _git(manifest.parent, "log", f"-n{GIT_HISTORY}", "--format=%H", "--", manifest.name)
    if log is None:
        return []
    anchors = []
    for commit in log.split():
        # The blob as stored: cat-file applies no textconv or filter a .gitattributes names.
        blob = f"{commit}:./{manifest.name}"
        size = _git(manifest.parent, "cat-file", "-s", blob)
        if size is None or not size.strip().isdigit() or int(size) > _MANIFEST_LIMIT:
            continue
        text = _git(manifest.parent, "cat-file", "blob", blob)
        data = _parse(text.encode()) if text is not None else None
        project, head, _ = _head(data) if data is not None else (None, None, None)
        if project and head:
            anchors.append(Anchor(project, head, f"{source} of git commit {commit[:12]}"))
    return anchors


def _git(cwd: Path, *args: str) -> str | None:
    """Git's output, or ``None`` when git is absent, fails, overruns or writes no UTF-8."""
    from ..errors import ResolutionError
    from ..processes import Deadline, run_child

    try:
        proc = run_child(["git", *args], cwd=cwd, deadline=Deadline(_GIT_TIMEOUT_S, "git"))
    except (OSError, ResolutionError, UnicodeDecodeError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _read_json(path: Path) -> Mapping[str, Any] | None:
    data = _read(path)
    return _parse(data) if data is not None else None


def _parse(blob: bytes) -> Mapping[str, Any] | None:
    if len(blob) > _MANIFEST_LIMIT:
        return None
    try:
        data = json.loads(blob)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _sha256(path: Path) -> str | None:
    """The file's sha256; ``None`` when it is absent, not a regular file or too large."""
    data = _read(path)
    return hashlib.sha256(data).hexdigest() if data is not None else None


def _read(path: Path) -> bytes | None:
    """A bounded read of a regular file (no link, FIFO or device); ``None`` for anything else."""
    from ..errors import LockdError
    from ..lockfiles.files import read_regular_file

    try:
        return read_regular_file(path, _MANIFEST_LIMIT)
    except LockdError:
        return None


def _shown(directory: Path, workdir: Path) -> str:
    try:
        return str(directory.relative_to(workdir))
    except ValueError:
        return str(directory)


__all__ = ["GIT_HISTORY", "read_evidence", "with_lock_files"]

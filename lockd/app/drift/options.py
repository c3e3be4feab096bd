"""What a drift run checks, how it reports progress, and what each target's checks share."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ...urls import redact

if TYPE_CHECKING:
    from ...indexes import IndexClient
    from ...lockset import Lock, Lockset
    from ...routing import IndexPlan
    from ...shards import Shard
    from ...snapshot import Snapshot
    from ...targets import Target


@dataclass(frozen=True, slots=True)
class DriftOptions:
    database_url: str
    project: str | None = None
    lockset: str | None = None
    target: str | None = None
    all_projects: bool = False
    python: Path | None = None
    snapshot: Snapshot | None = None  # read by the caller (a file, or a request body)
    rebuild: bool | None = None  # None: rebuild the targets this machine can build
    creep: bool = True
    images: bool = True
    concurrency: int = 4
    image_refs: tuple[str, ...] = ()  # --image: check these images instead of an environment
    shard: Shard | None = None  # with all_projects: this shard's slice of the checks (nightly)
    # Credentials for the recorded indexes, as compile takes them: flag, then
    # environment, then lockd.toml; only a URL equal to a recorded one is used.
    index_url: str | None = None
    pytorch_index: str | None = None
    workdir: Path = field(default_factory=Path.cwd)  # where lockd.toml and locks/ are looked for
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True, slots=True)
class DriftStep:
    """One step of a drift run, for progress display (``detail`` is redacted)."""

    project: str
    target: str | None  # None: a step of the whole lockset (images)
    step: str  # verify, venv, install, snapshot, compare, artifacts, creep, images
    detail: str = ""


ProgressHook = Callable[[DriftStep], None]


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """One target of a lockset under check: what each of its checks works with."""

    options: DriftOptions
    lockset: Lockset
    lock: Lock
    target: Target
    plan: IndexPlan  # the lockset's indexes, configured credentials put back
    client: IndexClient
    progress: ProgressHook | None = None

    def step(self, step: str, detail: str = "") -> None:
        if self.progress is not None:
            self.progress(DriftStep(self.lockset.project, self.lock.target, step, redact(detail)))

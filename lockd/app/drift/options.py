"""What a drift run checks, and how it reports progress."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ProgressHook = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DriftOptions:
    database_url: str
    project: str | None = None
    lockset: str | None = None
    target: str | None = None
    all_projects: bool = False
    python: Path | None = None
    snapshot: Path | None = None
    rebuild: bool | None = None  # None: rebuild the targets this machine can build
    creep: bool = True
    images: bool = True
    concurrency: int = 4
    image_refs: tuple[str, ...] = ()  # --image: check these images instead of an environment
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

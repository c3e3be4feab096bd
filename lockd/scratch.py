"""Scratch directories that a killed lockd does not leave behind.

They live in ``$LOCKD_HOME/tmp`` as ``lockd-<purpose>-<8 hex>`` and are
removed when their run ends. A run killed with ``kill -9`` cannot remove its
own, so every run holds a shared ``flock`` on ``tmp/.lock`` while it uses a
scratch directory (the kernel drops it however the process dies), and before
making one, takes that lock exclusively if it can: no other run is alive then,
and every ``lockd-*`` directory there is debris. Nothing else in ``tmp/``, and
nothing outside it, is ever removed.

Scratch files hold what uv needs (a throw-away ``pyproject.toml``, constraints):
never credentials, which travel in the child's environment.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from .errors import UsageError

_SCRATCH = re.compile(r"lockd-[a-z]+-[0-9a-f]{8}")


@contextlib.contextmanager
def scratch_dir(purpose: str, home: Path | None = None) -> Iterator[Path]:
    """A fresh private directory under ``<home>/tmp``, removed on leaving the block."""
    root = (home if home is not None else _home()) / "tmp"
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = os.open(root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise UsageError(
            f"Cannot make lockd's scratch directory in {root}: {exc.strerror}.",
            hint="Set LOCKD_HOME to a writable directory.",
        ) from None
    try:
        sweep(root, lock)
        fcntl.flock(lock, fcntl.LOCK_SH)
        path = root / f"lockd-{purpose}-{secrets.token_hex(4)}"
        path.mkdir(mode=0o700)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
    finally:
        os.close(lock)


def sweep(root: Path, lock: int) -> list[str]:
    """Remove the scratch directories of dead runs, if no run is alive; their names."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return []  # another run is alive: its directory may be among them
    removed = []
    for entry in os.scandir(root):
        if _SCRATCH.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)  # never follows links inside
            removed.append(entry.name)
    return removed


def _home() -> Path:
    from .settings import Settings

    return Settings.from_env().home

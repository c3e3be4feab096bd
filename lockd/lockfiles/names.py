"""The names of the files lockd writes into its output directory (pure).

A lock's ``files`` in ``lockd.json`` come back from disk, and a pull request
can change them: a name is only ever used if it is one of these names *for the
lock's own target*. Such a name is a plain file name (no separator, no ``..``,
not absolute), so it can only mean a file inside the output directory.
"""

from __future__ import annotations

import re

MANIFEST = "lockd.json"

# Target ids as lockd makes them: linux-x86_64-py311-cu124, linux-aarch64-cpu (conda).
_TARGET_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")
_ANY_LOCK_FILE = re.compile(
    rf"pylock\.{_TARGET_ID.pattern}\.toml|{_TARGET_ID.pattern}\.requirements\.txt"
    rf"|conda-lock\.{_TARGET_ID.pattern}\.yml"
)


def pylock_name(target: str) -> str:
    """``pylock.<target>.toml`` (PEP 751 requires the ``pylock.`` prefix and no dots)."""
    return f"pylock.{target}.toml"


def requirements_name(target: str) -> str:
    return f"{target}.requirements.txt"


def conda_lock_name(target: str) -> str:
    return f"conda-lock.{target}.yml"


def is_lock_file_of(name: str, target: str) -> bool:
    """Whether ``name`` is a lock file lockd writes for ``target``."""
    return _TARGET_ID.fullmatch(target) is not None and name in (
        pylock_name(target),
        requirements_name(target),
        conda_lock_name(target),
    )


def is_lockd_file(name: str) -> bool:
    """Whether ``name`` is the manifest or a lock file of any target."""
    return name == MANIFEST or _ANY_LOCK_FILE.fullmatch(name) is not None


def is_plain_name(name: str) -> bool:
    """A file name that can only mean an entry of the directory it is joined to."""
    return (
        name not in ("", ".", "..") and "/" not in name and "\\" not in name and "\x00" not in name
    )

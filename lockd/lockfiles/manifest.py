"""``locks/lockd.json``: the lockset manifest (canonical content, pretty on disk).

The manifest comes back from disk, where a pull request may have changed it: it
is read only if it is a regular file of sane size (never through a link), every
field is type-checked, and every lock file it names must be one lockd writes for
that lock's target.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import FormatError, UnsafeFileError
from ..lockset import Lockset
from .files import MAX_LOCK_FILE_BYTES, read_regular_file
from .names import MANIFEST, is_lock_file_of

__all__ = ["MANIFEST", "read_manifest", "render_manifest"]


def render_manifest(lockset: Lockset) -> bytes:
    return (
        json.dumps(lockset.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    ).encode()


_REWRITE = (
    "`lockd compile` writes it again (or check out the committed copy); "
    "other commands can name the project with --project."
)


def read_manifest(path: Path) -> Lockset | None:
    """The lockset in ``path``, or ``None`` if there is none yet.

    ``UnsafeFileError`` when the manifest is a link or not a file, or names a lock
    file outside what lockd writes; ``FormatError`` when it is not a valid lockset.
    """
    raw = read_regular_file(path, MAX_LOCK_FILE_BYTES)
    if raw is None:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise FormatError(
            f"{path} is not a readable lockd manifest: {_first_line(exc)}.", hint=_REWRITE
        ) from None
    try:
        lockset = Lockset.from_dict(data)
    except FormatError as exc:
        raise FormatError(
            f"{path} is not a valid lockd manifest: {exc.message}", hint=exc.hint or _REWRITE
        ) from None
    for lock in lockset.locks:
        for name in lock.files:
            if not is_lock_file_of(name, lock.target):
                raise UnsafeFileError(
                    f"{path} names {name[:200]!r} as a lock file of {lock.target[:100]}, but that "
                    "is not a lock file lockd writes for it; lockd removes or replaces only "
                    "its own files in its output directory.",
                    hint="The manifest was edited (check the change that touched it); restore it "
                    "from git or delete it, then compile again.",
                )
    return lockset


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__

"""Writing a set of lock files atomically: all of them, or none.

Every file is first written to a temporary sibling and flushed; only then are
they moved into place, the manifest (``lockd.json``) last, so an interrupted
compile leaves either the previous manifest (and it names the previous files'
hashes) or the new one.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Replace one file atomically."""
    with StagedFiles(path.parent, {path.name: data}) as staged:
        staged.commit()


class StagedFiles:
    """Files written to temporary siblings, moved into place by ``commit``.

    Leaving the ``with`` block without ``commit`` (an error, Ctrl-C) deletes
    the temporaries and leaves the directory as it was.
    """

    def __init__(
        self,
        directory: Path,
        files: Mapping[str, bytes],
        *,
        last: str | None = None,
        remove: Iterable[str] = (),
    ) -> None:
        self.directory = directory
        self.files = dict(files)
        self.last = last
        self.remove = [name for name in remove if name not in files]
        self._staged: list[tuple[Path, Path]] = []

    def __enter__(self) -> StagedFiles:
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.directory)
            self._staged.append((Path(tmp), self.directory / name))
            # mkstemp creates 0600 files; a lock file must stay readable like any other.
            os.fchmod(fd, _mode_for(self.directory / name))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        return self

    def commit(self) -> list[Path]:
        """Move every file into place, ``last`` after the others."""
        self._staged.sort(key=lambda pair: pair[1].name == self.last)
        for tmp, final in self._staged:
            tmp.replace(final)
        for name in self.remove:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / name).unlink()
        _fsync_dir(self.directory)
        done = [final for _, final in self._staged]
        self._staged = []
        return done

    def __exit__(self, *exc: object) -> None:
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)


def _mode_for(path: Path) -> int:
    """The mode the file has now, or what a plain ``open`` would give it (umask applied)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can fsync a directory
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

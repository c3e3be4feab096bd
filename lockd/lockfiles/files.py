"""Writing a set of lock files atomically: all of them, or none.

Every file is first written to a temporary sibling (``.<name>.<8 hex>.tmp``)
and flushed; only then are they moved into place, the manifest (``lockd.json``)
last, so an interrupted compile leaves either the previous manifest (and it
names the previous files' hashes) or the new one.

Names are plain file names, checked here whoever passes them, and every
operation goes through a descriptor of the directory opened without following
links: a link in the directory is replaced or removed as a link, never
followed, and a directory that is itself a link is refused. While it stages,
a writer holds ``flock`` on the directory; a temporary found while holding it
belongs to a run that was killed, so ``remove_stale_temporaries`` may delete it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, NoReturn, TypeVar

from ..errors import FormatError, UnsafeFileError, UsageError
from .names import MANIFEST, is_plain_name

MAX_LOCK_FILE_BYTES = 64 << 20  # lockd.json of a large matrix is a few MiB
T = TypeVar("T")
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp")


def write_atomic(path: Path, data: bytes) -> None:
    """Replace one file atomically (in a directory the caller chose: it may be a link)."""
    with StagedFiles(path.parent, {path.name: data}, directory_link=True) as staged:
        staged.commit()


def write_atomic_streamed(path: Path, write: Callable[[IO[bytes]], T]) -> T:
    """Replace one file atomically with what ``write`` writes into it, piece by piece (in a
    directory the caller chose: it may be a link); what ``write`` returns.

    Until ``write`` returns, the file is a temporary sibling: a failed run deletes it,
    and one killed leaves it for the next run to remove; the file is never half-written.
    """
    remove_stale_temporaries(path.parent, lambda name: name == path.name, link=True)
    with StagedFiles(path.parent, {}, directory_link=True) as staged:
        result = staged.stage(path.name, write)
        staged.commit()
    return result


class StagedFiles:
    """Files written to temporary siblings, moved into place by ``commit``.

    Leaving the ``with`` block without ``commit`` (an error, Ctrl-C) deletes
    the temporaries and leaves the directory as it was. ``directory_link``
    allows ``directory`` itself to be a symbolic link (a path the user gave).
    """

    def __init__(
        self,
        directory: Path,
        files: Mapping[str, bytes],
        *,
        last: str | None = None,
        remove: Iterable[str] = (),
        directory_link: bool = False,
    ) -> None:
        self.directory = directory
        self.directory_link = directory_link
        self.files = dict(files)
        self.last = last
        self.remove = [name for name in remove if name not in files]
        for name in [*self.files, *self.remove]:
            _check_plain(name, directory)
        self._fd: int | None = None
        self._staged: list[tuple[str, str]] = []  # (temporary, final) names

    def __enter__(self) -> StagedFiles:
        self._fd = open_directory(self.directory, create=True, link=self.directory_link)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            for name in self.files:
                if _is_directory(name, self._fd):
                    raise UnsafeFileError(
                        f"{self.directory / name} is a directory; lockd writes a file there.",
                        hint="Move it away, then run again.",
                    )
            for name, data in self.files.items():
                self._stage(name, functools.partial(_write_bytes, data))
        except BaseException:
            self.__exit__()
            raise
        return self

    def stage(self, name: str, write: Callable[[IO[bytes]], T]) -> T:
        """One more file, with what ``write`` writes into it; what ``write`` returns."""
        assert self._fd is not None  # noqa: S101 - only called inside the with block
        _check_plain(name, self.directory)
        if _is_directory(name, self._fd):
            raise UnsafeFileError(
                f"{self.directory / name} is a directory; lockd writes a file there.",
                hint="Move it away, then run again.",
            )
        return self._stage(name, write)

    def _stage(self, name: str, write: Callable[[IO[bytes]], T]) -> T:
        assert self._fd is not None  # noqa: S101 - only called inside the with block
        temporary = f".{name}.{secrets.token_hex(4)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o600, dir_fd=self._fd)
        self._staged.append((temporary, name))
        # A lock file must stay readable like any other (and keep the mode it had).
        os.fchmod(fd, _mode_for(name, self._fd))
        with os.fdopen(fd, "wb") as handle:
            result = write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        return result

    def commit(self) -> list[Path]:
        """Move every file into place, ``last`` after the others."""
        assert self._fd is not None  # noqa: S101 - only called inside the with block
        self._staged.sort(key=lambda pair: pair[1] == self.last)
        for temporary, final in self._staged:
            # rename replaces a link at ``final`` itself; it never writes through it.
            os.replace(temporary, final, src_dir_fd=self._fd, dst_dir_fd=self._fd)
        for name in self.remove:
            if not _is_directory(name, self._fd):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=self._fd)
        with contextlib.suppress(OSError):  # not every platform can fsync a directory
            os.fsync(self._fd)
        done = [self.directory / final for _, final in self._staged]
        self._staged = []
        return done

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        for temporary, _ in self._staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=self._fd)
        self._staged = []
        os.close(self._fd)  # releases the flock
        self._fd = None


def _write_bytes(data: bytes, handle: IO[bytes]) -> None:
    handle.write(data)


def open_directory(directory: Path, *, create: bool = False, link: bool = False) -> int:
    """A descriptor of ``directory``; unless ``link``, never of what a link there points to."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if link else os.O_NOFOLLOW)
    try:
        if create:
            directory.mkdir(parents=True, exist_ok=True)
        return os.open(directory, flags)
    except (FileExistsError, NotADirectoryError):
        if link:
            raise  # a path the caller chose: its own handling of OSError applies
        # With O_DIRECTORY, Linux answers ENOTDIR rather than ELOOP for a link.
        if directory.is_symlink():
            raise _linked(directory) from None
        existing = next(p for p in (directory, *directory.parents) if p.exists())
        raise _not_a_directory(existing) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _linked(directory) from None
        raise


def _linked(directory: Path) -> UnsafeFileError:
    return UnsafeFileError(
        f"{directory} is a symbolic link; lockd writes only into a real directory.",
        hint="Replace the link with a directory, or pass the real path with --out.",
    )


def _not_a_directory(path: Path) -> UnsafeFileError:
    return UnsafeFileError(
        f"{path} is a file, not a directory.",
        hint="Move it away, or choose another output directory with --out.",
    )


def prepare_output_directory(directory: Path, owned: Callable[[str], bool]) -> None:
    """Before any work: ``directory`` is a real, writable directory (or can be made
    one), and the temporaries of killed runs (of files ``owned`` names) are gone."""
    if not os.path.lexists(directory):
        ancestor = next(p for p in directory.parents if os.path.lexists(p))
        if not ancestor.is_dir():
            raise _not_a_directory(ancestor)
        # Made when the files are written, not before: try now and take it back (access()
        # cannot tell: root passes it, and /proc or a read-only mount still refuses).
        made = [p for p in (directory, *directory.parents) if not os.path.lexists(p)]
        try:
            directory.mkdir(parents=True)
        except FileExistsError:
            pass  # another run made it meanwhile: check it as it is
        except OSError as exc:
            _unwritable(directory, exc.strerror or str(exc))
        else:
            for path in made:  # deepest first
                with contextlib.suppress(OSError):  # another run may be writing there
                    path.rmdir()
            return
    fd = open_directory(directory)
    try:
        probe = f".{MANIFEST}.{secrets.token_hex(4)}.tmp"  # a temporary lockd would clean up
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=fd))
        os.unlink(probe, dir_fd=fd)
    except OSError as exc:
        _unwritable(directory, exc.strerror or str(exc))
    finally:
        os.close(fd)
    remove_stale_temporaries(directory, owned)


def _unwritable(directory: Path, why: str) -> NoReturn:
    raise UsageError(
        f"Cannot write into {directory}: {why}.",
        hint="Make the directory writable, or choose another one with --out.",
    )


def remove_stale_temporaries(
    directory: Path, owned: Callable[[str], bool], *, link: bool = False
) -> list[str]:
    """Delete the temporaries that killed runs left for files ``owned`` says are lockd's
    (``link``: ``directory`` may be a link, a path the user chose).

    Only while no writer stages in ``directory`` (the flock is free); returns the
    names removed.
    """
    try:
        fd = open_directory(directory, link=link)
    except (FileNotFoundError, NotADirectoryError, UnsafeFileError):
        return []
    removed = []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return []  # a live run is staging: its temporaries are not debris
        for entry in os.scandir(fd):
            match = _TEMPORARY.fullmatch(entry.name)
            if match and owned(match["name"]) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=fd)
                    removed.append(entry.name)
    finally:
        os.close(fd)
    return removed


def read_regular_file(path: Path, limit: int) -> bytes | None:
    """A regular file's bytes, never through a link; ``None`` when it does not exist."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFileError(
                f"{path} is a symbolic link; lockd reads and writes only real files here.",
                hint="Replace the link with the file itself (or delete it), then run again.",
            ) from None
        if exc.errno == errno.ENOTDIR:
            raise _not_a_directory(path.parent) from None
        raise FormatError(f"Cannot read {path}: {exc.strerror}.") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise UnsafeFileError(
            f"{path} is {kind}; lockd keeps a file there.", hint="Move it away, then run again."
        )
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FormatError(f"{path} is larger than {limit >> 20} MiB; it is not lockd's.")
    return data


def _check_plain(name: str, directory: Path) -> None:
    if not is_plain_name(name):
        raise UnsafeFileError(
            f"Refusing to write or remove {name[:200]!r} in {directory}: "
            "not a plain file name of that directory."
        )


def _is_directory(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _mode_for(name: str, dir_fd: int) -> int:
    """The mode the file has now, or what a plain ``open`` would give it (umask applied)."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISREG(info.st_mode):
            return stat.S_IMODE(info.st_mode)
    except FileNotFoundError:
        pass
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask

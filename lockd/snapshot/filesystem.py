"""A read-only view of a root file system, so that one machine can inspect another's.

The shared-library closure (:mod:`lockd.snapshot.closure`) resolves paths the
way ``ld.so`` would *inside* a root: this host's ``/``, a directory tree built
by a test, or an image's root file system. Paths given to a view are absolute
POSIX paths inside it (``/usr/lib/x86_64-linux-gnu/libz.so.1``). Symbolic
links are followed as the kernel would inside a ``chroot``: an absolute link
target starts again at the view's root, and ``..`` never climbs above it, so
a hostile tree cannot make lockd read a file outside the view.

What a view cannot promise: a tree that changes while it is read (another
process swapping a directory for a link) is read as it was at each call.
"""

# A scan tests tens of thousands of paths: string paths (os.path) are cheaper than pathlib.
# ruff: noqa: PTH115, PTH116

from __future__ import annotations

import errno
import os
import posixpath
import stat
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from .elf import ElfObject

# The kernel's limit on links followed while resolving one path (ELOOP past it).
MAX_SYMLINKS = 40


class EntryKind(StrEnum):
    file = "file"
    dir = "dir"
    link = "link"  # a symbolic link, not followed
    other = "other"  # devices, sockets, FIFOs: never read


@dataclass(frozen=True, slots=True)
class DirEntry:
    name: str
    kind: EntryKind


class FileSystem(Protocol):
    """What the library closure needs from a root file system (read-only).

    Every method takes an absolute path inside the view. ``exists``,
    ``is_file`` and ``is_dir`` follow links (confined to the view);
    ``entries`` does not. ``realpath`` answers the link-free path inside the
    view, or ``None`` when the path does not resolve (dangling link, loop).
    ``open`` and ``read_bytes`` raise ``OSError`` for what cannot be read.

    ``dynamic`` is the hook for a view that cannot open its files for
    pyelftools (an image read from its layer streams, :mod:`lockd.images`):
    the dynamic section of ``path`` read beforehand (or why it could not be),
    ``None`` when the view has none and the file is to be read.
    """

    def exists(self, path: str) -> bool: ...

    def is_file(self, path: str) -> bool: ...

    def is_dir(self, path: str) -> bool: ...

    def realpath(self, path: str) -> str | None: ...

    def entries(self, path: str) -> list[DirEntry]: ...

    def open(self, path: str) -> BinaryIO: ...

    def read_bytes(self, path: str, limit: int) -> bytes: ...

    def dynamic(self, path: str) -> ElfObject | str | None: ...


class DirectoryFileSystem:
    """A directory of this machine seen as ``/`` (``DirectoryFileSystem("/")`` is the host).

    Resolution is done component by component with ``readlink``, so links
    inside the tree resolve inside the tree; resolved directories are cached
    for the life of the view (a view is meant for one scan).
    """

    def __init__(self, root: str = "/") -> None:
        self.root = os.path.realpath(root)
        self._host = self.root == "/"
        self._resolved: dict[str, str | None] = {"/": "/"}

    def __repr__(self) -> str:
        return f"DirectoryFileSystem({self.root!r})"

    def host_path(self, path: str) -> str:
        """Where a (resolved) path of the view lies on this machine."""
        if self._host or path == "/":
            return self.root if path == "/" else path
        return self.root + path

    def realpath(self, path: str) -> str | None:
        if self._host:  # the host's own root: the kernel's answer is the confined answer
            real = os.path.realpath(path)
            return real if os.path.lexists(real) else None
        return self._resolve(_normal(path), MAX_SYMLINKS)

    def exists(self, path: str) -> bool:
        return self._stat(path) is not None

    def is_file(self, path: str) -> bool:
        mode = self._stat(path)
        return mode is not None and stat.S_ISREG(mode)

    def is_dir(self, path: str) -> bool:
        mode = self._stat(path)
        return mode is not None and stat.S_ISDIR(mode)

    def entries(self, path: str) -> list[DirEntry]:
        real = self.realpath(path)
        if real is None:
            return []
        found = []
        try:
            with os.scandir(self.host_path(real)) as listing:
                for entry in listing:
                    try:
                        if entry.is_symlink():
                            kind = EntryKind.link
                        elif entry.is_dir(follow_symlinks=False):
                            kind = EntryKind.dir
                        elif entry.is_file(follow_symlinks=False):
                            kind = EntryKind.file
                        else:
                            kind = EntryKind.other
                    except OSError:
                        kind = EntryKind.other
                    found.append(DirEntry(entry.name, kind))
        except OSError:
            return []
        return sorted(found, key=lambda e: e.name)

    def open(self, path: str) -> BinaryIO:
        real = self.realpath(path)
        if real is None:
            raise FileNotFoundError(errno.ENOENT, "no such file in the view", path)
        # O_NOFOLLOW: the last component was resolved above, never follow a link swapped in;
        # O_NONBLOCK: opening a FIFO would wait for a writer (no effect on regular files).
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
        fd = os.open(self.host_path(real), flags)
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device would block or never end
            os.close(fd)
            raise OSError(errno.EINVAL, "not a regular file", path)
        return os.fdopen(fd, "rb")

    def read_bytes(self, path: str, limit: int) -> bytes:
        with self.open(path) as handle:
            return handle.read(limit)

    def dynamic(self, path: str) -> None:  # the protocol's hook: this view's files are read
        return None

    def _stat(self, path: str) -> int | None:
        real = self.realpath(path)
        if real is None:
            return None
        try:
            return os.stat(self.host_path(real), follow_symlinks=False).st_mode
        except OSError:
            return None

    def _resolve(self, path: str, budget: int) -> str | None:
        """``path`` (absolute, normalised) without links, inside the view."""
        if path in self._resolved:
            return self._resolved[path]
        parent, name = posixpath.split(path)
        real_parent = self._resolve(parent, budget)
        if real_parent is None:
            result = None
        else:
            candidate = posixpath.join(real_parent, name)
            result = candidate
            try:
                mode = os.lstat(self.host_path(candidate)).st_mode
            except OSError:
                result = None
            else:
                if stat.S_ISLNK(mode):
                    result = self._follow(candidate, real_parent, budget)
        self._resolved[path] = result
        return result

    def _follow(self, link: str, directory: str, budget: int) -> str | None:
        if budget <= 0:
            return None  # ELOOP
        try:
            target = os.readlink(self.host_path(link))
        except OSError:
            return None
        # An absolute target starts at the view's root; normpath keeps ".." at "/".
        joined = target if target.startswith("/") else posixpath.join(directory, target)
        return self._resolve(_normal(joined), budget - 1)


def _normal(path: str) -> str:
    """Absolute and normalised, ``..`` stopped at ``/`` (normpath keeps a leading ``//``)."""
    return "/" + posixpath.normpath("/" + path).lstrip("/")


HOST = DirectoryFileSystem("/")


def walk(view: FileSystem, top: str) -> list[tuple[str, list[DirEntry]]]:
    """Every directory under ``top`` with its entries, depth first, sorted; links not followed."""
    found = []
    pending = [top]
    while pending:
        directory = pending.pop()
        listing = view.entries(directory)
        found.append((directory, listing))
        subdirs = [posixpath.join(directory, e.name) for e in listing if e.kind is EntryKind.dir]
        pending.extend(reversed(subdirs))
    return found


__all__ = [
    "HOST",
    "MAX_SYMLINKS",
    "DirEntry",
    "DirectoryFileSystem",
    "EntryKind",
    "FileSystem",
    "walk",
]

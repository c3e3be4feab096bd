"""The shared-library closure of what Python loads, resolved against a read-only file system.

Python loads extension modules (``*.cpython-3XY-*.so``, ``*.abi3.so``); the
dynamic loader then loads their ``DT_NEEDED`` libraries, and theirs, in the
order ``ld.so`` searches: ``DT_RPATH`` (only without ``DT_RUNPATH``),
``LD_LIBRARY_PATH``, ``DT_RUNPATH`` (``$ORIGIN`` expanded to the directory of
the object's real path), the directories of ``ld.so.conf``, then the default
directories. Only that closure matters: plugins a package ``dlopen``\\ s on
demand (NVSHMEM transports, ``libcufile_rdma``) need libraries most systems
lack, and ``import torch`` works without them.

The file system is a parameter (:class:`ReadOnlyFs`): an image's root file
system, never silently the machine lockd runs on. Paths are absolute inside
that file system. The ELF dynamic sections come pre-read from the layer
streams (the image is never on disk to open).
"""

from __future__ import annotations

import posixpath
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from lockd.snapshot.elf import ElfObject
from lockd.snapshot.ldso import SearchPath
from lockd.snapshot.model import LibraryScan, LibraryStatus, NeededLibrary, SkippedFile
from lockd.snapshot.parse import expand_search_path, is_driver_library

EXTENSION_MODULE = re.compile(r"\.(?:cpython-\d+[^/]*|abi3)\.so$")


class ReadOnlyFs(Protocol):
    """What the closure needs to know about a file system."""

    def is_file(self, path: str) -> bool:
        """A regular file, symlinks followed."""

    def realpath(self, path: str) -> str | None:
        """The absolute real path (symlinks followed), ``None`` for a loop."""

    def dynamic(self, path: str) -> ElfObject | str | None:
        """The dynamic section of an ELF file, why it cannot be read, or ``None``."""


@dataclass(frozen=True, slots=True)
class LoaderConfig:
    """Where the dynamic loader looks besides each object's own RPATH/RUNPATH."""

    ld_library_path: tuple[str, ...] = ()
    conf_dirs: tuple[str, ...] = ()  # from ld.so.conf, in order


def parse_ld_so_conf(
    path: str, read: Callable[[str], str | None], expand: Callable[[str], list[str]]
) -> tuple[str, ...]:
    """The directories of ``ld.so.conf`` and the files it includes, in order.

    ``read`` returns a file's text (``None`` if absent); ``expand`` lists the
    files a glob names (``/etc/ld.so.conf.d/*.conf``), sorted as ldconfig does.
    """
    found: list[str] = []
    seen: set[str] = set()

    def visit(name: str, depth: int) -> None:
        if name in seen or depth > 8:
            return
        seen.add(name)
        for raw in (read(name) or "").splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("include ") or line.startswith("include\t"):
                for pattern in line.split()[1:]:
                    absolute = (
                        pattern
                        if pattern.startswith("/")
                        else posixpath.join(posixpath.dirname(name), pattern)
                    )
                    for included in expand(absolute):
                        visit(included, depth + 1)
            elif line.startswith("/"):
                for directory in re.split(r"[:,\s]+", line):
                    if directory and directory not in found:
                        found.append(directory.rstrip("/") or "/")

    visit(path, 0)
    return tuple(found)


def library_closure(
    fs: ReadOnlyFs, roots: Sequence[str], files: Iterable[str], loader: LoaderConfig
) -> LibraryScan:
    """Resolve what the extension modules among ``files`` need, transitively, inside ``fs``.

    ``files`` are the shared objects under ``roots`` (the site-packages
    directories). A library the loader cannot find but that one of them
    provides is ``bundled``: its package loads it by path.
    """
    default = SearchPath()
    objects = sorted(files)
    queue = deque(p for p in objects if EXTENSION_MODULE.search(p))
    visited: set[str] = set()
    unresolved: dict[str, set[str]] = {}
    system: dict[str, str] = {}
    skipped: list[SkippedFile] = []
    while queue:
        path = queue.popleft()
        real = fs.realpath(path)
        if real is None or real in visited:
            continue
        visited.add(real)
        obj = fs.dynamic(real)
        if not isinstance(obj, ElfObject):
            skipped.append(SkippedFile(_relative(path, roots), obj or "not read"))
            continue
        origin = posixpath.dirname(real)
        for name in obj.needed:
            found = _resolve(fs, name, obj, origin, loader, default)
            if found is None:
                unresolved.setdefault(name, set()).add(_relative(path, roots))
                continue
            if not _inside(found, roots):
                system.setdefault(name, found)
            queue.append(found)
    provided = _provided(fs, objects)
    return LibraryScan(
        roots=tuple(roots),
        scanned=len(visited) - len(skipped),
        unresolved=tuple(
            NeededLibrary(soname, _status(soname, provided), tuple(sorted(needers)))
            for soname, needers in sorted(unresolved.items())
        ),
        system=dict(sorted(system.items())),
        skipped=tuple(skipped),
    )


def _resolve(  # noqa: PLR0917 - the loader's inputs, in its order
    fs: ReadOnlyFs,
    name: str,
    obj: ElfObject,
    origin: str,
    loader: LoaderConfig,
    default: SearchPath,
) -> str | None:
    if "/" in name:
        return name if fs.is_file(name) else None
    dirs: list[str] = []
    if obj.rpath and not obj.runpath:  # DT_RUNPATH, when present, disables DT_RPATH
        dirs += expand_search_path(obj.rpath, origin)
    dirs += loader.ld_library_path
    if obj.runpath:
        dirs += expand_search_path(obj.runpath, origin)
    dirs += loader.conf_dirs
    dirs += default.default_dirs(obj.machine, obj.elfclass)
    for directory in dirs:
        candidate = posixpath.join(directory, name)
        if fs.is_file(candidate) and _compatible(fs.dynamic(candidate), obj):
            return candidate
    return None


def _compatible(candidate: ElfObject | str | None, needer: ElfObject) -> bool:
    """ld.so skips a library of another machine or class and searches on."""
    if not isinstance(candidate, ElfObject):
        return candidate is None  # not parsed (not kept): assume it fits
    return (candidate.machine, candidate.elfclass) == (needer.machine, needer.elfclass)


def _provided(fs: ReadOnlyFs, files: Sequence[str]) -> set[str]:
    names = {posixpath.basename(p) for p in files}
    for path in files:
        obj = fs.dynamic(path)
        if isinstance(obj, ElfObject) and obj.soname:
            names.add(obj.soname)
    return names


def _status(soname: str, provided: set[str]) -> LibraryStatus:
    if is_driver_library(soname):
        return LibraryStatus.driver
    return LibraryStatus.bundled if soname in provided else LibraryStatus.missing


def _inside(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _relative(path: str, roots: Sequence[str]) -> str:
    for root in roots:
        if path.startswith(root.rstrip("/") + "/"):
            return path[len(root.rstrip("/")) + 1 :]
    return path

"""The shared libraries Python loads from site-packages, and those nothing provides.

What matters for ``import`` is the closure of what Python loads: every
extension module under the site-packages roots (``*.cpython-3XY-*.so``,
``*.abi3.so``, a plain ``*.so`` that defines ``PyInit_<name>``, each in an
importable package directory) and, transitively, every ``DT_NEEDED`` of
those — through the libraries found in site-packages and the system
libraries they resolve to — found with ``ld.so``'s rules
(:mod:`lockd.snapshot.ldso`) inside a file-system view
(:mod:`lockd.snapshot.filesystem`: this host, a test's tree or an image).

A library the closure needs and nothing provides is ``missing``: that import
fails. Objects no extension module reaches are plugins that their packages
``dlopen`` on demand (cuFile's RDMA plugin, NVSHMEM's transports and
bootstraps); what only they need is reported as ``plugin``, for
information. NVIDIA driver libraries are ``driver`` (mounted at run time by
the container toolkit) and a name provided only inside site-packages, off
every search path, is ``bundled`` (its package loads it by path).

This is the one closure for a host and an image: an image's view
(:class:`lockd.images._rootfs.RootFsView`) hands over the dynamic sections
read from its layer streams through :meth:`FileSystem.dynamic`. Those carry
no symbol lookups, so in an image a plain ``name.so`` (no ``cpython``/``abi3``
tag) is not taken for an extension module: what only it needs shows as
``plugin``, not ``missing``.
"""

from __future__ import annotations

import posixpath
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .elf import SHARED_OBJECT, ElfObject, importable_module, read_dynamic
from .filesystem import EntryKind, FileSystem, walk
from .ldso import Inherited, Loader, SearchPath, search_path
from .model import LdCacheEntry, LibraryScan, LibraryStatus, NeededLibrary, SkippedFile
from .parse import is_driver_library


@dataclass(frozen=True, slots=True)
class _Object:
    path: str  # where it was found (its directory is $ORIGIN)
    label: str  # relative to its site-packages root; the path itself for system objects
    elf: ElfObject
    inside: bool  # under one of the roots


@dataclass
class _Found:
    objects: list[_Object] = field(default_factory=list)
    extensions: list[_Object] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    provided: set[str] = field(default_factory=set)  # file names and sonames inside the roots
    by_real: dict[str, _Object] = field(default_factory=dict)


def scan_libraries(
    view: FileSystem,
    roots: Sequence[str],
    environ: Mapping[str, str],
    cache: Sequence[LdCacheEntry] | None = None,
) -> LibraryScan:
    """The closure of the extension modules under ``roots`` in ``view``.

    ``environ`` is the environment the interpreter runs with (``LD_LIBRARY_PATH``);
    ``cache`` the ``ld.so`` cache when already known (``ldconfig -p`` on this
    host), else the view's own is read (see :func:`lockd.snapshot.ldso.search_path`).
    """
    return scan(view, roots, search_path(view, environ, cache))


def scan(view: FileSystem, roots: Sequence[str], search: SearchPath) -> LibraryScan:
    """Resolve the closure of the extension modules under ``roots`` (paths inside ``view``)."""
    found = _collect(view, roots)
    walk_ = _Walk(view, Loader(view, search), found)
    needed_by_imports = walk_.closure(found.extensions, imports=True)
    needed_by_plugins: dict[str, set[str]] = {}
    for plugin in found.objects:
        if plugin.path not in walk_.reached:  # no import loads it: a plugin (or unused)
            for soname in walk_.closure([plugin], imports=False):
                needed_by_plugins.setdefault(soname, set()).add(plugin.label)
    unresolved = [
        NeededLibrary(soname, _status(soname, found.provided), tuple(sorted(users)))
        for soname, users in needed_by_imports.items()
    ]
    unresolved += [
        NeededLibrary(soname, _status(soname, found.provided, plugin=True), tuple(sorted(users)))
        for soname, users in needed_by_plugins.items()
        if soname not in needed_by_imports
    ]
    return LibraryScan(
        roots=tuple(roots),
        scanned=len(found.objects),
        unresolved=tuple(sorted(unresolved, key=lambda lib: lib.soname)),
        system=dict(sorted(walk_.system.items())),
        skipped=(*found.skipped, *walk_.skipped),
        extension_modules=len(found.extensions),
        loaded=walk_.loaded_by_imports,
    )


@dataclass
class _Walk:
    """Breadth first from a set of objects, as ``ld.so`` loads their ``DT_NEEDED``."""

    view: FileSystem
    loader: Loader
    found: _Found
    reached: set[str] = field(default_factory=set)  # paths of objects already walked
    system: dict[str, str] = field(default_factory=dict)  # soname -> path, outside the roots
    skipped: list[SkippedFile] = field(default_factory=list)
    loaded_by_imports: int = 0
    _system_objects: dict[str, _Object | None] = field(default_factory=dict)

    def closure(self, start: Iterable[_Object], *, imports: bool) -> dict[str, set[str]]:
        """Walk from ``start``; the names nothing resolves, with the labels of who needs them.

        Objects walked before are not walked again: a plugin walk after the
        walk from the extension modules (``imports``) covers only what they
        do not load.
        """
        unresolved: dict[str, set[str]] = {}
        queue: deque[tuple[_Object, Inherited]] = deque()
        for obj in start:
            if obj.path not in self.reached:
                self.reached.add(obj.path)
                queue.append((obj, ()))
        while queue:
            obj, inherited = queue.popleft()
            origin = posixpath.dirname(obj.path)
            rpath = obj.elf.search_rpath
            passed_on = ((rpath, origin), *inherited) if rpath else inherited
            for name in obj.elf.needed:
                path = self.loader.find(name, obj.elf, origin, inherited)
                if path is None:
                    unresolved.setdefault(name, set()).add(obj.label)
                    continue
                child = self._object(path)
                if child is None:
                    continue
                if not child.inside and imports:
                    self.system.setdefault(name, path)
                if child.path not in self.reached:
                    self.reached.add(child.path)
                    queue.append((child, passed_on))
        if imports:
            self.loaded_by_imports = len(self.reached)
        return unresolved

    def _object(self, path: str) -> _Object | None:
        """The object at ``path``: one of site-packages, else a system library parsed once."""
        real = self.view.realpath(path) or path
        inside = self.found.by_real.get(real)
        if inside is not None:
            return inside
        if real not in self._system_objects:
            result = read_dynamic(self.view, real)
            if isinstance(result, str):
                self.skipped.append(SkippedFile(path, result))
                self._system_objects[real] = None
            else:
                self._system_objects[real] = _Object(path, path, result, inside=False)
        return self._system_objects[real]


def _collect(view: FileSystem, roots: Sequence[str]) -> _Found:
    found = _Found()
    for root in roots:
        top = root.rstrip("/") or "/"
        for directory, listing in walk(view, top):
            for entry in listing:
                if not SHARED_OBJECT.search(entry.name):
                    continue
                found.provided.add(entry.name)
                if entry.kind is not EntryKind.file:  # a link's target is scanned under its name
                    continue
                path = posixpath.join(directory, entry.name)
                relative = posixpath.relpath(path, top)
                real = view.realpath(path) or path
                if real in found.by_real:  # repeated roots
                    continue
                module = importable_module(relative)
                wanted = (f"PyInit_{module[0]}",) if module and not module[1] else ()
                result = read_dynamic(view, path, wanted)
                if isinstance(result, str):
                    found.skipped.append(SkippedFile(relative, result))
                    continue
                if result.soname:
                    found.provided.add(result.soname)
                obj = _Object(path, relative, result, inside=True)
                found.by_real[real] = obj
                found.objects.append(obj)
                if module and (module[1] or result.defines):
                    found.extensions.append(obj)
    return found


def _status(soname: str, provided: set[str], *, plugin: bool = False) -> LibraryStatus:
    if is_driver_library(soname):
        return LibraryStatus.driver
    if soname in provided:
        return LibraryStatus.bundled
    return LibraryStatus.plugin if plugin else LibraryStatus.missing


__all__ = ["scan", "scan_libraries"]

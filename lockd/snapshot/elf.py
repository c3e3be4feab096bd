"""Which shared libraries the ``.so`` files under site-packages need, and which are missing.

Every ``DT_NEEDED`` of every ELF object is resolved the way ``ld.so`` does it:
``DT_RPATH`` (only without ``DT_RUNPATH``), ``LD_LIBRARY_PATH``, ``DT_RUNPATH``
(``$ORIGIN`` expanded), the ``ld.so`` cache, then the default directories.
Files that are not ELF or cannot be parsed are skipped, with the reason: a
scanner that crashes on one odd file tells nothing about the other thousand.
"""

# A scan walks thousands of files and tests tens of thousands of candidate paths:
# string paths (os.path) are cheaper than pathlib objects there.
# ruff: noqa: PTH113, PTH114, PTH116, PTH118, PTH123

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .model import LdCacheEntry, LibraryScan, LibraryStatus, NeededLibrary, SkippedFile
from .parse import expand_search_path, is_driver_library, ld_cache_matches

ELF_MAGIC = b"\x7fELF"
_STRING_TAGS = {
    "DT_NEEDED": "needed",
    "DT_RUNPATH": "runpath",
    "DT_RPATH": "rpath",
    "DT_SONAME": "soname",
}
_SHARED_OBJECT = re.compile(r"\.so(?:\.\d[\w.]*)?$")

# Debian/Ubuntu multiarch directory names per ELF machine (64-bit unless noted).
_MULTIARCH = {
    ("EM_X86_64", 64): "x86_64-linux-gnu",
    ("EM_AARCH64", 64): "aarch64-linux-gnu",
    ("EM_PPC64", 64): "powerpc64le-linux-gnu",
    ("EM_S390", 64): "s390x-linux-gnu",
    ("EM_RISCV", 64): "riscv64-linux-gnu",
    ("EM_386", 32): "i386-linux-gnu",
    ("EM_ARM", 32): "arm-linux-gnueabihf",
}


@dataclass(frozen=True, slots=True)
class SearchPath:
    """Where the dynamic loader looks, besides each object's own RPATH/RUNPATH."""

    ld_library_path: tuple[str, ...] = ()
    cache: tuple[LdCacheEntry, ...] = ()
    root: str = "/"  # prefix of the default directories (tests point it at a fake tree)

    def default_dirs(self, machine: str, elfclass: int) -> tuple[str, ...]:
        dirs = []
        triplet = _MULTIARCH.get((machine, elfclass))
        if triplet:
            dirs += [f"lib/{triplet}", f"usr/lib/{triplet}"]
        if elfclass == 64:
            dirs += ["lib64", "usr/lib64"]
        dirs += ["lib", "usr/lib"]
        return tuple(os.path.join(self.root, d) for d in dirs)


@dataclass(frozen=True, slots=True)
class ElfObject:
    """The dynamic section of one ELF file."""

    machine: str  # "EM_X86_64"
    elfclass: int  # 32 or 64
    needed: tuple[str, ...]
    rpath: str | None
    runpath: str | None
    soname: str | None


def read_dynamic(path: str) -> ElfObject | str:
    """The dynamic section of ``path``, or why it cannot be read (a short reason)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != ELF_MAGIC:
                return "not an ELF file"
            handle.seek(0)
            return _parse(handle)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"


def _parse(handle: object) -> ElfObject | str:
    from elftools.elf.dynamic import DynamicSection, DynamicSegment
    from elftools.elf.elffile import ELFFile

    # pyelftools raises a zoo of exceptions on malformed input (ELFError, struct.error,
    # construct errors, UnicodeDecodeError, …). One bad file must not stop the scan.
    try:
        elf = ELFFile(handle)  # type: ignore[arg-type]
        if elf.header.e_type not in ("ET_DYN", "ET_EXEC"):
            return f"not a shared object ({elf.header.e_type})"
        dynamic: DynamicSection | DynamicSegment | None = None
        section = elf.get_section_by_name(".dynamic")
        if isinstance(section, DynamicSection):
            dynamic = section
        else:  # stripped section headers: fall back to the PT_DYNAMIC segment
            dynamic = next((s for s in elf.iter_segments() if isinstance(s, DynamicSegment)), None)
        strings: dict[str, list[str]] = {}
        if dynamic is not None:
            for tag in dynamic.iter_tags():
                attribute = _STRING_TAGS.get(tag.entry.d_tag)
                if attribute:  # pyelftools sets .needed, .runpath, … per tag type
                    strings.setdefault(attribute, []).append(str(getattr(tag, attribute)))
        return ElfObject(
            machine=str(elf.header.e_machine),
            elfclass=int(elf.elfclass),
            needed=tuple(strings.get("needed", ())),
            rpath=":".join(strings["rpath"]) if "rpath" in strings else None,
            runpath=":".join(strings["runpath"]) if "runpath" in strings else None,
            soname=strings["soname"][0] if "soname" in strings else None,
        )
    except Exception as exc:  # see above
        return f"cannot parse ELF: {type(exc).__name__}: {exc}"[:300]


@dataclass
class _Resolver:
    search: SearchPath
    _exists: dict[str, bool] = field(default_factory=dict)
    _cache: dict[str, list[LdCacheEntry]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for entry in self.search.cache:
            self._cache.setdefault(entry.soname, []).append(entry)

    def is_file(self, path: str) -> bool:
        found = self._exists.get(path)
        if found is None:
            found = self._exists[path] = os.path.isfile(path)
        return found

    def resolve(self, name: str, obj: ElfObject, origin: str) -> str | None:
        if "/" in name:
            return name if self.is_file(name) else None
        dirs: list[str] = []
        if obj.rpath and not obj.runpath:  # DT_RUNPATH, when present, disables DT_RPATH
            dirs += expand_search_path(obj.rpath, origin)
        dirs += self.search.ld_library_path
        if obj.runpath:
            dirs += expand_search_path(obj.runpath, origin)
        for directory in dirs:
            candidate = os.path.join(directory, name)
            if self.is_file(candidate):
                return candidate
        for entry in self._cache.get(name, ()):
            if ld_cache_matches(entry, obj.machine, obj.elfclass):
                return entry.path
        for directory in self.search.default_dirs(obj.machine, obj.elfclass):
            candidate = os.path.join(directory, name)
            if self.is_file(candidate):
                return candidate
        return None


def scan(roots: Sequence[str], search: SearchPath) -> LibraryScan:
    """Parse every ``*.so``/``*.so.N`` under ``roots`` and resolve what each one needs."""
    found = _collect(roots)
    real_roots = [os.path.realpath(root) for root in roots]
    resolver = _Resolver(search)
    unresolved: dict[str, set[str]] = {}
    system: dict[str, str] = {}
    for relative, directory, obj in found.objects:
        for name in obj.needed:
            path = resolver.resolve(name, obj, directory)
            if path is None:
                unresolved.setdefault(name, set()).add(relative)
            elif name not in system and not _inside(path, real_roots):
                system[name] = path
    return LibraryScan(
        roots=tuple(roots),
        scanned=len(found.objects),
        unresolved=tuple(
            NeededLibrary(soname, _status(soname, found.provided), tuple(sorted(needers)))
            for soname, needers in sorted(unresolved.items())
        ),
        system=dict(sorted(system.items())),
        skipped=tuple(found.skipped),
    )


@dataclass
class _Found:
    objects: list[tuple[str, str, ElfObject]] = field(default_factory=list)  # (rel, dir, obj)
    skipped: list[SkippedFile] = field(default_factory=list)
    provided: set[str] = field(default_factory=set)  # file names and sonames inside the roots


def _collect(roots: Sequence[str]) -> _Found:
    found = _Found()
    seen: set[tuple[int, int]] = set()  # (device, inode): hard links and repeated roots
    for root in roots:
        for directory, subdirs, files in os.walk(root):
            subdirs.sort()
            for name in sorted(files):
                if not _SHARED_OBJECT.search(name):
                    continue
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, root)
                found.provided.add(name)
                if os.path.islink(path):  # its target is scanned under its own name
                    continue
                try:
                    stat = os.stat(path)
                except OSError as exc:
                    found.skipped.append(SkippedFile(relative, f"cannot stat: {exc.strerror}"))
                    continue
                if (stat.st_dev, stat.st_ino) in seen:
                    continue
                seen.add((stat.st_dev, stat.st_ino))
                result = read_dynamic(path)
                if isinstance(result, str):
                    found.skipped.append(SkippedFile(relative, result))
                    continue
                if result.soname:
                    found.provided.add(result.soname)
                found.objects.append((relative, directory, result))
    return found


def _status(soname: str, provided: set[str]) -> LibraryStatus:
    if is_driver_library(soname):
        return LibraryStatus.driver
    return LibraryStatus.bundled if soname in provided else LibraryStatus.missing


def _inside(path: str, real_roots: Sequence[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == root or real.startswith(root + os.sep) for root in real_roots)

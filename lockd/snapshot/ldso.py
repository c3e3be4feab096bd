"""The dynamic loader's search rules (glibc ``ld.so``), applied inside a file-system view.

For a ``DT_NEEDED`` name without a slash, ``ld.so`` tries in order: the
``DT_RPATH`` of the object and of every object that loaded it (only while
none of them has ``DT_RUNPATH``, which disables ``DT_RPATH``), then
``LD_LIBRARY_PATH``, the object's own ``DT_RUNPATH`` (``$ORIGIN`` expanded),
the ``ld.so`` cache (``/etc/ld.so.cache``, written by ``ldconfig`` from
``/etc/ld.so.conf``), and the default directories. A file of another ELF
class or machine is skipped and the search goes on, as ``ld.so`` does.

The cache comes from ``ldconfig -p`` on this host, else from the view's own
``/etc/ld.so.cache`` (read, not executed), else — a tree without a cache —
from the directories its ``ld.so.conf`` names. Not modelled: the
executable's own ``DT_RPATH``, ``glibc-hwcaps`` preferences, ``$LIB`` and
``$PLATFORM`` (left unexpanded, so they resolve nothing: the conservative
answer) and ``DF_1_NODEFLIB``.
"""

from __future__ import annotations

import fnmatch
import posixpath
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from .elf import ElfObject, machine_of
from .filesystem import FileSystem
from .model import LdCacheEntry
from .parse import expand_search_path, ld_cache_matches

LD_SO_CACHE = "/etc/ld.so.cache"
LD_SO_CONF = "/etc/ld.so.conf"
_CACHE_LIMIT = 64 << 20  # a real cache is tens of kilobytes
_CONF_LIMIT = 1 << 20
_INCLUDE_DEPTH = 8

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
    """Where the dynamic loader looks, besides each object's own RPATH/RUNPATH.

    ``conf_dirs`` stand in for the cache when the view has none (what
    ``ldconfig`` would have cached); ``source`` says where the cache came from.
    """

    ld_library_path: tuple[str, ...] = ()
    cache: tuple[LdCacheEntry, ...] = ()
    conf_dirs: tuple[str, ...] = ()
    source: str = ""

    @staticmethod
    def default_dirs(machine: str, elfclass: int) -> tuple[str, ...]:
        dirs = []
        triplet = _MULTIARCH.get((machine, elfclass))
        if triplet:
            dirs += [f"/lib/{triplet}", f"/usr/lib/{triplet}"]
        if elfclass == 64:
            dirs += ["/lib64", "/usr/lib64"]
        return (*dirs, "/lib", "/usr/lib")


def search_path(
    view: FileSystem,
    environ: Mapping[str, str],
    cache: Sequence[LdCacheEntry] | None = None,
) -> SearchPath:
    """The search path of an environment: ``LD_LIBRARY_PATH`` from ``environ``, the cache.

    ``cache`` is what ``ldconfig -p`` printed on this host; without it the view's
    ``/etc/ld.so.cache`` is parsed, and without that its ``/etc/ld.so.conf``.
    """
    # ld.so splits LD_LIBRARY_PATH on ':' and ';'; an empty entry (the cwd) means nothing here.
    raw = environ.get("LD_LIBRARY_PATH", "").replace(";", ":")
    library_path = tuple(p for p in raw.split(":") if p)
    if cache is not None:
        return SearchPath(library_path, tuple(cache), source="ldconfig -p")
    try:
        entries = parse_ld_so_cache(view.read_bytes(LD_SO_CACHE, _CACHE_LIMIT))
    except OSError:
        entries = None
    if entries is not None:
        return SearchPath(library_path, entries, source=LD_SO_CACHE)
    dirs = tuple(_conf_dirs(view, LD_SO_CONF, set(), 0))
    return SearchPath(library_path, conf_dirs=dirs, source=f"{LD_SO_CONF} (no cache)")


# -- /etc/ld.so.cache --------------------------------------------------------------------------

_OLD_MAGIC = b"ld.so-1.7.0"
_NEW_MAGIC = b"glibc-ld.so.cache1.1"
_NEW_HEADER = struct.Struct("<20sII")  # magic+version, nlibs, len_strings (then flags, ext, pad)
_NEW_HEADER_SIZE = 48
_NEW_ENTRY = struct.Struct("<iIIIQ")  # flags, key, value, osversion, hwcap
_OLD_ENTRY = struct.Struct("<iII")
_TYPES = {1: "ELF", 2: "libc5", 3: "libc6"}
# glibc's FLAG_*_LIB64 & co, spelled as `ldconfig -p` prints them.
_ARCHES = {
    0x0100: "64bit",
    0x0200: "IA-64",
    0x0300: "x86-64",
    0x0400: "64bit",
    0x0500: "64bit",
    0x0600: "N32",
    0x0700: "64bit",
    0x0800: "x32",
    0x0900: "hard-float",
    0x0A00: "AArch64",
    0x0B00: "soft-float",
    0x0C00: "nan2008",
    0x0D00: "N32,nan2008",
    0x0E00: "64bit,nan2008",
    0x0F00: "soft-float",
    0x1000: "double-float",
}


def parse_ld_so_cache(data: bytes) -> tuple[LdCacheEntry, ...] | None:
    """The entries of an ``ld.so.cache`` file (as ``ldconfig -p`` lists them), or ``None``.

    Both layouts glibc writes are read: the new format alone (glibc 2.32+), or
    after the old one. String offsets of the new format count from its header.
    Anything truncated or inconsistent answers ``None``: the file is not used.
    """
    try:
        if data.startswith(_NEW_MAGIC):
            return _new_entries(data, 0)
        if not data.startswith(_OLD_MAGIC):
            return None
        (count,) = struct.unpack_from("<I", data, 12)
        old_end = 16 + count * _OLD_ENTRY.size
        new_start = (old_end + 7) & ~7
        if data[new_start : new_start + len(_NEW_MAGIC)] == _NEW_MAGIC:
            return _new_entries(data, new_start)
        entries = []
        for index in range(count):
            flags, key, value = _OLD_ENTRY.unpack_from(data, 16 + index * _OLD_ENTRY.size)
            entries.append(
                LdCacheEntry(
                    _string(data, old_end + key), _flags(flags), _string(data, old_end + value)
                )
            )
        return tuple(entries)
    except (struct.error, ValueError, UnicodeDecodeError):
        return None


def _new_entries(data: bytes, start: int) -> tuple[LdCacheEntry, ...]:
    _, count, _ = _NEW_HEADER.unpack_from(data, start)
    if start + _NEW_HEADER_SIZE + count * _NEW_ENTRY.size > len(data):
        raise ValueError("truncated")
    entries = []
    for index in range(count):
        flags, key, value, osversion, hwcap = _NEW_ENTRY.unpack_from(
            data, start + _NEW_HEADER_SIZE + index * _NEW_ENTRY.size
        )
        text = _flags(flags)
        if osversion:
            text += ", OS ABI: {} {}.{}.{}".format(
                "Linux" if osversion >> 24 == 0 else f"OS {osversion >> 24}",
                (osversion >> 16) & 0xFF,
                (osversion >> 8) & 0xFF,
                osversion & 0xFF,
            )
        if hwcap:
            text += f", hwcap: 0x{hwcap:016x}"
        entries.append(LdCacheEntry(_string(data, start + key), text, _string(data, start + value)))
    return tuple(entries)


def _flags(flags: int) -> str:
    parts = [_TYPES.get(flags & 0xFF, "unknown")]
    arch = _ARCHES.get(flags & 0xFF00)
    if arch:
        parts.append(arch)
    return ",".join(parts)


def _string(data: bytes, offset: int) -> str:
    end = data.index(b"\0", offset)
    if offset < 0 or end - offset > 4096:
        raise ValueError("bad string offset")
    return data[offset:end].decode()


# -- /etc/ld.so.conf ---------------------------------------------------------------------------


def parse_ld_so_conf(text: str) -> tuple[list[str], list[str]]:
    """``(directories, include patterns)`` of one ``ld.so.conf`` file, in order.

    One directory per line (an old ``=TYPE`` suffix dropped), ``include``
    lines with one or more glob patterns, ``#`` comments; ``hwcap`` lines are
    ignored as ``ldconfig`` does.
    """
    dirs: list[str] = []
    includes: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "include" and rest.strip():
            includes += rest.split()
        elif keyword != "hwcap":
            dirs.append(line.split("=", 1)[0].strip())
    return dirs, includes


def _conf_dirs(view: FileSystem, path: str, seen: set[str], depth: int) -> Iterator[str]:
    if path in seen or depth > _INCLUDE_DEPTH:
        return
    seen.add(path)
    try:
        text = view.read_bytes(path, _CONF_LIMIT).decode("utf-8", "replace")
    except OSError:
        return
    dirs, includes = parse_ld_so_conf(text)
    yield from (d for d in dirs if d.startswith("/"))
    for pattern in includes:
        absolute = posixpath.join(posixpath.dirname(path), pattern)
        directory, name = posixpath.split(absolute)
        matches = (
            sorted(
                posixpath.join(directory, e.name)
                for e in view.entries(directory)
                if fnmatch.fnmatchcase(e.name, name)
            )
            if any(c in name for c in "*?[")
            else [absolute]
        )
        for match in matches:
            yield from _conf_dirs(view, match, seen, depth + 1)


# -- resolution --------------------------------------------------------------------------------

# The DT_RPATH of each object up the loading chain, with the directory its $ORIGIN stands for.
Inherited = tuple[tuple[str, str], ...]


@dataclass
class Loader:
    """Finds the file ``ld.so`` would open for a ``DT_NEEDED`` entry (answers cached)."""

    view: FileSystem
    search: SearchPath
    _usable: dict[tuple[str, str, int], bool] = field(default_factory=dict)
    _cache: dict[str, list[LdCacheEntry]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for entry in self.search.cache:
            self._cache.setdefault(entry.soname, []).append(entry)

    def find(self, name: str, obj: ElfObject, origin: str, inherited: Inherited = ()) -> str | None:
        """The path of ``name`` needed by ``obj`` (found in directory ``origin``), or ``None``."""
        if "/" in name:  # a path: used as it is (a relative one depends on the process's cwd)
            return name if name.startswith("/") and self._fits(name, obj) else None
        for directory in self._dirs(obj, origin, inherited):
            candidate = posixpath.join(directory, name)
            if self._fits(candidate, obj):
                return candidate
        for entry in self._cache.get(name, ()):
            if ld_cache_matches(entry, obj.machine, obj.elfclass) and self._fits(entry.path, obj):
                return entry.path
        defaults = SearchPath.default_dirs(obj.machine, obj.elfclass)
        for directory in (*self.search.conf_dirs, *defaults):
            candidate = posixpath.join(directory, name)
            if self._fits(candidate, obj):
                return candidate
        return None

    def _dirs(self, obj: ElfObject, origin: str, inherited: Inherited) -> list[str]:
        dirs: list[str] = []
        if obj.runpath is None:
            if obj.rpath:
                dirs += expand_search_path(obj.rpath, origin)
            for rpath, loader_origin in inherited:
                dirs += expand_search_path(rpath, loader_origin)
        dirs += self.search.ld_library_path
        if obj.runpath:
            dirs += expand_search_path(obj.runpath, origin)
        return [posixpath.normpath(d) for d in dirs if d.startswith("/")]

    def _fits(self, path: str, obj: ElfObject) -> bool:
        """An ELF file of the object's machine and class (ld.so skips others and goes on)."""
        key = (path, obj.machine, obj.elfclass)
        known = self._usable.get(key)
        if known is None:
            known = self.view.is_file(path) and machine_of(self.view, path) == (
                obj.machine,
                obj.elfclass,
            )
            self._usable[key] = known
        return known


__all__ = [
    "LD_SO_CACHE",
    "LD_SO_CONF",
    "Inherited",
    "Loader",
    "SearchPath",
    "parse_ld_so_cache",
    "parse_ld_so_conf",
    "search_path",
]

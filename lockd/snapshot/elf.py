"""Reading ELF files: the dynamic section, exported symbols, the machine they run on.

Files that are not ELF or cannot be parsed are answered with a short reason:
a scanner that crashes on one odd file tells nothing about the other thousand.
Files are read through a :class:`~lockd.snapshot.filesystem.FileSystem`
view, never by host path, so the same code reads this machine and an image.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, BinaryIO

from .filesystem import FileSystem

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile

ELF_MAGIC = b"\x7fELF"
_STRING_TAGS = {
    "DT_NEEDED": "needed",
    "DT_RUNPATH": "runpath",
    "DT_RPATH": "rpath",
    "DT_SONAME": "soname",
}
# Names the dynamic loader can be handed: libfoo.so, libfoo.so.1, libfoo.so.1.2.3.
SHARED_OBJECT = re.compile(r"\.so(?:\.\d[\w.]*)?$")
# The suffixes CPython (and PyPy) import extension modules with; a plain ".so" also imports.
_EXTENSION = re.compile(
    r"^(?P<stem>[^.]+)(?P<tag>\.cpython-3\d+[a-z]*-[^./]+|\.abi3|\.pypy3\d*-pp\d+-[^./]+)?\.so$"
)


@dataclass(frozen=True, slots=True)
class ElfObject:
    """The dynamic section of one ELF file (and which of the symbols asked for it defines)."""

    machine: str  # "EM_X86_64"
    elfclass: int  # 32 or 64
    needed: tuple[str, ...]
    rpath: str | None
    runpath: str | None
    soname: str | None
    defines: tuple[str, ...] = ()

    @property
    def search_rpath(self) -> str | None:
        """The DT_RPATH ``ld.so`` uses: none when DT_RUNPATH is present (glibc ignores it)."""
        return None if self.runpath is not None else self.rpath


def read_dynamic(view: FileSystem, path: str, symbols: Sequence[str] = ()) -> ElfObject | str:
    """The dynamic section of ``path`` in ``view``, or why it cannot be read (a short reason).

    ``symbols`` are looked up in the dynamic symbol table (through the hash
    table, not a scan of every symbol); the defined ones end up in ``defines``.
    A dynamic section the view read beforehand (:meth:`FileSystem.dynamic`) is
    taken as it is: it defines no symbols.
    """
    early = view.dynamic(path)
    if early is not None:
        return early
    try:
        with view.open(path) as handle:
            if handle.read(4) != ELF_MAGIC:
                return "not an ELF file"
            handle.seek(0)
            return _parse(handle, symbols)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"


def machine_of(view: FileSystem, path: str) -> tuple[str, int] | None:
    """``(machine, elfclass)`` from the ELF header of ``path``; ``None`` if it is not ELF.

    Reads 20 bytes: the loader rejects an object of another class or machine and
    goes on searching, so a candidate is checked before it counts as found.
    """
    early = view.dynamic(path)
    if early is not None:
        return (early.machine, early.elfclass) if isinstance(early, ElfObject) else None
    try:
        header = view.read_bytes(path, 20)
    except OSError:
        return None
    if len(header) < 20 or not header.startswith(ELF_MAGIC) or header[4] not in (1, 2):
        return None
    (number,) = struct.unpack_from("<H" if header[5] == 1 else ">H", header, 18)
    return _machine_name(number), 32 if header[4] == 1 else 64


def importable_module(relative: str) -> tuple[str, bool] | None:
    """``(module name, tagged)`` if Python could import ``relative`` as an extension module.

    ``relative`` is the path below a ``sys.path`` entry. The file name must
    carry an extension-module suffix (``tagged``: ``.cpython-311-x86_64-linux-gnu.so``,
    ``.abi3.so``; or a plain ``.so``, which imports only if it defines
    ``PyInit_<name>``) and every directory on the way must be a package name:
    ``nvidia/cu13/lib/libcufile_rdma.so.1`` or ``pkg.libs/x.so`` never are.
    """
    *dirs, name = relative.split("/")
    match = _EXTENSION.match(name)
    if match is None or not all(d.isidentifier() for d in dirs):
        return None
    stem = match["stem"]
    return (stem, match["tag"] is not None) if stem.isidentifier() else None


def _parse(handle: BinaryIO, symbols: Sequence[str]) -> ElfObject | str:
    from elftools.elf.dynamic import DynamicSection, DynamicSegment
    from elftools.elf.elffile import ELFFile

    # pyelftools raises a zoo of exceptions on malformed input (ELFError, struct.error,
    # construct errors, UnicodeDecodeError, …). One bad file must not stop the scan.
    try:
        elf = ELFFile(handle)
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
            defines=tuple(name for name in symbols if _defines(elf, dynamic, name)),
        )
    except Exception as exc:  # see above
        return f"cannot parse ELF: {type(exc).__name__}: {exc}"[:300]


def _defines(elf: ELFFile, dynamic: object, name: str) -> bool:
    """Whether the dynamic symbol table defines ``name`` (hash-table lookup when there is one)."""
    from elftools.elf.dynamic import DynamicSegment
    from elftools.elf.hash import ELFHashSection, GNUHashSection
    from elftools.elf.sections import SymbolTableSection

    table = elf.get_section_by_name(".gnu.hash") or elf.get_section_by_name(".hash")
    if isinstance(table, GNUHashSection | ELFHashSection):
        found = table.get_symbol(name)
        candidates = [found] if found is not None else []
    else:
        dynsym = elf.get_section_by_name(".dynsym")
        source = dynsym if isinstance(dynsym, SymbolTableSection) else dynamic
        by_name = (
            source.get_symbol_by_name(name)
            if isinstance(source, SymbolTableSection | DynamicSegment)
            else None
        )
        candidates = list(by_name or ())
    return any(symbol["st_shndx"] != "SHN_UNDEF" for symbol in candidates)


@cache
def _machine_name(number: int) -> str:
    from elftools.elf.enums import ENUM_E_MACHINE

    names = {value: name for name, value in ENUM_E_MACHINE.items() if isinstance(value, int)}
    return str(names.get(number, f"EM_{number}"))


__all__ = [
    "ELF_MAGIC",
    "SHARED_OBJECT",
    "ElfObject",
    "importable_module",
    "machine_of",
    "read_dynamic",
]

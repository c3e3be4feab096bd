"""The dynamic section of an ELF file read from a forward-only stream (a tar member).

pyelftools needs to seek (section headers sit at the end of the file); a layer
is read once, front to back. The dynamic loader itself needs only the program
headers: ``PT_DYNAMIC`` gives the dynamic entries, ``PT_LOAD`` maps
``DT_STRTAB``'s address to a file offset. The bytes before the dynamic
segment are kept (up to :data:`KEEP`), because the string table usually lies
there; a string table further out is read when the stream reaches it, and one
that lies beyond the kept bytes behind is reported as unreadable.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

from lockd.snapshot.elf import ELF_MAGIC, ElfObject

KEEP = 64 << 20
_HEADER = 64
_STRINGS_SPAN = 64 << 20
_LONGEST_STRING = 4096  # sonames and run paths are short; PATH_MAX bounds them

_PT_LOAD, _PT_DYNAMIC = 1, 2
_DT_NULL, _DT_NEEDED, _DT_STRTAB, _DT_SONAME, _DT_RPATH, _DT_RUNPATH = 0, 1, 5, 14, 15, 29
_TYPES = {2: "ET_EXEC", 3: "ET_DYN"}
# e_machine values lockd's search-path rules know (elf.h), named as pyelftools names them.
MACHINES = {
    3: "EM_386",
    20: "EM_PPC",
    21: "EM_PPC64",
    22: "EM_S390",
    40: "EM_ARM",
    62: "EM_X86_64",
    183: "EM_AARCH64",
    243: "EM_RISCV",
}


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Cursor:
    """Forward-only reads that keep what was read, up to a bound."""

    def __init__(self, stream: Readable, size: int) -> None:
        self.stream = stream
        self.size = size
        self.kept = bytearray()
        self.position = 0

    def fill_to(self, offset: int) -> bool:
        """Keep the bytes up to ``offset`` (or the end of the file); ``False`` if cut short."""
        target = min(offset, self.size)
        while self.position < target:
            chunk = self.stream.read(min(1 << 20, target - self.position))
            if not chunk:
                return False
            self.kept += chunk
            self.position += len(chunk)
        return True

    def read_at(self, offset: int, length: int) -> bytes | None:
        """Bytes at ``offset`` (fewer at the end of the file); ``None`` when passed by."""
        end = min(offset + length, self.size)
        if end <= len(self.kept):
            return bytes(self.kept[offset:end])
        if self.position == len(self.kept) and end <= KEEP:
            return bytes(self.kept[offset:end]) if self.fill_to(end) else None
        if offset < self.position:
            return None  # behind the stream and not kept
        skip = offset - self.position
        while skip:
            chunk = self.stream.read(min(1 << 20, skip))
            if not chunk:
                return None
            skip -= len(chunk)
            self.position += len(chunk)
        data = self.stream.read(end - offset)
        self.position += len(data)
        return data if len(data) == end - offset else None


@dataclass(frozen=True, slots=True)
class _Header:
    elfclass: int
    order: str  # struct byte order
    machine: str
    phoff: int
    phentsize: int
    phnum: int

    @property
    def word(self) -> str:
        return "Q" if self.elfclass == 64 else "I"


def read_dynamic_stream(stream: Readable, size: int) -> ElfObject | str:
    """Like :func:`lockd.snapshot.elf.read_dynamic`, from a stream of ``size`` bytes."""
    cursor = _Cursor(stream, size)
    header = _header(cursor)
    segments = header if isinstance(header, str) else _segments(cursor, header)
    if isinstance(segments, str) or isinstance(header, str):
        return str(segments)
    loads, dynamic = segments
    static = ElfObject(header.machine, header.elfclass, (), None, None, None)
    if dynamic is None:
        return static  # statically linked: needs nothing
    offset, length = dynamic
    cursor.fill_to(min(offset, KEEP))
    raw = cursor.read_at(offset, min(length, 1 << 20))
    if raw is None:
        return "truncated dynamic section"
    strings: dict[int, list[int]] = {}
    strtab: int | None = None
    entry = header.order + header.word * 2
    whole = len(raw) - len(raw) % struct.calcsize(entry)
    for tag, value in struct.iter_unpack(entry, raw[:whole]):
        if tag == _DT_NULL:
            break
        if tag == _DT_STRTAB:
            strtab = value
        elif tag in (_DT_NEEDED, _DT_SONAME, _DT_RPATH, _DT_RUNPATH):
            strings.setdefault(tag, []).append(value)
    if not strings:
        return static
    table = _file_offset(strtab, loads) if strtab is not None else None
    if table is None:
        return "dynamic string table outside the file"
    return _object(cursor, header, table, strings)


def _header(cursor: _Cursor) -> _Header | str:
    cursor.fill_to(_HEADER)
    head = bytes(cursor.kept[:_HEADER])
    if head[:4] != ELF_MAGIC:
        return "not an ELF file"
    elfclass = {1: 32, 2: 64}.get(head[4])
    order = {1: "<", 2: ">"}.get(head[5])
    if elfclass is None or order is None or len(head) < (52 if elfclass == 32 else 64):
        return "truncated ELF header"
    e_type, e_machine = struct.unpack_from(order + "HH", head, 16)
    if e_type not in _TYPES:
        return f"not a shared object (type {e_type})"
    if elfclass == 64:
        (phoff,) = struct.unpack_from(order + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
    else:
        (phoff,) = struct.unpack_from(order + "I", head, 28)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 42)
    machine = MACHINES.get(e_machine, f"EM_{e_machine}")
    return _Header(elfclass, order, machine, phoff, phentsize, phnum)


def _segments(
    cursor: _Cursor, header: _Header
) -> tuple[list[tuple[int, int, int]], tuple[int, int] | None] | str:
    """(PT_LOAD (vaddr, offset, filesz) entries, PT_DYNAMIC (offset, filesz) or None)."""
    ph_format = header.order + ("IIQQQQQQ" if header.elfclass == 64 else "IIIIIIII")
    if not 0 < header.phnum <= 4096 or header.phentsize < struct.calcsize(ph_format):
        return "no program headers"
    table = cursor.read_at(header.phoff, header.phentsize * header.phnum)
    if table is None or len(table) < header.phentsize * header.phnum:
        return "truncated program headers"
    loads: list[tuple[int, int, int]] = []
    dynamic: tuple[int, int] | None = None
    for i in range(header.phnum):
        fields = struct.unpack_from(ph_format, table, i * header.phentsize)
        if header.elfclass == 64:
            p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = fields[:6]
        else:
            p_type, p_offset, p_vaddr, _paddr, p_filesz = fields[:5]
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == _PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
    return loads, dynamic


def _file_offset(address: int, loads: list[tuple[int, int, int]]) -> int | None:
    for vaddr, offset, filesz in loads:
        if vaddr <= address < vaddr + filesz:
            return offset + address - vaddr
    return None


def _object(
    cursor: _Cursor, header: _Header, table: int, strings: dict[int, list[int]]
) -> ElfObject | str:
    offsets = {o for values in strings.values() for o in values}
    first, last = table + min(offsets), table + max(offsets)
    if last - first > _STRINGS_SPAN:
        return "dynamic strings too far apart"
    # One read covers every string: the stream moves forward only.
    span = cursor.read_at(first, last - first + _LONGEST_STRING)
    if span is None:
        return "dynamic string table not readable from the stream"

    def values(tag: int) -> list[str]:
        found = []
        for offset in strings.get(tag, ()):
            start = table + offset - first
            end = span.find(b"\0", start)
            found.append(span[start : end if end >= 0 else len(span)].decode("utf-8", "replace"))
        return found

    rpath, runpath, soname = values(_DT_RPATH), values(_DT_RUNPATH), values(_DT_SONAME)
    return ElfObject(
        machine=header.machine,
        elfclass=header.elfclass,
        needed=tuple(values(_DT_NEEDED)),
        rpath=":".join(rpath) if rpath else None,
        runpath=":".join(runpath) if runpath else None,
        soname=soname[0] if soname else None,
    )

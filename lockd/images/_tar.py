"""A forward-only tar reader for layer streams: headers parsed, data read or skipped once.

``tarfile`` in stream mode copies its whole read buffer on every header read
(quadratic in the buffer size) and keeps every header it has seen; a layer of
100,000 files and gigabytes of libraries needs neither. This reader handles
what image layers contain: ustar and GNU headers, base-256 sizes, pax
extended headers (``path``, ``linkpath``, ``size``) and GNU long names. A pax
or long-name payload larger than :data:`MAX_HEADER` is refused (it would be
held in memory), and so is a header whose checksum is wrong.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from zlib import adler32

from lockd.errors import ImageError

BLOCK = 512
MAX_HEADER = 1 << 20

REGULAR = frozenset(b"07\0S")  # S: GNU sparse, read as the bytes it stores
HARDLINK, SYMLINK, DIRECTORY = ord("1"), ord("2"), ord("5")
_PAX, _PAX_GLOBAL, _LONGNAME, _LONGLINK = ord("x"), ord("g"), ord("L"), ord("K")
_EXTENSIONS = frozenset((_PAX, _PAX_GLOBAL, _LONGNAME, _LONGLINK))
_NO_DATA = frozenset((HARDLINK, SYMLINK, DIRECTORY, *b"3456"))  # only their header
_ZEROS = bytes(BLOCK)
# name, mode, size, checksum, typeflag, linkname, magic, prefix (uid, gid, mtime, version,
# owner names and device numbers are not read)
_FIELDS = struct.Struct("100s8s16x12s12x8sB100s6s82x155s12x")


@dataclass(slots=True)
class Member:
    name: str
    type: int  # the typeflag byte
    size: int
    mode: int
    linkname: str

    @property
    def is_file(self) -> bool:
        return self.type in REGULAR

    @property
    def is_dir(self) -> bool:
        return self.type == DIRECTORY


class TarStream:
    """Iterate a tar's members; read the current member's data with :meth:`read`.

    The tar comes as pieces of any size (a layer's decompressed chunks); data
    that is skipped is never copied, only counted.
    """

    def __init__(self, chunks: Iterator[bytes], what: str) -> None:
        self._chunks = chunks
        self._chunk = b""  # the current piece, read up to _at
        self._at = 0
        self._what = what
        self._left = 0  # data bytes of the current member not read yet
        self._padding = 0

    def read(self, size: int = -1) -> bytes:
        """Data of the current member (at most what is left of it)."""
        size = self._left if size < 0 else min(size, self._left)
        data = self._take(size)
        if len(data) < size:
            raise self._error("the archive ends inside a file")
        self._left -= size
        return data

    def members(self) -> Iterator[Member]:
        """Each member in order; what follows the end marker is left to the chunks' owner
        (it checks its digests over those bytes too)."""
        pax: dict[str, str] = {}
        global_pax: dict[str, str] = {}
        long_name = long_link = None
        while True:
            self._skip_rest()
            block = self._take(BLOCK)
            if len(block) < BLOCK:
                if not block:
                    return  # no end-of-archive marker: tolerated, as tar does
                raise self._error("the archive ends inside a header")
            if block == _ZEROS:
                return
            header = self._header(block)
            kind = header.type
            if kind in _EXTENSIONS:
                payload = self._payload(header.size)
                if kind == _PAX:
                    pax.update(_pax_records(payload))
                elif kind == _PAX_GLOBAL:
                    global_pax.update(_pax_records(payload))
                elif kind == _LONGNAME:
                    long_name = _text(payload)
                else:
                    long_link = _text(payload)
                continue
            values = {**global_pax, **pax}
            header.name = values.get("path", long_name or header.name)
            header.linkname = values.get("linkpath", long_link or header.linkname)
            if "size" in values:
                header.size = _pax_size(values["size"], self._what)
            pax, long_name, long_link = {}, None, None
            self._left = header.size if kind not in _NO_DATA else 0
            self._padding = -self._left % BLOCK
            yield header

    def _take(self, size: int) -> bytes:
        """The next ``size`` bytes of the tar (fewer only where it ends)."""
        chunk, at = self._chunk, self._at
        if len(chunk) - at >= size:
            self._at = at + size
            return chunk[at : at + size]
        parts = [chunk[at:]]
        need = size - len(parts[0])
        self._chunk, self._at = b"", 0
        while need:
            piece = next(self._chunks, None)
            if piece is None:
                break
            if len(piece) > need:
                self._chunk, self._at = piece, need
                piece = piece[:need]
            parts.append(piece)
            need -= len(piece)
        return b"".join(parts)

    def _skip_rest(self) -> None:
        """Pass over what is left of the current member's data and padding (no copy)."""
        left = self._left + self._padding
        self._left = self._padding = 0
        while True:
            ahead = len(self._chunk) - self._at
            if ahead >= left:
                self._at += left
                return
            left -= ahead
            chunk = next(self._chunks, None)
            if chunk is None:
                raise self._error("the archive ends inside a file")
            self._chunk, self._at = chunk, 0

    def _payload(self, size: int) -> bytes:
        if size > MAX_HEADER:
            raise ImageError(
                f"{self._what} holds a {size}-byte tar header (at most {MAX_HEADER} are read): "
                "the layer is malformed or hostile; nothing from the image was used."
            )
        data = self._take(size + (-size % BLOCK))
        if len(data) < size:
            raise self._error("the archive ends inside a header")
        return data[:size]

    def _header(self, block: bytes) -> Member:
        name, mode_field, size_field, stored, kind, link, magic, prefix = _FIELDS.unpack(block)
        # The checksum: every byte summed, its own field read as spaces. zlib's Adler-32
        # sums bytes in C; each half (at most 256 × 255) stays below its 65521 modulus.
        computed = (
            (adler32(block[:256], 0) & 0xFFFF)
            + (adler32(block[256:], 0) & 0xFFFF)
            - sum(stored)
            + 8 * 32
        )
        if _number(stored) != computed:
            raise self._error("a tar header has a wrong checksum")
        size = _number(size_field)
        mode = _number(mode_field)
        if size is None or size < 0 or mode is None:
            raise self._error("a tar header has an unreadable size or mode")
        path = _text(name)
        if prefix[0] and magic[:5] == b"ustar":
            path = _text(prefix) + "/" + path  # the ustar prefix field
        return Member(path, kind, size, mode, _text(link) if link[0] else "")

    def _error(self, why: str) -> ImageError:
        return ImageError(
            f"{self._what} is not a readable tar: {why}.",
            hint="The layer is corrupt or was not written by an image builder.",
        )


def _number(field: bytes) -> int | None:
    """A tar number: octal text, or GNU base-256 (high bit of the first byte set)."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field) - 8)) if field[0] & 0x40 else value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(payload: bytes) -> dict[str, str]:
    """``"%d %s=%s\\n"`` records; the length prefix counts the whole record."""
    records: dict[str, str] = {}
    position = 0
    while position < len(payload):
        space = payload.find(b" ", position)
        if space < 0:
            break
        try:
            length = int(payload[position:space])
        except ValueError:
            break
        record = payload[space + 1 : position + length - 1]
        key, sep, value = record.partition(b"=")
        if length <= 0 or not sep:
            break
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


def _pax_size(value: str, what: str) -> int:
    try:
        size = int(value)
    except ValueError:
        size = -1
    if size < 0:
        raise ImageError(f"{what} is not a readable tar: a pax header has a bad size.")
    return size

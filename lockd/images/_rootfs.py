"""An image's root file system, built in memory from its layers, read once each.

Layers apply lowest first, as a container runtime applies them: ``.wh.NAME``
deletes ``NAME`` from the layers below, ``.wh..wh..opq`` hides everything below
a directory, a later file replaces an earlier one. Nothing is written to disk:
each entry keeps its type, size, link target and the layer that made it, and
only the files a snapshot reads keep their bytes (``Wanted.CONTENT``) or their
ELF dynamic section (``Wanted.ELF``).

Paths are confined to the image root, the way ``chroot`` confines them: a
leading ``/`` is dropped, ``..`` never climbs above the root, symbolic links
(absolute ones included) resolve inside the image, and entries whose name
climbs out of the root, device nodes and FIFOs are skipped and counted in
``warnings``. Oversized tar headers (see ``_tar``), more than
:data:`MAX_ENTRIES` entries and more than :data:`MAX_KEPT` bytes of kept
metadata stop the read with an ``ImageError``. What this
cannot tell: whether a file would be readable by the image's user (modes and
owners are not evaluated).
"""

from __future__ import annotations

import errno
import io
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, BinaryIO

from lockd.errors import ImageError
from lockd.snapshot.elf import ElfObject
from lockd.snapshot.filesystem import DirEntry, EntryKind

from ._blobs import LayerStream
from ._elf import read_dynamic_stream
from ._tar import DIRECTORY, HARDLINK, REGULAR, SYMLINK, Member, TarStream

MAX_ENTRIES = 1_000_000  # CUDA images hold 50,000-200,000 files
MAX_KEPT = 256 << 20  # metadata bytes kept for the whole image
MAX_CONTENT = 64 << 20  # larger "metadata" files are not kept
_MAX_HOPS = 40  # symbolic links followed in one lookup, as Linux's ELOOP


class Wanted(Enum):
    CONTENT = "content"
    ELF = "elf"
    BOTH = "both"


Classifier = Callable[[str, int], Wanted | None]  # (path, size) -> what to keep


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str  # file | dir | symlink
    size: int  # bytes of a file (0 for a hard link's second name: the data is shared)
    layer: int
    target: str | None = None  # a symlink's target, as written
    content: bytes | None = None
    elf: ElfObject | str | None = None  # the dynamic section, or why it could not be read
    mode: int = 0


@dataclass(slots=True)
class LayerStats:
    """What one layer did to the file system."""

    index: int
    digest: str | None
    diff_id: str | None
    media_type: str
    compression: str = "none"
    compressed_size: int = 0
    size: int = 0  # uncompressed tar bytes
    files: int = 0
    added_bytes: int = 0  # file bytes this layer wrote
    removed_bytes: int = 0  # bytes of lower layers' files it deleted or replaced

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "digest": self.digest,
            "diff_id": self.diff_id,
            "media_type": self.media_type,
            "compression": self.compression,
            "compressed_size": self.compressed_size,
            "size": self.size,
            "files": self.files,
            "added_bytes": self.added_bytes,
            "removed_bytes": self.removed_bytes,
        }


@dataclass
class RootFs:
    """The merged file system of an image; paths are relative to its root (``usr/lib``)."""

    entries: dict[str, Entry] = field(default_factory=lambda: {"": Entry("dir", 0, -1)})
    children: dict[str, set[str]] = field(default_factory=lambda: {"": set()})
    layers: list[LayerStats] = field(default_factory=list)
    warnings: dict[str, int] = field(default_factory=dict)  # what was skipped, how often
    # Directory -> its real path, for the entries of a layer (most share their parent);
    # emptied whenever a symlink or a directory changes.
    _parents: dict[str, str] = field(default_factory=dict, repr=False)
    _kept: int = field(default=0, repr=False)

    # -- reading (the read-only file system a snapshot sees) -------------------------------

    def resolve(self, path: str, *, follow: bool = True) -> str | None:
        """The real path of ``path`` inside the image, symlinks followed and confined.

        ``None`` for a symlink loop. The result need not exist.
        """
        parts = deque(path.split("/"))
        resolved: list[str] = []
        hops = 0
        while parts:
            part = parts.popleft()
            if part in ("", "."):
                continue
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = "/".join([*resolved, part])
            entry = self.entries.get(candidate)
            if entry is not None and entry.kind == "symlink" and (parts or follow):
                hops += 1
                if hops > _MAX_HOPS:
                    return None
                target = entry.target or ""
                if target.startswith("/"):
                    resolved = []
                parts.extendleft(reversed(target.split("/")))
                continue
            resolved.append(part)
        return "/".join(resolved)

    def lookup(self, path: str) -> Entry | None:
        real = self.resolve(path)
        return self.entries.get(real) if real is not None else None

    def is_file(self, path: str) -> bool:
        entry = self.lookup(path)
        return entry is not None and entry.kind == "file"

    def is_dir(self, path: str) -> bool:
        entry = self.lookup(path)
        return entry is not None and entry.kind == "dir"

    def read_bytes(self, path: str) -> bytes | None:
        """The kept bytes of a file (``None``: absent, or not a file lockd keeps)."""
        entry = self.lookup(path)
        return entry.content if entry is not None and entry.kind == "file" else None

    def read_text(self, path: str) -> str | None:
        data = self.read_bytes(path)
        return data.decode("utf-8", "replace") if data is not None else None

    def dynamic(self, path: str) -> ElfObject | str | None:
        entry = self.lookup(path)
        return entry.elf if entry is not None and entry.kind == "file" else None

    def listdir(self, path: str) -> list[str]:
        real = self.resolve(path)
        return sorted(self.children.get(real, ())) if real is not None else []

    def files(self) -> Iterator[tuple[str, Entry]]:
        """Every regular file (real paths), in no particular order."""
        for path, entry in self.entries.items():
            if entry.kind == "file":
                yield path, entry

    # -- building ------------------------------------------------------------------------

    def apply(self, stream: LayerStream, stats: LayerStats, want: Classifier) -> None:
        """Apply one layer's tar, read from ``stream`` front to back."""
        tar = TarStream(stream.chunks(), stream.what)
        for member in tar.members():
            self._add(tar, member, stats, want)

    def _add(self, tar: TarStream, member: Member, stats: LayerStats, want: Classifier) -> None:
        name = _clean(member.name)
        if name is None:
            self._warn("entry outside the image root")
            return
        if not name:
            return  # the root itself
        head, _, base = name.rpartition("/")
        parent = self._parent(head, stats.index)
        if parent is None:
            self._warn("entry below a file or a symlink loop")
            return
        path = f"{parent}/{base}" if parent else base
        if base.startswith(".wh."):
            if base == ".wh..wh..opq":
                self._hide_lower(parent, stats)
            else:
                self._remove(f"{parent}/{base[4:]}" if parent else base[4:], stats, lower_only=True)
            return
        kind = member.type
        if kind in REGULAR:
            self._put(path, self._file(tar, member, path, stats.index, want), stats)
            stats.files += 1
            stats.added_bytes += member.size
        elif kind == DIRECTORY:
            self._put(path, Entry("dir", 0, stats.index, mode=member.mode), stats)
        elif kind == SYMLINK:
            self._put(path, Entry("symlink", 0, stats.index, target=member.linkname), stats)
        elif kind == HARDLINK:
            self._hard_link(path, member, stats)
        else:
            self._warn("device node or FIFO")

    def _file(
        self, tar: TarStream, member: Member, path: str, layer: int, want: Classifier
    ) -> Entry:
        wanted = want(path, member.size)
        content: bytes | None = None
        elf: ElfObject | str | None = None
        if wanted is Wanted.ELF:
            elf = read_dynamic_stream(tar, member.size)
        elif wanted is not None and member.size <= MAX_CONTENT:
            self._kept += member.size
            if self._kept > MAX_KEPT:
                raise ImageError(
                    f"The image holds more than {MAX_KEPT} bytes of package metadata; lockd "
                    "stops reading it.",
                    hint="Such an image is malformed or hostile.",
                )
            content = tar.read()
            if wanted is Wanted.BOTH:
                elf = read_dynamic_stream(io.BytesIO(content), member.size)
        return Entry("file", member.size, layer, content=content, elf=elf, mode=member.mode)

    def _hard_link(self, path: str, member: Member, stats: LayerStats) -> None:
        target = _clean(member.linkname)
        real = self.resolve(target, follow=False) if target else None
        entry = self.entries.get(real) if real is not None else None
        if entry is None or entry.kind != "file":
            self._warn("hard link to a missing or non-regular file, or outside the root")
            return
        # Same data under a second name: no bytes of its own.
        self._put(path, Entry("file", 0, stats.index, content=entry.content, elf=entry.elf), stats)
        stats.files += 1

    def _parent(self, head: str, layer: int) -> str | None:
        """The real directory ``head`` names, created (implicitly) where missing."""
        known = self._parents.get(head)
        if known is not None:
            return known
        real = self.resolve(head) if head else ""
        if real is None:
            return None
        built = ""
        for part in real.split("/") if real else ():
            built = f"{built}/{part}" if built else part
            entry = self.entries.get(built)
            if entry is None:
                self._link_child(built)
                self.entries[built] = Entry("dir", 0, layer)
                self.children[built] = set()
            elif entry.kind != "dir":
                return None
        self._parents[head] = real
        return real

    def _put(self, path: str, entry: Entry, stats: LayerStats) -> None:
        if entry.kind == "symlink":
            self._parents.clear()
        old = self.entries.get(path)
        if old is not None:
            if old.kind == "dir" and entry.kind == "dir":
                self.entries[path] = entry  # the same directory, declared again
                return
            self._remove(path, stats, lower_only=False)
        if len(self.entries) >= MAX_ENTRIES:
            raise ImageError(
                f"The image holds more than {MAX_ENTRIES} files; lockd stops reading it.",
                hint="Such an image is malformed or hostile.",
            )
        self._link_child(path)
        self.entries[path] = entry
        if entry.kind == "dir":
            self.children.setdefault(path, set())

    def _link_child(self, path: str) -> None:
        head, _, base = path.rpartition("/")
        self.children.setdefault(head, set()).add(base)

    def _remove(self, path: str, stats: LayerStats, *, lower_only: bool) -> None:
        entry = self.entries.get(path)
        if entry is None or (lower_only and entry.layer >= stats.index):
            return
        if entry.kind != "file":
            self._parents.clear()
        for child in list(self.children.get(path, ())):
            self._remove(f"{path}/{child}", stats, lower_only=False)
        self.children.pop(path, None)
        del self.entries[path]
        head, _, base = path.rpartition("/")
        self.children.get(head, set()).discard(base)
        if entry.kind == "file" and entry.layer < stats.index:
            stats.removed_bytes += entry.size  # wasted: shipped below, invisible above

    def _hide_lower(self, directory: str, stats: LayerStats) -> None:
        """An opaque directory: what lower layers put below it disappears."""
        for child in list(self.children.get(directory, ())):
            path = f"{directory}/{child}" if directory else child
            entry = self.entries[path]
            if entry.kind == "dir":
                self._hide_lower(path, stats)
            if entry.layer < stats.index and not self.children.get(path):
                self._remove(path, stats, lower_only=True)

    def _warn(self, what: str) -> None:
        self.warnings[what] = self.warnings.get(what, 0) + 1


_KINDS = {"file": EntryKind.file, "dir": EntryKind.dir, "symlink": EntryKind.link}


class RootFsView:
    """The image as the library closure's read-only file-system view (absolute paths).

    The same :class:`~lockd.snapshot.filesystem.FileSystem` the host scan
    uses, over the merged layers: only kept files can be opened, and the
    dynamic sections read from the layer streams come through the
    ``dynamic`` hook (the files are never on disk for pyelftools).
    """

    def __init__(self, rootfs: RootFs) -> None:
        self.rootfs = rootfs

    def realpath(self, path: str) -> str | None:
        real = self.rootfs.resolve(path)
        return None if real is None or real not in self.rootfs.entries else "/" + real

    def exists(self, path: str) -> bool:
        return self.rootfs.lookup(path) is not None

    def is_file(self, path: str) -> bool:
        return self.rootfs.is_file(path)

    def is_dir(self, path: str) -> bool:
        return self.rootfs.is_dir(path)

    def entries(self, path: str) -> list[DirEntry]:
        real = self.rootfs.resolve(path)
        if real is None:
            return []
        prefix = f"{real}/" if real else ""
        found = []
        for name in sorted(self.rootfs.children.get(real, ())):
            entry = self.rootfs.entries.get(prefix + name)
            found.append(DirEntry(name, _KINDS.get(entry.kind if entry else "", EntryKind.other)))
        return found

    def open(self, path: str) -> BinaryIO:
        return io.BytesIO(self.read_bytes(path, -1))

    def read_bytes(self, path: str, limit: int) -> bytes:
        data = self.rootfs.read_bytes(path)
        if data is None:
            raise FileNotFoundError(errno.ENOENT, "not a file the image reader keeps", path)
        return data if limit < 0 else data[:limit]

    def dynamic(self, path: str) -> ElfObject | str | None:
        return self.rootfs.dynamic(path)


def _clean(name: str) -> str | None:
    """A tar member name as a path below the root; ``None`` when it climbs out."""
    if "\0" in name:
        return None
    plain = name.strip("/")
    if "//" not in plain and not _DOTS.search(plain):
        return plain  # the common case: nothing to normalise
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


_DOTS = re.compile(r"(?:^|/)\.\.?(?:/|$)")

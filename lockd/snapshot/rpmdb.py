"""RPM's package database, read without ``rpm``: the SQLite backend and its header blobs.

RHEL/UBI 9, Rocky/Alma 9, Fedora 33+ and openSUSE keep installed packages in
``rpmdb.sqlite`` (``/var/lib/rpm``, or ``/usr/lib/sysimage/rpm`` on Fedora
36+ and RHEL 10): one table ``Packages(hnum, blob)`` whose blobs are RPM
headers — an index of ``(tag, type, offset, count)`` entries over a data
store. lockd reads NAME, EPOCH, VERSION, RELEASE and ARCH from each, as
``rpm -qa`` would list them. The Berkeley DB (RHEL 8 and older) and ndb
(older SUSE) backends are not read: :func:`absent` names them so the
snapshot says why no package list is given.

The database comes from an image or a host someone else built: every length
and offset is checked against the blob, the SQLite file is opened from memory
(nothing written), with ``trusted_schema`` off and a bounded amount of work.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterable

from .model import Available, Probe, RpmPackage, Unavailable

# Where the databases live, relative to the root (the second is the first's target on
# Fedora 36+, where /var/lib/rpm is a symlink to it).
SQLITE_PATHS = ("var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite")
_OTHER_BACKENDS = {
    "Packages": "Berkeley DB (RHEL/CentOS 8 and older)",
    "Packages.db": "ndb (SUSE)",
}
DIRECTORIES = ("var/lib/rpm", "usr/lib/sysimage/rpm")

_NAME, _VERSION, _RELEASE, _EPOCH, _ARCH = 1000, 1001, 1002, 1003, 1022
_INT32, _STRING, _I18NSTRING = 4, 6, 9
_MAX_INDEX = 0xFFFF  # rpm's own HEADER_TAGS_MAX
_MAX_DATA = 256 << 20  # rpm's HEADER_DATA_MAX
MAX_FILE = 64 << 20  # a full RHEL install's rpmdb.sqlite is 10-40 MiB
_MAX_PACKAGES = 200_000
_MAX_STEPS = 50_000_000  # SQLite virtual-machine steps (a few seconds at most)


class RpmDbError(ValueError):
    """The database or one of its headers is not what RPM writes."""


def probe(data: bytes, where: str) -> Probe[tuple[RpmPackage, ...]]:
    """The packages of one ``rpmdb.sqlite`` file's bytes (a host's or an image's), or why not."""
    if len(data) > MAX_FILE:
        return Unavailable(f"{where} is larger than {MAX_FILE >> 20} MiB; not read")
    try:
        return Available(read_sqlite(data))
    except RpmDbError as exc:
        return Unavailable(f"{where} is not an RPM database lockd can read: {exc}")


def absent(listed: Iterable[str]) -> Unavailable:
    """Why no package list is given, from the names in RPM's database directories."""
    present = set(listed)
    backend = next((what for file, what in _OTHER_BACKENDS.items() if file in present), None)
    if backend:
        return Unavailable(f"the RPM database is {backend}, which lockd does not read")
    return Unavailable("no RPM database (rpmdb.sqlite)")


def read_sqlite(data: bytes) -> tuple[RpmPackage, ...]:
    """Every package of an ``rpmdb.sqlite`` file's bytes, sorted by name then version."""
    if data[18:20] == b"\x02\x02":
        # rpm writes in WAL mode, which a database in memory cannot open; the header's two
        # format bytes say so. Reading it as a rollback-journal database changes nothing else
        # (a leftover -wal file, absent from images rpm closed, is not read).
        data = data[:18] + b"\x01\x01" + data[20:]
    connection = sqlite3.connect(":memory:")
    try:
        connection.deserialize(data)
        connection.execute("PRAGMA trusted_schema = OFF")
        connection.execute("PRAGMA query_only = ON")
        calls = iter(range(_MAX_STEPS // 1000))
        # Called every 1,000 steps; a non-zero answer interrupts the query.
        connection.set_progress_handler(lambda: next(calls, None) is None, 1000)
        kind = connection.execute(
            "SELECT type FROM sqlite_master WHERE name = 'Packages'"
        ).fetchone()
        if kind is None or kind[0] != "table":
            raise RpmDbError("it has no Packages table")
        packages = []
        for (blob,) in connection.execute("SELECT blob FROM Packages"):
            if not isinstance(blob, bytes):
                raise RpmDbError("a Packages row holds no header blob")
            packages.append(read_header(blob))
            if len(packages) > _MAX_PACKAGES:
                raise RpmDbError(f"it lists more than {_MAX_PACKAGES} packages")
    except sqlite3.Error as exc:
        raise RpmDbError(f"SQLite cannot read it ({exc})") from None
    finally:
        connection.close()
    return tuple(sorted(packages, key=lambda p: (p.name, p.version, p.architecture)))


def read_header(blob: bytes) -> RpmPackage:
    """One package from an RPM header blob (the database form: no lead, no magic)."""
    if len(blob) < 8:
        raise RpmDbError("a header is shorter than its own size fields")
    count, size = struct.unpack_from(">II", blob)
    store = 8 + 16 * count
    if count > _MAX_INDEX or size > _MAX_DATA or len(blob) < store + size:
        raise RpmDbError("a header's index or data is larger than the blob that holds it")
    tags: dict[int, tuple[int, int]] = {}
    for index in range(count):
        tag, kind, offset, _ = struct.unpack_from(">iiii", blob, 8 + 16 * index)
        if tag in (_NAME, _VERSION, _RELEASE, _EPOCH, _ARCH):
            if not 0 <= offset < size:
                raise RpmDbError(f"a header's tag {tag} points outside its data")
            tags[tag] = (kind, offset)

    def text(tag: int) -> str | None:
        found = tags.get(tag)
        if found is None or found[0] not in (_STRING, _I18NSTRING):
            return None
        start = store + found[1]
        end = blob.find(b"\0", start, store + size)
        if end < 0:
            raise RpmDbError(f"a header's tag {tag} has no end")
        return blob[start:end].decode("utf-8", "replace")

    name, version, release = text(_NAME), text(_VERSION), text(_RELEASE)
    if not name or version is None or release is None:
        raise RpmDbError("a header has no NAME, VERSION or RELEASE")
    epoch = None
    found = tags.get(_EPOCH)
    if found is not None and found[0] == _INT32:
        if found[1] + 4 > size:
            raise RpmDbError("a header's EPOCH points outside its data")
        (epoch,) = struct.unpack_from(">I", blob, store + found[1])
    full = f"{epoch}:{version}-{release}" if epoch else f"{version}-{release}"
    return RpmPackage(name, full, text(_ARCH) or "")

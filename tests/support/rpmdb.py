"""RPM databases for tests: header blobs built in code, and real ones made by ``rpm``.

``header`` writes the database form of an RPM header (index entries, then the
data store; strings NUL-terminated, INT32 big-endian and aligned) and
``sqlite_rpmdb`` puts headers in an ``rpmdb.sqlite`` laid out as rpm's SQLite
backend does. ``real_rpmdb`` builds empty packages with ``rpmbuild`` and
records them with ``rpm --justdb`` (Debian's ``rpm`` package; the test skips
without it), the cross-check that the hand-built form is RPM's.
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
import subprocess
from pathlib import Path

import pytest

NAME, VERSION, RELEASE, EPOCH, ARCH = 1000, 1001, 1002, 1003, 1022
INT32, STRING = 4, 6


def header(
    name: str, version: str, release: str, arch: str | None = "x86_64", epoch: int | None = None
) -> bytes:
    """The database form of an RPM header holding NAME, VERSION, RELEASE, EPOCH and ARCH."""
    entries: list[tuple[int, int, bytes]] = [
        (NAME, STRING, name.encode() + b"\0"),
        (VERSION, STRING, version.encode() + b"\0"),
        (RELEASE, STRING, release.encode() + b"\0"),
    ]
    if epoch is not None:
        entries.append((EPOCH, INT32, struct.pack(">I", epoch)))
    if arch is not None:
        entries.append((ARCH, STRING, arch.encode() + b"\0"))
    index, data = b"", b""
    for tag, kind, value in entries:
        if kind == INT32:
            data += b"\0" * (-len(data) % 4)
        index += struct.pack(">iiii", tag, kind, len(data), 1)
        data += value
    return struct.pack(">II", len(entries), len(data)) + index + data


def sqlite_rpmdb(blobs: list[bytes], *, wal: bool = True) -> bytes:
    """An ``rpmdb.sqlite`` file's bytes with one ``Packages`` row per blob."""
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB)")
    connection.executemany("INSERT INTO Packages (blob) VALUES (?)", [(b,) for b in blobs])
    connection.commit()
    data = connection.serialize()
    connection.close()
    # rpm keeps its database in WAL mode: the header's format bytes 18 and 19 are 2.
    return data[:18] + b"\x02\x02" + data[20:] if wal else data


def real_rpmdb(tmp_path: Path, packages: list[dict[str, str]]) -> Path:
    """An rpmdb.sqlite written by rpm itself, holding empty packages (``Name``, ``Version``…)."""
    if shutil.which("rpmbuild") is None or shutil.which("rpm") is None:
        pytest.skip("needs Debian's rpm package (scripts/test installs it)")
    top, db = tmp_path / "rpmbuild", tmp_path / "rpmdb"
    built = []
    for number, fields in enumerate(packages):
        spec = tmp_path / f"p{number}.spec"
        lines = [f"{key}: {value}" for key, value in fields.items()]
        spec.write_text(
            "\n".join([*lines, "Summary: test", "License: MIT", "%description", "test", "%files"])
            + "\n"
        )
        subprocess.run(
            ["rpmbuild", "-bb", "--quiet", "--define", f"_topdir {top}", str(spec)],
            check=True,
            capture_output=True,
        )
    built = sorted(str(p) for p in top.rglob("*.rpm"))
    subprocess.run(["rpm", "--initdb", "--dbpath", str(db)], check=True, capture_output=True)
    subprocess.run(
        ["rpm", "-i", "--justdb", "--nodeps", "--dbpath", str(db), *built],
        check=True,
        capture_output=True,
    )
    return db

"""RPM's SQLite database read without rpm: real databases, hand-built headers, hostile ones."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from lockd.snapshot import Available, RpmPackage, Unavailable, parse, rpmdb, system
from tests.support.rpmdb import header, real_rpmdb, sqlite_rpmdb


def test_a_database_written_by_rpm_reads_as_rpm_lists_it(tmp_path: Path) -> None:
    db = real_rpmdb(
        tmp_path,
        [
            {"Name": "glibc", "Version": "2.34", "Release": "100.el9"},
            {
                "Name": "python3-devel",
                "Version": "3.9.18",
                "Release": "1.el9",
                "Epoch": "2",
                "BuildArch": "noarch",
            },
        ],
    )
    listed = subprocess.run(
        [
            "rpm",
            "-qa",
            "--dbpath",
            str(db),
            "--qf",
            r"%{NAME} %{EPOCHNUM} %{VERSION}-%{RELEASE} %{ARCH}\n",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    expected = []
    for line in filter(None, listed):
        name, epoch, version, arch = line.split()
        expected.append(RpmPackage(name, f"{epoch}:{version}" if epoch != "0" else version, arch))

    packages = rpmdb.read_sqlite((db / "rpmdb.sqlite").read_bytes())

    assert list(packages) == sorted(expected, key=lambda p: p.name)
    assert [p.name for p in packages] == ["glibc", "python3-devel"]
    assert packages[1].version == "2:3.9.18-1.el9" and packages[1].architecture == "noarch"
    assert parse.glibc_from_packages(packages, "glibc") == "2.34"


def test_hand_built_headers() -> None:
    data = sqlite_rpmdb(
        [
            header("zlib", "1.2.11", "40.el9"),
            header("gpg-pubkey", "fd431d51", "4ae0493b", arch=None),
            header("shadow-utils", "4.9", "8.el9", epoch=2),
            header("glibc", "2.34", "100.el9", arch="i686"),
            header("glibc", "2.34", "100.el9"),
        ]
    )
    packages = rpmdb.read_sqlite(data)
    assert [(p.name, p.version, p.architecture) for p in packages] == [
        ("glibc", "2.34-100.el9", "i686"),
        ("glibc", "2.34-100.el9", "x86_64"),
        ("gpg-pubkey", "fd431d51-4ae0493b", ""),
        ("shadow-utils", "2:4.9-8.el9", "x86_64"),
        ("zlib", "1.2.11-40.el9", "x86_64"),
    ]
    assert rpmdb.read_sqlite(sqlite_rpmdb([header("a", "1", "1")], wal=False))[0].name == "a"


def _cut(blob: bytes, at: int) -> bytes:
    return blob[:at]


def _point_name_past_the_data(blob: bytes) -> bytes:
    return blob[:16] + (10_000).to_bytes(4, "big") + blob[20:]


def _no_terminator(blob: bytes) -> bytes:
    return blob[:-1] + b"x"  # RELEASE, the last string, runs to the end of the data


def _huge_count(blob: bytes) -> bytes:
    return (0x7FFFFFFF).to_bytes(4, "big") + blob[4:]


@pytest.mark.parametrize(
    ("blob", "says"),
    [
        (b"\0\0\0", "shorter than its own size fields"),
        (_cut(header("a", "1", "1"), 30), "larger than the blob"),
        (_huge_count(header("a", "1", "1")), "larger than the blob"),
        (_point_name_past_the_data(header("a", "1", "1")), "points outside its data"),
        (_no_terminator(header("a", "1", "1", arch=None)), "has no end"),
        (header("", "1", "1"), "no NAME"),
    ],
    ids=["short", "cut", "huge-index", "offset-outside", "no-terminator", "empty-name"],
)
def test_a_hostile_header_is_refused(blob: bytes, says: str) -> None:
    with pytest.raises(rpmdb.RpmDbError, match=says):
        rpmdb.read_sqlite(sqlite_rpmdb([header("ok", "1", "1"), blob]))


def _database(*statements: str) -> bytes:
    connection = sqlite3.connect(":memory:")
    for statement in statements:
        connection.execute(statement)
    connection.commit()
    return connection.serialize()


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"not a database at all" * 100, "SQLite cannot read it"),
        (_database("CREATE TABLE Other (x)"), "no Packages table"),
        (_database("CREATE VIEW Packages AS SELECT randomblob(8) AS blob"), "no Packages table"),
        (
            _database("CREATE TABLE Packages (blob)", "INSERT INTO Packages VALUES ('text')"),
            "holds no header blob",
        ),
    ],
)
def test_a_hostile_database_is_refused(data: bytes, says: str) -> None:
    with pytest.raises(rpmdb.RpmDbError, match=says):
        rpmdb.read_sqlite(data)


def test_the_work_sqlite_may_do_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    data = sqlite_rpmdb([header(f"p{n}", "1", "1") for n in range(3000)])
    assert len(rpmdb.read_sqlite(data)) == 3000
    monkeypatch.setattr(rpmdb, "_MAX_STEPS", 2000)
    with pytest.raises(rpmdb.RpmDbError, match="interrupted"):
        rpmdb.read_sqlite(data)


def test_a_host_probe_reads_the_database_where_rpm_keeps_it(tmp_path: Path) -> None:
    assert system.probe_rpm(tmp_path) == Unavailable("no RPM database (rpmdb.sqlite)")
    bdb = tmp_path / "var/lib/rpm"
    bdb.mkdir(parents=True)
    (bdb / "Packages").write_bytes(b"\0" * 4096)
    probe = system.probe_rpm(tmp_path)
    assert isinstance(probe, Unavailable) and "Berkeley DB" in probe.reason
    fedora = tmp_path / "usr/lib/sysimage/rpm"
    fedora.mkdir(parents=True)
    os.mkfifo(fedora / "rpmdb.sqlite")  # never opened: a FIFO would block the read
    assert "Berkeley DB" in system.probe_rpm(tmp_path).reason  # type: ignore[union-attr]
    (fedora / "rpmdb.sqlite").unlink()
    (fedora / "rpmdb.sqlite").write_bytes(sqlite_rpmdb([header("bash", "5.1.8", "9.el9")]))
    assert system.probe_rpm(tmp_path) == Available((RpmPackage("bash", "5.1.8-9.el9", "x86_64"),))
    (fedora / "rpmdb.sqlite").write_bytes(b"garbage")
    probe = system.probe_rpm(tmp_path)
    assert isinstance(probe, Unavailable)
    assert probe.reason.startswith("/usr/lib/sysimage/rpm/rpmdb.sqlite is not an RPM database")

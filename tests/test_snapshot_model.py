"""The snapshot model: JSON round trip, format version, lookups, public API."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

import lockd.snapshot as snapshot_api
from lockd.errors import FormatError, UsageError
from lockd.snapshot import (
    SNAPSHOT_VERSION,
    Available,
    CudaToolkit,
    DebPackage,
    Dist,
    DriverVersion,
    Interpreter,
    LdCacheEntry,
    LibraryScan,
    LibraryStatus,
    NeededLibrary,
    SkippedFile,
    Snapshot,
    SystemInfo,
    TorchFlavour,
    TorchKind,
    Unavailable,
    read_snapshot,
    snapshot_to_json,
    summary_rows,
    write_snapshot,
)

PYTHON = Interpreter(
    executable="/opt/venv/bin/python",
    version="3.11.7",
    implementation="cpython",
    implementation_version="3.11.7",
    prefix="/opt/venv",
    base_prefix="/usr",
    platform="linux-x86_64",
    machine="x86_64",
    soabi="cpython-311-x86_64-linux-gnu",
    pointer_bits=64,
    site_packages=("/opt/venv/lib/python3.11/site-packages",),
    sys_path=("/usr/lib/python311.zip", "/opt/venv/lib/python3.11/site-packages"),
)
SITE = PYTHON.site_packages[0]


def dist(name: str, version: str, **changes: object) -> Dist:
    values: dict[str, object] = {
        "name": name,
        "version": version,
        "installer": "uv",
        "direct_url": None,
        "record_sha256": "ab" * 32,
        "location": SITE,
        "metadata_dir": f"{name}-{version}.dist-info",
    }
    values.update(changes)
    return Dist(**values)  # type: ignore[arg-type]


TORCH = TorchFlavour(
    kind=TorchKind.cuda,
    cuda="12.4",
    evidence=("torch/version.py: cuda = '12.4'",),
    dist_version="2.6.0",
    module_version="2.6.0+cu124",
)
SYSTEM = SystemInfo(
    os_release=Available({"ID": "debian", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"}),
    glibc=Available("2.36"),
    dpkg=Available((DebPackage("libc6:amd64", "2.36-9", "amd64"),)),
    rpm=Unavailable("no RPM database (rpmdb.sqlite)"),
    ld_cache=Available(
        (LdCacheEntry("libz.so.1", "libc6,x86-64", "/lib/x86_64-linux-gnu/libz.so.1"),)
    ),
    driver=Available(DriverVersion("550.54.14", "/sys/module/nvidia/version")),
    cuda=Available(CudaToolkit("12.4.1", "CUDA_VERSION", {"CUDA_VERSION": "12.4.1"})),
    libraries=Available(
        LibraryScan(
            roots=(SITE,),
            scanned=3,
            unresolved=(
                NeededLibrary("libGL.so.1", LibraryStatus.missing, ("cv2/cv2.abi3.so",)),
                NeededLibrary("libcuda.so.1", LibraryStatus.driver, ("torch/lib/libc10_cuda.so",)),
            ),
            system={"libc.so.6": "/lib/x86_64-linux-gnu/libc.so.6"},
            skipped=(SkippedFile("pkg/x.so", "not an ELF file"),),
            extension_modules=2,
            loaded=5,
        )
    ),
)
FULL = Snapshot(
    taken_at="2026-01-02T03:04:05Z",
    lockd_version="0.1.0",
    python=PYTHON,
    dists=(
        dist("torch", "2.6.0"),
        dist(
            "Typing_Extensions",
            "4.12.2",
            direct_url={"url": "file:///w/t.whl", "archive_info": {}},
        ),
    ),
    shadowed=(dist("typing-extensions", "4.0.0", location="/elsewhere"),),
    torch=Available(TORCH),
    system=Available(SYSTEM),
)
BARE = Snapshot(
    taken_at="2026-01-02T03:04:05Z",
    lockd_version="0.1.0",
    python=PYTHON,
    dists=(),
    shadowed=(),
    torch=Unavailable("torch is not installed in /opt/venv"),
    system=Unavailable("not probed (--no-system)"),
)


@pytest.mark.parametrize("snap", [FULL, BARE], ids=["full", "bare"])
def test_json_round_trip(snap: Snapshot) -> None:
    data = json.loads(snapshot_to_json(snap))
    assert data["version"] == SNAPSHOT_VERSION
    assert Snapshot.from_dict(data) == snap


def test_unavailable_probes_are_explicit_in_json() -> None:
    data = BARE.to_dict()
    assert data["system"] == {"status": "unavailable", "reason": "not probed (--no-system)"}
    assert data["torch"]["status"] == "unavailable"


@pytest.mark.parametrize("version", ["lockd.snapshot/3", None, 1])
def test_unknown_version_is_a_format_error(version: object) -> None:
    data = FULL.to_dict()
    data["version"] = version
    expected = "reads 'lockd.snapshot/1' and 'lockd.snapshot/2' only"
    with pytest.raises(FormatError, match=re.escape(expected)) as info:
        Snapshot.from_dict(data, source="snap.json")
    if version is None:  # not a format name: said so, and nothing of the value repeated
        assert 'a "version" that is not a snapshot format version' in info.value.message
        assert "None" not in info.value.message
    else:
        assert f"snapshot format version {version};" in info.value.message
    assert info.value.exit_code == 2


def test_a_missing_version_key_is_named() -> None:
    data = FULL.to_dict()
    del data["version"]
    data["format"] = SNAPSHOT_VERSION  # the key other lockd documents use
    with pytest.raises(FormatError, match='has no "version" key') as info:
        Snapshot.from_dict(data, source="the posted body")
    assert f'"version": "{SNAPSHOT_VERSION}"' in info.value.message


def test_a_version_1_snapshot_still_reads() -> None:
    """Baselines recorded before the plugin status: no closure counts, same libraries."""
    data = FULL.to_dict()
    data["version"] = "lockd.snapshot/1"
    scan = data["system"]["value"]["libraries"]["value"]
    del scan["extension_modules"], scan["loaded"]
    old = Snapshot.from_dict(data)
    assert old.library_scan is not None
    assert old.library_scan.extension_modules is None
    assert old.missing_libraries == FULL.missing_libraries


def test_a_snapshot_taken_before_rpm_was_read_still_reads() -> None:
    data = FULL.to_dict()
    assert data["system"]["value"]["rpm"]["status"] == "unavailable"
    del data["system"]["value"]["rpm"]
    old = Snapshot.from_dict(data)
    assert old.system_info is not None
    assert old.system_info.rpm == Unavailable("not probed by the lockd that took this snapshot")
    assert old.rpm_packages is None and old.dpkg_packages == FULL.dpkg_packages


def test_the_image_key_is_part_of_both_versions() -> None:
    """An image's snapshot: written as /2 with its image facts; a /1 one (images inspect
    before the plugin status) still reads with them."""
    import dataclasses

    from lockd.snapshot import ImageFacts

    facts = ImageFacts(
        reference="registry.example/app:v1",
        transport="registry",
        name="registry.example/app",
        digest="sha256:" + "a" * 64,
        index_digest=None,
        config_digest="sha256:" + "b" * 64,
        platform="linux/amd64",
        created=None,
        user=None,
        env=("PATH=/usr/bin",),
        entrypoint=None,
        cmd=("python3",),
        working_dir=None,
        labels={"org.opencontainers.image.source": "x"},
        layers=(),
        environments=(),
        skipped={},
        cuda_libraries={"libcudnn": ("/usr/lib/libcudnn.so.9",)},
    )
    image = dataclasses.replace(FULL, image=facts)
    data = image.to_dict()
    assert data["version"] == "lockd.snapshot/2" and data["image"]["platform"] == "linux/amd64"
    assert Snapshot.from_dict(data) == image
    data["version"] = "lockd.snapshot/1"
    scan = data["system"]["value"]["libraries"]["value"]
    del scan["extension_modules"], scan["loaded"]
    old = Snapshot.from_dict(json.loads(json.dumps(data)))
    assert old.image == facts
    assert "image" not in FULL.to_dict()  # a venv's snapshot has no image key, as in /1


def test_malformed_content_is_a_format_error() -> None:
    data = FULL.to_dict()
    del data["python"]["version"]
    with pytest.raises(FormatError, match=r"malformed: python\.version is missing"):
        Snapshot.from_dict(data)
    data = FULL.to_dict()
    data["system"] = {"status": "maybe"}
    with pytest.raises(FormatError, match="malformed"):
        Snapshot.from_dict(data)
    with pytest.raises(FormatError, match="not a JSON object"):
        Snapshot.from_dict([])  # type: ignore[arg-type]


HUGE = "<script>" + "x" * 100_000  # past the longest string lockd reads
LONG = "<script>" + "x" * 1_000


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("dists", 0, "name"), 5, r"dists\[0\]\.name must be a string, not a number"),
        (("dists", 0, "version"), ["1"], r"dists\[0\]\.version must be a string, not a list"),
        (("dists", 0, "location"), HUGE, r"dists\[0\]\.location is longer than 65536"),
        (("python", "pointer_bits"), "64", r"python\.pointer_bits must be a whole number"),
        (("python", "sys_path"), "/usr", r"python\.sys_path must be a list"),
        (("torch", "status"), LONG, r"torch\.status must be one of available, unavailable"),
        (("torch", "value", "kind"), LONG, r"torch\.value\.kind must be one of cpu, cuda"),
        (
            ("system", "value", "dpkg", "value", 0),
            ["libc6"],
            r"dpkg\.value\[0\] must be a list of 3",
        ),
        (("system", "value", "glibc", "value"), {"a": 1}, r"glibc\.value must be a string"),
        (("dists", 0, "direct_url"), [], r"dists\[0\]\.direct_url must be an object"),
        (
            ("dists", 0, "direct_url"),
            {"url": "https://x/", "archive_info": "sha256=ab"},
            r"direct_url\.archive_info must be an object",
        ),
    ],
)
def test_hostile_fields_are_typed_reads_that_never_echo_the_value(
    path: tuple[str | int, ...], value: object, message: str
) -> None:
    """A posted snapshot is read field by field: a wrong type is a FormatError naming the
    field (never ``str()`` of whatever came), and the value itself is not repeated."""
    data = FULL.to_dict()
    data["dists"][0]["direct_url"] = None
    holder: Any = data
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    with pytest.raises(FormatError, match=message) as info:
        Snapshot.from_dict(data)
    assert "xxxxxxxxxx" not in str(info.value)
    assert len(str(info.value)) < 400


def test_hostile_probe_output_is_a_format_error() -> None:
    from lockd.snapshot import snapshot_from_document

    probe = {"probe": 1, "python": FULL.python.to_dict(), "dists": [{"name": 1}]}
    with pytest.raises(FormatError, match=r"stdlib probe's output but is malformed: dists\[0\]"):
        snapshot_from_document(probe, source="the posted snapshot")
    probe = {"probe": 1, "python": FULL.python.to_dict(), "dists": [], "torch": [HUGE]}
    with pytest.raises(FormatError, match="torch must be an object") as info:
        snapshot_from_document(probe)
    assert "xxxxxxxxxx" not in str(info.value)


def test_lookups_for_the_drift_detector() -> None:
    assert FULL.dist("typing_extensions") is FULL.dists[1]
    assert FULL.dist("Typing.Extensions") is FULL.dists[1]
    assert FULL.dist("numpy") is None
    assert set(FULL.dists_by_name) == {"torch", "typing-extensions"}
    assert FULL.python_version == "3.11.7"
    assert FULL.python.minor == "3.11"
    assert FULL.torch_flavour == TORCH
    assert TORCH.accelerator == "cu124"
    assert FULL.glibc_version == "2.36"
    assert FULL.driver_version == "550.54.14"
    assert FULL.cuda_toolkit_version == "12.4.1"
    assert FULL.dpkg_packages == {"libc6:amd64": DebPackage("libc6:amd64", "2.36-9", "amd64")}
    unresolved = FULL.unresolved_libraries
    assert unresolved is not None
    assert [lib.soname for lib in unresolved] == ["libGL.so.1", "libcuda.so.1"]
    assert [lib.soname for lib in FULL.missing_libraries or ()] == ["libGL.so.1"]

    for value in (
        BARE.torch_flavour,
        BARE.system_info,
        BARE.glibc_version,
        BARE.driver_version,
        BARE.dpkg_packages,
        BARE.unresolved_libraries,
        BARE.missing_libraries,
    ):
        assert value is None


def test_write_is_atomic_and_read_validates(tmp_path: Path) -> None:
    target = tmp_path / "snap.json"
    target.write_text("old")
    write_snapshot(FULL, target)
    assert read_snapshot(target) == FULL
    assert [p.name for p in tmp_path.iterdir()] == ["snap.json"]  # no temporary left behind
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask

    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(FormatError, match="not JSON"):
        read_snapshot(tmp_path / "bad.json")
    with pytest.raises(UsageError, match=r"The snapshot .*absent\.json does not exist"):
        read_snapshot(tmp_path / "absent.json")
    os.mkfifo(tmp_path / "fifo.json")  # would block a plain open() for ever
    with pytest.raises(UsageError, match="is a FIFO, not a regular file"):
        read_snapshot(tmp_path / "fifo.json")
    with pytest.raises(UsageError, match="is a character device"):
        read_snapshot(Path("/dev/zero"))
    write_snapshot(FULL, tmp_path / "new-dir" / "snap.json")  # the directory is created
    assert read_snapshot(tmp_path / "new-dir" / "snap.json") == FULL
    with pytest.raises(UsageError, match="Cannot write the snapshot"):
        write_snapshot(FULL, target / "under-a-file.json")


def test_summary_rows() -> None:
    rows = dict(summary_rows(FULL))
    assert rows["Dists"] == "2 (1 shadowed)"
    assert rows["torch"] == "2.6.0+cu124: cuda 12.4"
    assert rows["NVIDIA driver"] == "550.54.14 (from /sys/module/nvidia/version)"
    assert "1 missing: libGL.so.1" in rows["Shared libraries"]
    assert "1 driver libraries" in rows["Shared libraries"]
    bare = dict(summary_rows(BARE))
    assert bare["System"] == "not probed (--no-system)"


def test_public_api_is_pinned() -> None:
    assert snapshot_api.__all__ == [
        "SNAPSHOT_VERSION",
        "Available",
        "CudaToolkit",
        "DebPackage",
        "DirectoryFileSystem",
        "Dist",
        "DriverVersion",
        "FileSystem",
        "ImageFacts",
        "ImageLayer",
        "Interpreter",
        "LdCacheEntry",
        "LibraryScan",
        "LibraryStatus",
        "NeededLibrary",
        "Probe",
        "PythonEnvironment",
        "RpmPackage",
        "SkippedFile",
        "Snapshot",
        "SystemInfo",
        "TorchFlavour",
        "TorchKind",
        "Unavailable",
        "read_snapshot",
        "resolve_python",
        "scan_libraries",
        "snapshot_from_document",
        "snapshot_to_json",
        "summary_rows",
        "take_snapshot",
        "write_snapshot",
    ]
    assert all(hasattr(snapshot_api, name) for name in snapshot_api.__all__)

"""The shared-library scan, on real ELF objects compiled by gcc in each test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lockd.snapshot import LdCacheEntry, LibraryStatus, elf
from lockd.snapshot.parse import LDCONFIG_ARCH

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None, reason="needs gcc (.ci/run installs it)"
)

SOURCE = "int lockd_test_symbol(void) { return 42; }\n"


def cc(out: Path, *, soname: str | None = None, args: tuple[str, ...] = ()) -> Path:
    """Compile a tiny shared object; ``args`` go after the source (libraries, rpaths)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = ["gcc", "-shared", "-fPIC", "-o", str(out), "-x", "c", "-"]
    if soname:
        command.append(f"-Wl,-soname,{soname}")
    # --no-as-needed: keep every DT_NEEDED even though nothing calls into the stubs.
    command += ["-Wl,--no-as-needed", *args]
    subprocess.run(command, input=SOURCE, text=True, check=True)
    return out


def stub(directory: Path, soname: str) -> Path:
    """A library to link against (and usually delete afterwards)."""
    return cc(directory / soname, soname=soname)


def link(directory: Path, *sonames: str) -> tuple[str, ...]:
    return (f"-L{directory}", *(f"-l:{name}" for name in sonames))


def host_search() -> elf.SearchPath:
    # The host's default directories resolve libc.so.6; nothing else is configured.
    return elf.SearchPath()


def test_a_deleted_dependency_is_missing_and_named_with_its_user(tmp_path: Path) -> None:
    stubs = tmp_path / "stubs"
    stub(stubs, "libGLfake.so.1")
    site = tmp_path / "site-packages"
    cc(site / "cv2fake" / "cv2.abi3.so", args=link(stubs, "libGLfake.so.1"))
    shutil.rmtree(stubs)

    scan = elf.scan([str(site)], host_search())

    assert scan.scanned == 1
    assert [(lib.soname, lib.status) for lib in scan.unresolved] == [
        ("libGLfake.so.1", LibraryStatus.missing)
    ]
    assert scan.unresolved[0].needed_by == ("cv2fake/cv2.abi3.so",)
    assert scan.missing == scan.unresolved
    assert scan.system["libc.so.6"].endswith("/libc.so.6")


def test_origin_runpath_and_old_rpath_resolve_inside_site_packages(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    libs = site / "pkg" / ".libs"
    stub(libs, "libhelper.so.1")
    (libs / "libhelper.so").symlink_to("libhelper.so.1")  # a dev symlink must not be parsed twice
    cc(
        site / "pkg" / "new.so",
        args=(*link(libs, "libhelper.so.1"), "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/.libs"),
    )
    cc(
        site / "pkg" / "old.so",
        args=(*link(libs, "libhelper.so.1"), "-Wl,--disable-new-dtags", "-Wl,-rpath,$ORIGIN/.libs"),
    )

    new = elf.read_dynamic(str(site / "pkg" / "new.so"))
    old = elf.read_dynamic(str(site / "pkg" / "old.so"))
    assert isinstance(new, elf.ElfObject)
    assert isinstance(old, elf.ElfObject)
    assert (new.runpath, new.rpath) == ("$ORIGIN/.libs", None)
    assert (old.runpath, old.rpath) == (None, "$ORIGIN/.libs")
    assert "libhelper.so.1" in new.needed

    scan = elf.scan([str(site)], host_search())
    assert scan.scanned == 3
    assert scan.unresolved == ()
    assert "libhelper.so.1" not in scan.system  # resolved, but not a system library


def test_ld_library_path_and_the_ld_cache_resolve(tmp_path: Path) -> None:
    gl = tmp_path / "gl"
    stub(gl, "libGLfake.so.1")
    site = tmp_path / "site-packages"
    user = cc(site / "m.so", args=link(gl, "libGLfake.so.1"))

    with_path = elf.scan([str(site)], elf.SearchPath(ld_library_path=(str(gl),)))
    assert with_path.unresolved == ()
    assert with_path.system["libGLfake.so.1"] == str(gl / "libGLfake.so.1")

    obj = elf.read_dynamic(str(user))
    assert isinstance(obj, elf.ElfObject)
    arch = LDCONFIG_ARCH.get(obj.machine, "")
    cached = LdCacheEntry("libGLfake.so.1", f"libc6,{arch}", "/cache/libGLfake.so.1")
    with_cache = elf.scan([str(site)], elf.SearchPath(cache=(cached,)))
    assert with_cache.system["libGLfake.so.1"] == "/cache/libGLfake.so.1"

    other_arch = LdCacheEntry("libGLfake.so.1", "libc6", "/cache32/libGLfake.so.1")
    with_wrong = elf.scan([str(site)], elf.SearchPath(cache=(other_arch,)))
    assert [lib.soname for lib in with_wrong.missing] == ["libGLfake.so.1"]


def test_driver_libraries_are_expected_absent_and_bundled_ones_are_told_apart(
    tmp_path: Path,
) -> None:
    stubs = tmp_path / "stubs"
    for name in ("libcuda.so.1", "libnvidia-ml.so.1"):
        stub(stubs, name)
    site = tmp_path / "site-packages"
    bundled = stub(site / "other" / "lib", "libbundled.so.2")
    cc(
        site / "gpu" / "_C.so",
        args=(
            *link(stubs, "libcuda.so.1", "libnvidia-ml.so.1"),
            *link(bundled.parent, "libbundled.so.2"),
        ),
    )
    shutil.rmtree(stubs)

    scan = elf.scan([str(site)], host_search())

    statuses = {lib.soname: lib.status for lib in scan.unresolved}
    assert statuses == {
        "libcuda.so.1": LibraryStatus.driver,
        "libnvidia-ml.so.1": LibraryStatus.driver,
        "libbundled.so.2": LibraryStatus.bundled,
    }
    assert scan.missing == ()


def test_files_that_are_not_elf_are_skipped_with_a_reason(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "x.so").write_text("this is a linker script, not an ELF object\n")
    (site / "pkg" / "broken.so.1").write_bytes(b"\x7fELF" + b"\x02\x01\x01" + b"\xff" * 9)
    (site / "pkg" / "empty.so").write_bytes(b"")
    (site / "pkg" / "readme.txt").write_text("not a library name: ignored")
    cc(site / "pkg" / "ok.so")

    scan = elf.scan([str(site)], host_search())

    reasons = {skipped.path: skipped.reason for skipped in scan.skipped}
    assert reasons["pkg/x.so"] == "not an ELF file"
    assert reasons["pkg/empty.so"] == "not an ELF file"
    assert reasons["pkg/broken.so.1"].startswith("cannot parse ELF")
    assert set(reasons) == {"pkg/x.so", "pkg/empty.so", "pkg/broken.so.1"}
    assert scan.scanned == 1
    assert scan.unresolved == ()

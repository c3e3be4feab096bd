"""The shared-library closure, on real ELF objects compiled by gcc in each test.

Most tests build a whole root file system in a temporary directory (site-packages
and system libraries) and scan it through a ``DirectoryFileSystem`` view: the
same code path an image's root file system takes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lockd.snapshot import (
    DirectoryFileSystem,
    LdCacheEntry,
    LibraryStatus,
    closure,
    elf,
    ldso,
    scan_libraries,
)
from lockd.snapshot.filesystem import HOST, EntryKind, walk
from lockd.snapshot.parse import LDCONFIG_ARCH
from tests.support.elftree import (
    MULTIARCH,
    PLUGIN_ONLY,
    SITE,
    Lib,
    build,
    torch_cu130_tree,
)

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None, reason="needs gcc (.ci/run installs it)"
)

SP = f"/{SITE}"


def scan(root: Path, environ: dict[str, str] | None = None, **search: object):  # type: ignore[no-untyped-def]
    view = DirectoryFileSystem(str(root))
    if search:
        return closure.scan(view, [SP], ldso.SearchPath(**search))  # type: ignore[arg-type]
    return scan_libraries(view, [SP], environ or {})


def statuses(result) -> dict[str, LibraryStatus]:  # type: ignore[no-untyped-def]
    return {lib.soname: lib.status for lib in result.unresolved}


# -- the real CUDA stack's layout ------------------------------------------------------------


def test_torch_cuda13_plugins_are_not_missing_libraries(tmp_path: Path) -> None:
    root = torch_cu130_tree(tmp_path / "root")

    result = scan(root)

    assert result.missing == ()  # `import torch` works: nothing it loads is missing
    plugin = {lib.soname: lib.needed_by for lib in result.with_status(LibraryStatus.plugin)}
    assert plugin == PLUGIN_ONLY
    assert statuses(result)["libcuda.so.1"] is LibraryStatus.driver  # libcaffe2_nvrtc, lazily
    # libcusolverMg (no RUNPATH, never loaded) finds cuBLAS only inside site-packages
    assert statuses(result)["libcublas.so.13"] is LibraryStatus.bundled
    assert statuses(result)["libtriton.so"] is LibraryStatus.bundled  # a triton plugin
    assert result.extension_modules == 3  # torch._C, triton._C.libtriton, markupsafe._speedups
    # the system libraries resolved inside the tree, through /lib -> usr/lib and absolute links
    assert result.system == {
        "libstdc++.so.6": "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "libz.so.1": "/lib/x86_64-linux-gnu/libz.so.1",
    }
    assert result.skipped == ()


def test_what_an_import_loads_and_nothing_provides_is_missing(tmp_path: Path) -> None:
    root = torch_cu130_tree(tmp_path / "root")
    (root / MULTIARCH / "libz.so.1").unlink()  # triton's extension module needs it
    (root / SP.lstrip("/") / "nvidia/nvshmem/lib/libnvshmem_host.so.3").unlink()

    result = scan(root)

    assert {lib.soname: lib.needed_by for lib in result.missing} == {
        "libz.so.1": ("triton/_C/libtriton.so",),
        "libnvshmem_host.so.3": ("torch/lib/libtorch_nvshmem.so",),
    }
    # libcudnn_adv (a plugin) needs libz too, but an import does: it is missing
    assert statuses(result)["libz.so.1"] is LibraryStatus.missing


def test_the_closure_runs_through_system_libraries(tmp_path: Path) -> None:
    root = build(
        tmp_path / "root",
        (
            Lib(f"{SITE}/cv2/cv2.abi3.so", ("libGL.so.1",)),
            Lib(f"{MULTIARCH}/libGL.so.1", ("libGLdispatch.so.0",), soname="libGL.so.1"),
        ),
    )
    result = scan(root)
    assert [(lib.soname, lib.needed_by) for lib in result.missing] == [
        ("libGLdispatch.so.0", ("/usr/lib/x86_64-linux-gnu/libGL.so.1",))
    ]
    build(root, (Lib(f"{MULTIARCH}/libGLdispatch.so.0", soname="libGLdispatch.so.0"),))
    again = scan(root)
    assert again.unresolved == ()
    assert again.loaded == 3


def test_extension_modules_are_what_python_can_import(tmp_path: Path) -> None:
    root = build(
        tmp_path / "root",
        (
            Lib(f"{SITE}/pkg/_a.cpython-311-x86_64-linux-gnu.so", ("libA.so.1",)),
            Lib(f"{SITE}/pkg/_b.abi3.so", ("libB.so.1",)),
            Lib(f"{SITE}/pkg/_c.so", ("libC.so.1",), module="_c"),  # plain, with PyInit__c
            Lib(f"{SITE}/pkg/libplain.so", ("libD.so.1",)),  # plain, no PyInit: not a module
            Lib(f"{SITE}/pkg.libs/_e.so", ("libE.so.1",), module="_e"),  # not a package dir
            Lib(f"{SITE}/pkg/_f.so.1", ("libF.so.1",), module="_f"),  # a versioned name
        ),
    )
    result = scan(root)
    assert statuses(result) == {
        "libA.so.1": LibraryStatus.missing,
        "libB.so.1": LibraryStatus.missing,
        "libC.so.1": LibraryStatus.missing,
        "libD.so.1": LibraryStatus.plugin,
        "libE.so.1": LibraryStatus.plugin,
        "libF.so.1": LibraryStatus.plugin,
    }
    assert result.extension_modules == 3
    assert elf.importable_module("torch/_C.cpython-313t-x86_64-linux-gnu.so") == ("_C", True)
    assert elf.importable_module("a-b/x.abi3.so") is None
    assert elf.importable_module("x.so") == ("x", False)


# -- ld.so's search rules --------------------------------------------------------------------


def test_rpath_is_inherited_down_the_loading_chain_and_runpath_is_not(tmp_path: Path) -> None:
    libs = (
        Lib(f"{SITE}/pkg/a/liba.so.1", ("libb.so.1",), soname="liba.so.1"),
        Lib(f"{SITE}/pkg/b/libb.so.1", soname="libb.so.1"),
    )
    rpath = build(
        tmp_path / "rpath",
        (*libs, Lib(f"{SITE}/pkg/m.abi3.so", ("liba.so.1",), rpath="$ORIGIN/a:$ORIGIN/b")),
    )
    assert scan(rpath).unresolved == ()  # liba has no path of its own: m's DT_RPATH serves it

    runpath = build(
        tmp_path / "runpath",
        (*libs, Lib(f"{SITE}/pkg/m.abi3.so", ("liba.so.1",), runpath="$ORIGIN/a:$ORIGIN/b")),
    )
    # DT_RUNPATH serves only the object's own DT_NEEDED; libb is off liba's search path
    assert statuses(scan(runpath)) == {"libb.so.1": LibraryStatus.bundled}

    own_runpath = build(
        tmp_path / "own",
        (
            Lib(f"{SITE}/pkg/a/liba.so.1", ("libb.so.1",), soname="liba.so.1", runpath="/none"),
            libs[1],
            Lib(f"{SITE}/pkg/m.abi3.so", ("liba.so.1",), rpath="$ORIGIN/a:$ORIGIN/b"),
        ),
    )
    # an object with DT_RUNPATH ignores every DT_RPATH, its loaders' included
    assert statuses(scan(own_runpath)) == {"libb.so.1": LibraryStatus.bundled}


def test_ld_library_path_cache_and_default_dirs(tmp_path: Path) -> None:
    root = build(
        tmp_path / "root",
        (
            Lib(f"{SITE}/m.abi3.so", ("libGLfake.so.1",)),
            Lib("opt/gl/libGLfake.so.1", soname="libGLfake.so.1"),
        ),
    )
    assert statuses(scan(root)) == {"libGLfake.so.1": LibraryStatus.missing}
    with_path = scan(root, {"LD_LIBRARY_PATH": "/nowhere:/opt/gl"})
    assert with_path.unresolved == ()
    assert with_path.system == {"libGLfake.so.1": "/opt/gl/libGLfake.so.1"}

    arch = LDCONFIG_ARCH["EM_X86_64"]
    cached = LdCacheEntry("libGLfake.so.1", f"libc6,{arch}", "/opt/gl/libGLfake.so.1")
    assert scan(root, cache=(cached,)).system == {"libGLfake.so.1": "/opt/gl/libGLfake.so.1"}
    other_arch = LdCacheEntry("libGLfake.so.1", "libc6", "/opt/gl/libGLfake.so.1")
    assert statuses(scan(root, cache=(other_arch,))) == {"libGLfake.so.1": LibraryStatus.missing}
    stale = LdCacheEntry("libGLfake.so.1", f"libc6,{arch}", "/opt/gone/libGLfake.so.1")
    assert statuses(scan(root, cache=(stale,))) == {"libGLfake.so.1": LibraryStatus.missing}


def test_a_library_of_another_machine_is_skipped_and_the_search_goes_on(tmp_path: Path) -> None:
    root = build(
        tmp_path / "root",
        (
            Lib(f"{SITE}/m.abi3.so", ("libx.so.1",), runpath="/first:/second"),
            Lib("first/libx.so.1", soname="libx.so.1"),
            Lib("second/libx.so.1", soname="libx.so.1"),
        ),
    )
    wrong = bytearray((root / "first/libx.so.1").read_bytes())
    wrong[18:20] = (183).to_bytes(2, "little")  # e_machine: EM_AARCH64
    (root / "first/libx.so.1").write_bytes(bytes(wrong))
    view = DirectoryFileSystem(str(root))
    assert elf.machine_of(view, "/first/libx.so.1") == ("EM_AARCH64", 64)
    assert scan(root).loaded == 2
    assert scan(root).unresolved == ()
    (root / "second/libx.so.1").unlink()
    assert statuses(scan(root)) == {"libx.so.1": LibraryStatus.missing}


def test_a_tree_without_a_cache_is_searched_through_ld_so_conf(tmp_path: Path) -> None:
    root = build(
        tmp_path / "root",
        (
            Lib(f"{SITE}/m.abi3.so", ("libcudart.so.13", "libextra.so.2")),
            Lib("usr/local/cuda-13.0/lib/libcudart.so.13", soname="libcudart.so.13"),
            Lib("opt/extra/lib/libextra.so.2", soname="libextra.so.2"),
        ),
    )
    (root / "etc/ld.so.conf.d").mkdir(parents=True)
    (root / "etc/ld.so.conf").write_text("# defaults\ninclude /etc/ld.so.conf.d/*.conf\n")
    (root / "etc/ld.so.conf.d/zz-cuda.conf").write_text("/usr/local/cuda-13.0/lib\n")
    (root / "etc/ld.so.conf.d/extra.conf").write_text("include ../extra.d/*.conf\n")
    (root / "etc/extra.d").mkdir()
    (root / "etc/extra.d/x.conf").write_text("/opt/extra/lib=libc6  # old type syntax\n")
    (root / "etc/ld.so.conf.d/loop.conf").write_text("include /etc/ld.so.conf\n")

    search = ldso.search_path(DirectoryFileSystem(str(root)), {})
    assert search.conf_dirs == ("/opt/extra/lib", "/usr/local/cuda-13.0/lib")
    assert search.source == "/etc/ld.so.conf (no cache)"
    assert scan(root).unresolved == ()


@pytest.mark.skipif(os.geteuid() != 0, reason="ldconfig -r chroots: root only")
def test_a_tree_with_a_cache_is_searched_through_its_cache_only(tmp_path: Path) -> None:
    root = build(
        tmp_path / "root",
        (
            Lib(f"{SITE}/m.abi3.so", ("libcudart.so.13", "libnew.so.1")),
            Lib("usr/local/cuda/lib/libcudart.so.13", soname="libcudart.so.13"),
        ),
    )
    (root / "etc").mkdir()
    (root / "etc/ld.so.conf").write_text("/usr/local/cuda/lib\n/opt/new\n")
    subprocess.run(["ldconfig", "-X", "-r", str(root)], check=True)
    # added after ldconfig ran: ld.so reads the cache, not the configuration
    build(root, (Lib("opt/new/libnew.so.1", soname="libnew.so.1"),))

    search = ldso.search_path(DirectoryFileSystem(str(root)), {})
    assert search.source == "/etc/ld.so.cache"
    assert (
        LdCacheEntry("libcudart.so.13", "libc6,x86-64", "/usr/local/cuda/lib/libcudart.so.13")
        in search.cache
    )
    assert statuses(scan(root)) == {"libnew.so.1": LibraryStatus.missing}


@pytest.mark.skipif(
    not Path("/etc/ld.so.cache").is_file() or shutil.which("ldconfig") is None,
    reason="needs the host's ld.so cache and ldconfig",
)
def test_the_binary_cache_reads_as_ldconfig_prints_it() -> None:
    from lockd.snapshot.parse import parse_ldconfig

    printed = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True)
    data = Path("/etc/ld.so.cache").read_bytes()
    assert ldso.parse_ld_so_cache(data) == parse_ldconfig(printed.stdout)
    assert ldso.parse_ld_so_cache(data[:60]) is None  # truncated: not used
    assert ldso.parse_ld_so_cache(b"not a cache") is None


# -- what the scan reports on odd files ------------------------------------------------------


def test_driver_libraries_and_bundled_ones_are_told_apart(tmp_path: Path) -> None:
    root = build(
        tmp_path / "root",
        (
            Lib(
                f"{SITE}/gpu/_C.abi3.so",
                ("libcuda.so.1", "libnvidia-ml.so.1", "libbundled.so.2"),
            ),
            Lib(f"{SITE}/other/lib/libbundled.so.2", soname="libbundled.so.2"),
        ),
    )
    (root / SITE / "other/lib/libbundled.so").symlink_to("libbundled.so.2")  # parsed once

    result = scan(root)

    assert statuses(result) == {
        "libcuda.so.1": LibraryStatus.driver,
        "libnvidia-ml.so.1": LibraryStatus.driver,
        "libbundled.so.2": LibraryStatus.bundled,
    }
    assert result.missing == ()
    assert result.scanned == 2


def test_files_that_are_not_elf_are_skipped_with_a_reason(tmp_path: Path) -> None:
    site = tmp_path / "root" / SITE
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "x.so").write_text("this is a linker script, not an ELF object\n")
    (site / "pkg" / "broken.so.1").write_bytes(b"\x7fELF" + b"\x02\x01\x01" + b"\xff" * 9)
    (site / "pkg" / "empty.so").write_bytes(b"")
    (site / "pkg" / "readme.txt").write_text("not a library name: ignored")
    os.mkfifo(site / "pkg" / "fifo.so")  # never opened: it would block the scan
    build(tmp_path / "root", (Lib(f"{SITE}/pkg/ok.abi3.so"),))

    result = scan(tmp_path / "root")

    reasons = {skipped.path: skipped.reason for skipped in result.skipped}
    assert reasons["pkg/x.so"] == "not an ELF file"
    assert reasons["pkg/empty.so"] == "not an ELF file"
    assert reasons["pkg/broken.so.1"].startswith("cannot parse ELF")
    assert set(reasons) == {"pkg/x.so", "pkg/empty.so", "pkg/broken.so.1"}
    assert result.scanned == 1
    assert result.unresolved == ()


def test_the_host_view_reads_this_machine(tmp_path: Path) -> None:
    """A venv-like tree on the host: libc comes from the host's own directories."""
    build(
        tmp_path,
        (Lib("site-packages/cv2/cv2.abi3.so", ("libGLfake.so.1",)),),
        nostdlib=False,
    )
    result = scan_libraries(HOST, [str(tmp_path / "site-packages")], {})
    assert [(lib.soname, lib.needed_by) for lib in result.missing] == [
        ("libGLfake.so.1", ("cv2/cv2.abi3.so",))
    ]
    assert result.system["libc.so.6"].endswith("/libc.so.6")


# -- the file-system view --------------------------------------------------------------------


def test_links_resolve_inside_the_view_and_never_outside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("inside\n")
    (root / "abs").symlink_to("/etc/passwd")  # the host has one; the view does not
    (root / "up").symlink_to("../../../../../../etc/passwd")
    (root / "name").symlink_to("/etc/hostname")
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    (root / "dir").symlink_to("/etc")
    view = DirectoryFileSystem(str(root))

    for path in ("/abs", "/up", "/loop1", "/../etc/passwd"):
        assert not view.exists(path), path
        assert not view.is_file(path), path
        with pytest.raises(OSError):
            view.open(path)
    assert view.realpath("/name") == "/etc/hostname"
    assert view.read_bytes("/name", 100) == b"inside\n"
    assert view.read_bytes("/dir/hostname", 3) == b"ins"
    assert view.is_dir("/dir")
    assert view.realpath("/loop1") is None
    kinds = {entry.name: entry.kind for entry in view.entries("/")}
    assert kinds == {
        "abs": EntryKind.link,
        "up": EntryKind.link,
        "name": EntryKind.link,
        "loop1": EntryKind.link,
        "loop2": EntryKind.link,
        "dir": EntryKind.link,
        "etc": EntryKind.dir,
    }
    assert [directory for directory, _ in walk(view, "/")] == ["/", "/etc"]  # links not followed
    os.mkfifo(root / "etc" / "fifo")
    assert not view.is_file("/etc/fifo")
    with pytest.raises(OSError):
        view.open("/etc/fifo")

"""Reading images without a runtime: layers, links, sources, sizes and SBOMs.

Every image is built in the test and pushed to the real ``docker-registry``
(or written as an OCI layout or a docker archive), then read back through
``lockd.images.inspect_image`` or the ``lockd images inspect`` CLI.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from lockd.errors import ImageError, RegistryError, UsageError
from lockd.images import (
    ImageInspection,
    InspectRequest,
    RegistryOptions,
    VerifiedLayers,
    inspect_image,
)
from lockd.report.image import render_image_sbom
from lockd.snapshot import Available, LibraryStatus, TorchKind, Unavailable
from tests.conftest import hermetic_env, run_lockd
from tests.support.images import (
    DEBIAN_RELEASE,
    Image,
    Layer,
    deb_status,
    dist,
    push,
    shared_object,
    torch,
    write_docker_archive,
    write_oci_layout,
)
from tests.support.registry import Pusher, Registry
from tests.support.rpmdb import header, sqlite_rpmdb

SITE = "opt/venv/lib/python3.11/site-packages"
LIBDIR = "usr/lib/x86_64-linux-gnu"
EXT = "cpython-311-x86_64-linux-gnu.so"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (.ci/run has it)")


def base_layer(*libraries: str) -> Layer:
    """A Debian-like base: os-release, dpkg database, glibc, python3.11, usr-merged /lib."""
    layer = Layer(created_by="ADD rootfs.tar /").file("etc/os-release", DEBIAN_RELEASE)
    deb_status(layer, [("libc6", "2.36-9+deb12u4"), ("python3.11", "3.11.2-6")])
    layer.symlink("lib", "usr/lib").symlink("lib64", "usr/lib64")
    layer.file(f"{LIBDIR}/libc.so.6", shared_object("libc.so.6"))
    for soname in libraries:
        layer.file(f"{LIBDIR}/{soname}", shared_object(soname))
    layer.file("usr/bin/python3.11", b"\x7fELF not run").symlink("usr/bin/python3", "python3.11")
    return layer


def venv_layer(torch_version: str = "2.6.0+cu124", cuda: str | None = "12.4") -> Layer:
    layer = Layer(created_by="RUN uv pip sync --require-hashes requirements.txt")
    layer.file("opt/venv/pyvenv.cfg", "home = /usr/bin\nversion = 3.11.2\n")
    layer.symlink("opt/venv/bin/python3", "/usr/bin/python3.11")
    dist(layer, SITE, "numpy", "2.1.0")
    dist(layer, SITE, "requests", "2.32.3")
    torch(layer, SITE, torch_version, cuda)
    return layer


ENV = ["PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin", "CUDA_VERSION=12.4.1"]


def read(reference: str, platform: str | None = None) -> ImageInspection:
    return inspect_image(InspectRequest(reference, platform, RegistryOptions()))


def test_layers_apply_with_whiteouts_opaque_dirs_links_gzip_and_zstd(
    registry: Registry, pusher: Pusher
) -> None:
    old = venv_layer()
    dist(old, SITE, "leftover", "0.1", {"leftover/__init__.py": b"x" * 5000})
    old.file("opt/data/a.bin", b"a" * 3000).file("opt/data/keep/b.bin", b"b" * 1000)
    later = Layer(created_by="RUN cleanup")
    later.whiteout(f"{SITE}/leftover-0.1.dist-info").whiteout(f"{SITE}/leftover")
    later.dir("opt/data").opaque("opt/data").file("opt/data/new.bin", b"n" * 10)
    later.symlink("opt/venv/bin/python", "python3").hardlink(
        "opt/data/again.bin", "opt/data/new.bin"
    )
    image = Image([base_layer(), old, later], env=ENV, compression=["gzip", "zstd", "none"])
    digest = push(pusher, "layers", "v1", image.parts())

    inspection = read(registry.ref("layers", "v1"))

    snap = inspection.snapshot
    assert snap.image is not None and snap.image.digest == digest
    assert [layer.compression for layer in snap.image.layers] == ["gzip", "zstd", "none"]
    assert [layer.created_by for layer in snap.image.layers] == [
        "ADD rootfs.tar /",
        "RUN uv pip sync --require-hashes requirements.txt",
        "RUN cleanup",
    ]
    assert [(d.name, d.version) for d in snap.dists] == [
        ("numpy", "2.1.0"),
        ("requests", "2.32.3"),
        ("torch", "2.6.0+cu124"),
    ]  # the whited-out dist is gone
    assert snap.python.prefix == "/opt/venv" and snap.python.version == "3.11.2"
    assert snap.python.executable == "/opt/venv/bin/python3"
    size = inspection.size
    assert size.wasted == size.layers[2].removed_bytes
    assert 9000 < size.layers[2].removed_bytes < 9600  # the leftover dist and the hidden data
    assert size.layers[2].files == 2  # new.bin and its hard link
    info = snap.system_info
    assert info is not None
    assert info.os_release == Available(
        {"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "ID": "debian", "VERSION_ID": "12"}
    )
    assert info.glibc == Available("2.36")
    assert [(p.name, p.version) for p in info.dpkg.or_none() or ()] == [
        ("libc6:amd64", "2.36-9+deb12u4"),
        ("python3.11", "3.11.2-6"),
    ]
    assert snap.cuda_toolkit_version == "12.4.1"
    flavour = snap.torch_flavour
    assert flavour is not None and flavour.kind is TorchKind.cuda and flavour.cuda == "12.4"


def test_hidden_files_are_hidden_and_links_resolve_inside(
    registry: Registry, pusher: Pusher
) -> None:
    from lockd.images._facts import classify
    from lockd.images._inspect import read_rootfs
    from lockd.images._sources import open_source

    first = Layer().file("opt/data/a.bin", b"a").file("etc/os-release", "ID=first\n")
    first.file("opt/data/sub/b.bin", b"b")
    second = Layer().dir("opt/data").opaque("opt/data").file("opt/data/c.bin", b"c")
    second.symlink("etc/alias", "/etc/os-release").symlink("loop", "loop2")
    second.symlink("loop2", "loop").hardlink("etc/copy", "/etc/os-release")
    push(pusher, "links", "v1", Image([first, second]).parts())
    with open_source(registry.ref("links", "v1"), RegistryOptions()) as source:
        rootfs = read_rootfs(source, source.manifest(None), classify)

    assert rootfs.listdir("opt/data") == ["c.bin"]
    assert not rootfs.is_file("opt/data/sub/b.bin")
    assert rootfs.read_text("etc/alias") == "ID=first\n"
    assert rootfs.read_text("etc/copy") == "ID=first\n"
    assert rootfs.resolve("loop") is None


def test_a_hostile_layer_stays_inside_the_image(
    registry: Registry, pusher: Pusher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lockd.images._facts import classify
    from lockd.images._inspect import read_rootfs
    from lockd.images._sources import open_source

    host_secret = tmp_path / "host-secret"
    host_secret.write_text("host only")
    hostile = Layer().file("/etc/os-release", "ID=inside\n")  # absolute: lands inside
    hostile.file("../../../../escape.txt", b"climbs out").file("etc/../../outside", b"x")
    hostile.device("dev/null-again")
    hostile.symlink("etc/ld.so.conf", str(host_secret))  # absolute target: the image's path
    hostile.symlink("up", "../../../../../../..").file("up/etc/lockd-test", b"still inside")
    hostile.hardlink("etc/stolen", "../../../etc/passwd")
    hostile.symlink("etc/passwd-link", "../../../../../../etc/passwd")
    push(pusher, "hostile", "v1", Image([hostile]).parts())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))

    with open_source(registry.ref("hostile", "v1"), RegistryOptions()) as source:
        rootfs = read_rootfs(source, source.manifest(None), classify)

    assert rootfs.read_text("etc/os-release") == "ID=inside\n"
    assert "escape.txt" not in rootfs.listdir("") and "outside" not in rootfs.listdir("")
    assert rootfs.warnings == {
        "device node or FIFO": 1,
        "entry outside the image root": 2,
        "hard link to a missing or non-regular file, or outside the root": 1,
    }
    assert rootfs.read_text("etc/ld.so.conf") is None  # the host file is never read
    assert rootfs.resolve("etc/ld.so.conf") == str(host_secret).lstrip("/")
    assert rootfs.resolve("etc/passwd-link") == "etc/passwd"
    assert rootfs.resolve("up") == "" and rootfs.is_file("etc/lockd-test")
    assert list(scratch.iterdir()) == []  # nothing written, not even to a temporary directory
    assert not (Path("/") / "escape.txt").exists()


def test_a_huge_tar_header_is_refused(registry: Registry, pusher: Pusher) -> None:
    info = tarfile.TarInfo("big")
    info.pax_headers = {"comment": "x" * (2 << 20)}
    layer = Layer().raw(info, b"")
    push(pusher, "huge-header", "v1", Image([layer]).parts())
    with pytest.raises(ImageError, match="tar header"):
        read(registry.ref("huge-header", "v1"))


def test_a_tampered_blob_is_caught(registry: Registry, pusher: Pusher) -> None:
    # Blobs are shared by digest in the registry: this one is never used by another test.
    parts = Image([base_layer(), venv_layer().file("salt", b"tampered")]).parts()
    push(pusher, "tampered", "v1", parts)
    blob, _ = parts.layers[1]
    stored = next((registry.log.parent / "storage").rglob(f"blobs/sha256/*/{_hex(blob)}/data"))
    stored.write_bytes(bytes(b ^ 0xFF if i == 100 else b for i, b in enumerate(blob)))
    with pytest.raises(ImageError, match="does not match its digest"):
        read(registry.ref("tampered", "v1"))


def test_a_config_that_lies_about_a_layer_is_caught(registry: Registry, pusher: Pusher) -> None:
    image = Image([venv_layer()])
    parts = image.parts()
    config = json.loads(parts.config)
    config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    parts.config = json.dumps(config).encode()
    push(pusher, "lying", "v1", parts)
    with pytest.raises(ImageError, match="diff_id"):
        read(registry.ref("lying", "v1"))


def _hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_a_layer_checked_once_has_only_its_digest_checked_again(
    registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    verified = VerifiedLayers(tmp_path / "layers")
    parts = Image([base_layer(), venv_layer().file("salt", b"verified once")]).parts()
    push(pusher, "verified", "v1", parts)
    first = inspect_image(
        InspectRequest(registry.ref("verified", "v1"), None, RegistryOptions(), verified)
    )
    pairs = {
        f"{_hex(blob)}.{diff_id[7:]}"
        for (blob, _), diff_id in zip(
            parts.layers, json.loads(parts.config)["rootfs"]["diff_ids"], strict=True
        )
    }
    assert {p.name for p in verified.root.iterdir()} == pairs

    # A config naming another diff_id for the same blob is not covered by the pair: hashed, caught.
    lying = Image([base_layer(), venv_layer().file("salt", b"verified once")]).parts()
    config = json.loads(lying.config)
    config["rootfs"]["diff_ids"][1] = "sha256:" + "0" * 64
    lying.config = json.dumps(config).encode()
    push(pusher, "verified", "lying", lying)
    with pytest.raises(ImageError, match="diff_id"):
        inspect_image(
            InspectRequest(registry.ref("verified", "lying"), None, RegistryOptions(), verified)
        )
    # The recorded pair is what is trusted (lockd's home is its own): with it, the tar is not
    # hashed, so the same lie passes. This is how the skip shows.
    blob, _ = lying.layers[1]
    (verified.root / f"{_hex(blob)}.{'0' * 64}").touch()
    again = inspect_image(
        InspectRequest(registry.ref("verified", "lying"), None, RegistryOptions(), verified)
    )
    assert again.snapshot.dists == first.snapshot.dists

    # The blob itself is checked on every read, recorded pair or not.
    stored = next((registry.log.parent / "storage").rglob(f"blobs/sha256/*/{_hex(blob)}/data"))
    stored.write_bytes(bytes(b ^ 0xFF if i == 100 else b for i, b in enumerate(blob)))
    with pytest.raises(ImageError, match="does not match its digest"):
        inspect_image(
            InspectRequest(registry.ref("verified", "v1"), None, RegistryOptions(), verified)
        )


def test_only_well_formed_digests_name_a_verified_pair(tmp_path: Path) -> None:
    good = "sha256:" + "a" * 64
    verified = VerifiedLayers(tmp_path / "layers")
    for digest, diff_id in [
        ("sha256:../../escape", good),
        (good, "sha256:" + "A" * 64),
        (None, good),
    ]:
        verified.remember(digest, diff_id)
        assert not verified.known(digest, diff_id)
    assert not verified.root.exists()
    (tmp_path / "file").write_text("not a directory")
    VerifiedLayers(tmp_path / "file" / "layers").remember(good, good)  # unwritable: no error
    assert not VerifiedLayers(tmp_path / "file" / "layers").known(good, good)


def test_the_closure_is_resolved_against_the_image(registry: Registry, pusher: Pusher) -> None:
    """An extension that needs a library its base lacks: missing; with it, resolved."""
    app = venv_layer()
    cv2 = shared_object(needed=("libGL.so.1", "libcuda.so.1"))
    plugin = shared_object(needed=("libibverbs.so.1",))  # dlopen'ed on demand: not loaded
    helper = shared_object("libhelper.so.2", needed=("libz.so.1",))
    app.file(f"{SITE}/cv2/cv2.abi3.so", cv2).file(f"{SITE}/nvidia/lib/libplugin.so.1", plugin)
    app.file(
        f"{SITE}/pkg/_core.{EXT}",
        shared_object(needed=("libhelper.so.2",), runpath="$ORIGIN/../pkg.libs"),
    )
    app.file(f"{SITE}/pkg.libs/libhelper.so.2", helper)
    push(pusher, "closure", "slim", Image([base_layer("libz.so.1"), app], env=ENV).parts())
    push(
        pusher,
        "closure",
        "full",
        Image([base_layer("libz.so.1", "libGL.so.1"), app], env=ENV).parts(),
    )

    slim = read(registry.ref("closure", "slim")).snapshot
    scan = slim.library_scan
    assert scan is not None
    assert [(lib.soname, lib.status, lib.needed_by) for lib in scan.unresolved] == [
        ("libGL.so.1", LibraryStatus.missing, ("cv2/cv2.abi3.so",)),
        ("libcuda.so.1", LibraryStatus.driver, ("cv2/cv2.abi3.so",)),
        # the plugin no import loads: information, as on a host (one closure for both)
        ("libibverbs.so.1", LibraryStatus.plugin, ("nvidia/lib/libplugin.so.1",)),
    ]
    # cv2 and _core load libhelper and, from the base, libz and libc (gcc links every object to it)
    assert (scan.extension_modules, scan.loaded) == (2, 5)
    assert scan.system["libz.so.1"] == "/lib/x86_64-linux-gnu/libz.so.1"
    full = read(registry.ref("closure", "full")).snapshot
    assert [lib.soname for lib in full.missing_libraries or ()] == []


def test_transports_agree_and_platforms_are_chosen(
    registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    parts = Image([base_layer(), venv_layer()], env=ENV, labels={"a": "b"}).parts()
    digest = push(pusher, "transports", "v1", parts)
    layout_digest = write_oci_layout(tmp_path / "layout", parts, "v1")
    write_docker_archive(tmp_path / "app.tar", parts, "app:v1")

    by_registry = read(registry.ref("transports", "v1")).snapshot
    by_layout = read(f"oci:{tmp_path / 'layout'}:v1").snapshot
    by_archive = read(f"docker-archive:{tmp_path / 'app.tar'}").snapshot
    named = read(f"docker-archive:{tmp_path / 'app.tar'}:app:v1").snapshot  # FILE:REPO:TAG
    assert named.dists == by_archive.dists
    with pytest.raises(UsageError, match="holds no image tagged 'other:v2' \\(tags: app:v1\\)"):
        read(f"docker-archive:{tmp_path / 'app.tar'}:other:v2")
    assert layout_digest == digest
    for snap in (by_layout, by_archive):
        assert snap.dists == by_registry.dists
        assert snap.image is not None and snap.image.labels == {"a": "b"}
    assert by_archive.image is not None and by_archive.image.digest is None

    arm = Image([venv_layer()], architecture="arm64").parts()
    amd = Image([venv_layer("2.6.0+cpu", None)]).parts()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {**_pushed(pusher, "multi", arm), "platform": {"os": "linux", "architecture": "arm64"}},
            {**_pushed(pusher, "multi", amd), "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    }
    pusher.manifest("multi", "v1", index)
    chosen = read(registry.ref("multi", "v1"), "linux/arm64").snapshot
    assert chosen.image is not None and chosen.image.platform == "linux/arm64"
    assert chosen.python.machine == "aarch64"
    with pytest.raises(RegistryError, match="offers linux/arm64, linux/amd64"):
        read(registry.ref("multi", "v1"), "linux/s390x")


def test_a_single_platform_image_of_another_platform_is_refused(
    registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    """--platform cannot choose inside one manifest: asking for another platform is refused,
    naming both, whatever the transport; the image's own platform is read."""
    parts = Image([base_layer(), venv_layer()], env=ENV).parts()  # linux/amd64
    push(pusher, "single", "v1", parts)
    write_oci_layout(tmp_path / "oci", parts, "app")
    write_docker_archive(tmp_path / "app.tar", parts, "app:v1")
    env = hermetic_env(tmp_path)
    for reference in (
        registry.ref("single", "v1"),
        "oci:./oci:app",
        f"docker-archive:{tmp_path / 'app.tar'}",
    ):
        asked = run_lockd(
            "images", "inspect", reference, "--platform", "linux/arm64", cwd=tmp_path, env=env
        )
        assert asked.returncode == 3, (reference, asked.output)
        assert asked.stdout == ""
        assert "error:" in asked.stderr and "Traceback" not in asked.stderr
        assert "single-platform linux/amd64 image, not linux/arm64" in asked.stderr, reference
        same = run_lockd(
            "images", "inspect", reference, "--platform", "linux/x86_64", "--format", "json",
            cwd=tmp_path, env=env,
        )  # fmt: skip
        assert same.returncode == 0, (reference, same.output)
        bogus = run_lockd(
            "images", "inspect", reference, "--platform", "bogus", cwd=tmp_path, env=env
        )
        assert bogus.returncode == 2, (reference, bogus.output)  # a usage error, not the image's
        assert "'bogus' is not a platform. Write it as os/arch[/variant]" in bogus.stderr


def _pushed(pusher: Pusher, repo: str, parts: object) -> dict[str, object]:
    digest = push(pusher, repo, "tmp", parts)  # type: ignore[arg-type]
    manifest = json.dumps(parts.manifest(), indent=2).encode()  # type: ignore[attr-defined]
    return {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest,
        "size": len(manifest),
    }


def test_size_report_names_what_a_runtime_image_need_not_ship(
    registry: Registry, pusher: Pusher
) -> None:
    base = base_layer()
    deb_status(
        base, [("libc6", "2.36-9+deb12u4"), ("gcc-12", "12.2.0-14"), ("libssl-dev", "3.0.11")]
    )
    base.file("usr/bin/gcc-12", b"g" * 700).symlink("usr/bin/gcc", "gcc-12")
    cuda = Layer(created_by="COPY cuda /usr/local/cuda-12.4")
    cuda.file("usr/local/cuda-12.4/lib64/libcudart.so.12", b"c" * 4000)
    cuda.file("usr/local/cuda-12.4/lib64/libcudart_static.a", b"s" * 2000)
    cuda.file("usr/local/cuda-12.4/include/cuda.h", b"h" * 300)
    cuda.file("usr/local/cuda-12.4/bin/nvcc", b"n" * 100).symlink("usr/local/cuda", "cuda-12.4")
    app = venv_layer()
    dist(app, SITE, "nvidia-cuda-runtime-cu12", "12.4.127",
         {"nvidia/cuda_runtime/lib/libcudart.so.12": b"w" * 3000})  # fmt: skip
    app.file("root/.cache/pip/http/ab/cd", b"p" * 1500)
    app.file("var/cache/apt/archives/gcc_12.deb", b"d" * 800)
    push(pusher, "sizes", "v1", Image([base, cuda, app], env=ENV).parts())

    inspection = read(registry.ref("sizes", "v1"))
    size = inspection.size
    assert inspection.snapshot.image is not None
    assert inspection.snapshot.image.cuda_libraries == {
        "libcudart": (
            f"/{SITE}/nvidia/cuda_runtime/lib/libcudart.so.12",
            "/usr/local/cuda-12.4/lib64/libcudart.so.12",
        )
    }

    found = {(f.kind, f.subject): f.bytes for f in size.findings}
    assert found[("toolchain", "/usr/bin/gcc-12")] == 700
    assert found[("toolchain", "/usr/local/cuda-12.4/bin/nvcc")] == 100
    assert found[("toolchain", "deb: gcc-12, libssl-dev:amd64")] == 0
    assert found[("cache", "pip cache")] == 1500
    assert found[("cache", "apt archives")] == 800
    assert found[("cuda-static", "CUDA static libraries (*.a)")] == 2000
    assert found[("cuda-headers", "CUDA headers")] == 300
    assert found[("cuda-twice", "libcudart")] == 3000
    assert ("usr/local/cuda-12.4/lib64", 6000) in size.largest
    assert [total for _, total in size.largest] == sorted(
        (total for _, total in size.largest), reverse=True
    )


def test_an_rpm_based_image_lists_its_packages_in_the_snapshot_sizes_and_sbom(
    registry: Registry, pusher: Pusher
) -> None:
    """A UBI-like image: rpm's SQLite database behind Fedora's /var/lib/rpm symlink, upgraded
    by a later layer; no dpkg. Packages, glibc, toolchain and SBOM come from it."""
    base = Layer(created_by="ADD ubi.tar /").file("etc/os-release", 'ID="rhel"\nVERSION_ID="9.4"\n')
    base.symlink("var/lib/rpm", "../../usr/lib/sysimage/rpm")
    installed = [header("glibc", "2.34", "100.el9"), header("gcc", "11.4.1", "3.el9")]
    base.file("usr/lib/sysimage/rpm/rpmdb.sqlite", sqlite_rpmdb(installed))
    base.file("usr/lib64/libc.so.6", shared_object("libc.so.6")).symlink("lib64", "usr/lib64")
    upgrade = Layer(created_by="RUN dnf install -y python3-devel")
    installed.append(header("python3-devel", "3.9.18", "1.el9", arch="noarch", epoch=2))
    upgrade.file("var/lib/rpm/rpmdb.sqlite", sqlite_rpmdb(installed))  # through the symlink
    push(pusher, "ubi", "v1", Image([base, upgrade, venv_layer()], env=ENV).parts())

    inspection = read(registry.ref("ubi", "v1"))

    info = inspection.snapshot.system_info
    assert info is not None and isinstance(info.rpm, Available)
    assert [(p.name, p.version, p.architecture) for p in info.rpm.value] == [
        ("gcc", "11.4.1-3.el9", "x86_64"),
        ("glibc", "2.34-100.el9", "x86_64"),
        ("python3-devel", "2:3.9.18-1.el9", "noarch"),
    ]
    assert info.glibc == Available("2.34")
    assert info.dpkg == Unavailable("the image has no dpkg database (/var/lib/dpkg/status)")
    found = {(f.kind, f.subject) for f in inspection.size.findings}
    assert ("toolchain", "rpm: gcc, python3-devel") in found
    sbom = render_image_sbom(inspection)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom) is None
    purls = {c["purl"] for c in json.loads(sbom)["components"]}
    assert "pkg:rpm/rhel/glibc@2.34-100.el9?arch=x86_64" in purls
    assert "pkg:rpm/rhel/python3-devel@3.9.18-1.el9?arch=noarch&epoch=2" in purls


def test_an_unreadable_rpm_database_is_said_not_guessed(registry: Registry, pusher: Pusher) -> None:
    centos = Layer(created_by="ADD centos7.tar /").file("var/lib/rpm/Packages", b"\0" * 8192)
    broken = Layer(created_by="ADD broken.tar /")
    broken.file("var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\0" + b"\xff" * 4000)
    push(pusher, "old-rpm", "v1", Image([centos], env=ENV).parts())
    push(pusher, "bad-rpm", "v1", Image([broken], env=ENV).parts())

    old = read(registry.ref("old-rpm", "v1")).snapshot.system_info
    bad = read(registry.ref("bad-rpm", "v1")).snapshot.system_info

    assert old is not None and bad is not None
    assert old.rpm == Unavailable(
        "the RPM database is Berkeley DB (RHEL/CentOS 8 and older), which lockd does not read"
    )
    assert isinstance(bad.rpm, Unavailable)
    assert bad.rpm.reason.startswith("/var/lib/rpm/rpmdb.sqlite is not an RPM database")


def test_cli_inspect_formats(registry: Registry, pusher: Pusher, tmp_path: Path) -> None:
    push(pusher, "cli", "v1", Image([base_layer(), venv_layer()], env=ENV).parts())
    env = hermetic_env(tmp_path)
    table = run_lockd("images", "inspect", registry.ref("cli", "v1"), cwd=tmp_path, env=env)
    assert table.returncode == 0, table.output
    assert "torch" in table.stdout and "2.6.0+cu124: cuda 12.4" in table.stdout
    assert "Largest directories" in table.stdout
    assert "reading: layer 2/2" in table.stderr  # a line per step off a terminal
    assert len(list((tmp_path / "lockd-home" / "layers").iterdir())) == 2  # both pairs checked

    as_json = run_lockd(
        "images", "inspect", registry.ref("cli", "v1"), "--format", "json", cwd=tmp_path, env=env
    )
    data = json.loads(as_json.stdout)
    assert data["format"] == "lockd.image/1"
    assert data["snapshot"]["image"]["platform"] == "linux/amd64"
    assert data["size"]["layers"][1]["files"] > 0

    sbom = run_lockd(
        "images", "inspect", registry.ref("cli", "v1"), "--format", "cyclonedx",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom.stdout) is None
    bom = json.loads(sbom.stdout)
    purls = {c["purl"] for c in bom["components"]}
    assert "pkg:pypi/torch@2.6.0%2Bcu124" in purls
    assert "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64" in purls
    properties = {p["name"] for p in bom["metadata"]["component"]["properties"]}
    assert {"lockd:layer:0:digest", "lockd:layer:1:diff_id"} <= properties

    missing = run_lockd("images", "inspect", registry.ref("nope", "v1"), cwd=tmp_path, env=env)
    assert missing.returncode == 3 and "Traceback" not in missing.output
    to_file = run_lockd(
        "images", "inspect", registry.ref("cli", "v1"), "-o", str(tmp_path / "x"),
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert to_file.returncode == 2 and "--format json or cyclonedx" in to_file.stderr
    bad = run_lockd("images", "inspect", "oci:/nonexistent/dir", cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "Traceback" not in bad.output


def test_one_closure_answers_alike_for_an_image_and_the_same_tree_on_disk(
    registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    """The image's view (dynamic sections pre-read from the layer streams) and a directory
    view of the very same files give the same scan: ld.so.conf includes, LD_LIBRARY_PATH
    from the image's Env, soname links, RUNPATH, plugins, drivers and what is missing."""
    from lockd.snapshot import DirectoryFileSystem, scan_libraries

    base = base_layer("libz.so.1")
    base.file("etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n")
    base.file("etc/ld.so.conf.d/gl.conf", "/usr/local/gl/lib\n")
    base.file("usr/local/gl/lib/libGL.so.1.7.0", shared_object("libGL.so.1"))
    base.symlink("usr/local/gl/lib/libGL.so.1", "libGL.so.1.7.0")
    base.file("opt/foo/libfoo.so.1", shared_object("libfoo.so.1", needed=("libbar.so.3",)))
    app = venv_layer()
    app.file(f"{SITE}/cv2/cv2.abi3.so", shared_object(needed=("libGL.so.1", "libcuda.so.1")))
    app.file(f"{SITE}/foo/_foo.{EXT}", shared_object(needed=("libfoo.so.1", "libz.so.1")))
    app.file(f"{SITE}/nvidia/lib/libplugin.so.1", shared_object(needed=("libibverbs.so.1",)))
    env = [*ENV, "LD_LIBRARY_PATH=/opt/foo"]
    push(pusher, "alike", "v1", Image([base, app], env=env).parts())

    from_image = read(registry.ref("alike", "v1")).snapshot.library_scan
    root = tmp_path / "rootfs"
    for layer in (base, app):
        with tarfile.open(fileobj=io.BytesIO(layer.tar())) as archive:
            archive.extractall(root, filter="tar")
    on_disk = scan_libraries(
        DirectoryFileSystem(str(root)), (f"/{SITE}",), {"LD_LIBRARY_PATH": "/opt/foo"}
    )

    assert from_image is not None
    assert [(lib.soname, lib.status) for lib in from_image.unresolved] == [
        ("libbar.so.3", LibraryStatus.missing),  # needed by libfoo, found on LD_LIBRARY_PATH
        ("libcuda.so.1", LibraryStatus.driver),
        ("libibverbs.so.1", LibraryStatus.plugin),
    ]
    assert from_image.system["libGL.so.1"] == "/usr/local/gl/lib/libGL.so.1"
    for field in ("unresolved", "system", "scanned", "extension_modules", "loaded"):
        assert getattr(from_image, field) == getattr(on_disk, field), field

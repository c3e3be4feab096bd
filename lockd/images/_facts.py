"""An image's snapshot: the same ``Snapshot`` a venv probe yields, read from its root file system.

The primary Python environment (``_pythons``) gives the snapshot's ``python``,
``dists`` and torch flavour; the others are listed in the image facts. The
system side comes from the image's own files: ``os-release``, dpkg's status
database or rpm's ``rpmdb.sqlite``, ``ld.so.conf``, CUDA's ``version.json`` and
the config's ``Env``.
Nothing from the image runs.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from lockd import __version__
from lockd.snapshot import parse, rpmdb
from lockd.snapshot.closure import scan_libraries
from lockd.snapshot.elf import SHARED_OBJECT
from lockd.snapshot.image import ImageFacts, ImageLayer, PythonEnvironment
from lockd.snapshot.model import (
    Available,
    DebPackage,
    Dist,
    LibraryScan,
    Probe,
    RpmPackage,
    Snapshot,
    SystemInfo,
    TorchFlavour,
    Unavailable,
)
from lockd.urls import redact

from . import _pythons as pythons
from ._rootfs import MAX_CONTENT, RootFs, RootFsView, Wanted
from ._sources import ImageManifest

_DIST_FILES = frozenset({"METADATA", "RECORD", "INSTALLER", "direct_url.json", "PKG-INFO"})
_SYSTEM_FILES = frozenset(
    {
        "etc/os-release",
        "usr/lib/os-release",
        "var/lib/dpkg/status",
        "etc/ld.so.conf",
        *rpmdb.SQLITE_PATHS,
    }
)
_SYSTEM_DIRS = ("etc/ld.so.conf.d/", "var/lib/dpkg/status.d/")
_CUDA_VERSION_FILE = re.compile(r"^usr/local/cuda[^/]*/version\.json$")
_CUDA_LIBRARY = re.compile(
    r"^(lib(?:cudart|cublas|cublasLt|cudnn\w*|cufft\w*|curand|cusolver\w*|cusparse\w*|nccl"
    r"|nvrtc\w*|nvJitLink|cupti|nvToolsExt|cufile\w*|cusparseLt|npp\w*|nvjpeg))\.so"
)
_LIBC = re.compile(r"^libc(?:-\d+\.\d+)?\.so(?:\.6)?$")
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|PASSWD|CREDENTIAL|AUTH|PRIVATE|_KEY$|^KEY$", re.I)


def cuda_library(path: str) -> str | None:
    """The CUDA library a file is (``libcudart``), by its name; ``None`` for any other."""
    base = path.rpartition("/")[2]
    match = _CUDA_LIBRARY.match(base) if base.startswith("lib") else None
    return match[1] if match else None


def classify(path: str, size: int) -> Wanted | None:
    """What the snapshot keeps of a layer file: its bytes, its ELF dynamic section, or nothing.

    Called for every file of every layer: the regular expressions only run on names
    that a plain string test let through.
    """
    head, _, base = path.rpartition("/")
    if base in _DIST_FILES and head.endswith((".dist-info", ".egg-info")):
        return Wanted.CONTENT
    if (
        path.endswith((".egg-info", "/torch/version.py", "/pyvenv.cfg"))
        or path in _SYSTEM_FILES
        or path.startswith(_SYSTEM_DIRS)
        or (path.startswith("usr/local/cuda") and _CUDA_VERSION_FILE.match(path))
    ):
        return Wanted.CONTENT
    if ".so" not in base:
        return None
    if base.startswith("libc") and _LIBC.match(base):
        return Wanted.BOTH  # the closure needs its class; its banner names the glibc release
    if SHARED_OBJECT.search(base):
        return Wanted.ELF
    return None


def image_snapshot(manifest: ImageManifest, rootfs: RootFs) -> Snapshot:
    """The snapshot of an image's primary Python environment, with its image facts."""
    config = manifest.config.get("config")
    settings: Mapping[str, Any] = config if isinstance(config, Mapping) else {}
    env = _env(settings.get("Env"))
    found_envs = pythons.environments(rootfs)
    main = pythons.primary(rootfs, found_envs, env.get("PATH", pythons.DEFAULT_PATH))
    dpkg, rpm = _dpkg(rootfs), _rpm(rootfs)
    found = {(e.prefix, e.minor): pythons.read_dists(rootfs, e) for e in found_envs}
    dists, torch = found[main.prefix, main.minor] if main else ([], None)
    effective, shadowed = parse.split_shadowed(dists)
    interpreter = pythons.interpreter(rootfs, manifest, main, env, dpkg)
    system = SystemInfo(
        os_release=_os_release(rootfs),
        glibc=_glibc(rootfs, dpkg, rpm),
        dpkg=dpkg,
        rpm=rpm,
        ld_cache=Unavailable(
            "not read from an image: its ld.so.conf directories are searched instead"
        ),
        driver=Unavailable("an image has no NVIDIA driver: the container toolkit mounts it"),
        cuda=_cuda(rootfs, env),
        libraries=_libraries(rootfs, interpreter.site_packages, env),
    )
    return Snapshot(
        taken_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        lockd_version=__version__,
        python=interpreter,
        dists=effective,
        shadowed=shadowed,
        torch=Available(torch)
        if torch is not None
        else Unavailable(
            f"torch is not installed in {interpreter.prefix}"
            if main
            else "the image has no Python environment"
        ),
        system=Available(system),
        image=_facts(manifest, rootfs, settings, found_envs, main, found),
    )


# -- the system ------------------------------------------------------------------------------


def _os_release(rootfs: RootFs) -> Probe[Mapping[str, str]]:
    for path in ("etc/os-release", "usr/lib/os-release"):
        text = rootfs.read_text(path)
        if text is not None:
            return Available(parse.parse_os_release(text))
    return Unavailable("the image has neither /etc/os-release nor /usr/lib/os-release")


def _dpkg(rootfs: RootFs) -> Probe[tuple[DebPackage, ...]]:
    texts = [rootfs.read_text("var/lib/dpkg/status") or ""]
    texts += [
        rootfs.read_text(f"var/lib/dpkg/status.d/{name}") or ""
        for name in rootfs.listdir("var/lib/dpkg/status.d")
        if not name.endswith(".md5sums")
    ]
    if not any(texts):
        return Unavailable("the image has no dpkg database (/var/lib/dpkg/status)")
    return Available(parse.parse_dpkg_status("\n\n".join(texts)))


def _rpm(rootfs: RootFs) -> Probe[tuple[RpmPackage, ...]]:
    for path in rpmdb.SQLITE_PATHS:
        entry = rootfs.lookup(path)
        if entry is not None and entry.kind == "file":
            if entry.content is None:  # larger than the rootfs keeps
                return Unavailable(f"/{path} is larger than {MAX_CONTENT >> 20} MiB; not read")
            return rpmdb.probe(entry.content, f"/{path}")
    return rpmdb.absent(
        name for directory in rpmdb.DIRECTORIES for name in rootfs.listdir(directory)
    )


def _glibc(
    rootfs: RootFs, dpkg: Probe[tuple[DebPackage, ...]], rpm: Probe[tuple[RpmPackage, ...]]
) -> Probe[str]:
    version = (parse.glibc_from_packages(dpkg.value) if isinstance(dpkg, Available) else None) or (
        parse.glibc_from_packages(rpm.value, "glibc") if isinstance(rpm, Available) else None
    )
    if version:
        return Available(version)
    for path, entry in rootfs.files():
        if entry.content is not None and _LIBC.match(posixpath.basename(path)):
            version = parse.glibc_from_libc(entry.content)
            if version:
                return Available(version)
    return Unavailable("no glibc found (no libc6 or glibc package, no libc.so.6 banner; musl?)")


def _cuda(rootfs: RootFs, env: Mapping[str, str]) -> Probe[Any]:
    text = rootfs.read_text("usr/local/cuda/version.json")
    toolkit = parse.cuda_toolkit(text, env)
    if toolkit is None:
        return Unavailable(
            "no CUDA toolkit: /usr/local/cuda/version.json absent and none of "
            + ", ".join(parse.CUDA_ENV_VARS)
            + " in the image's Env"
        )
    return Available(toolkit)


def _libraries(
    rootfs: RootFs, site_packages: Sequence[str], env: Mapping[str, str]
) -> Probe[LibraryScan]:
    """The closure of the primary environment, resolved inside the image (as on a host)."""
    if not site_packages:
        return Unavailable("the image has no Python environment")
    return Available(scan_libraries(RootFsView(rootfs), tuple(site_packages), env))


# -- image facts ------------------------------------------------------------------------------


def _env(value: Any) -> dict[str, str]:
    items = value if isinstance(value, list) else []
    return dict(str(item).partition("=")[::2] for item in items)


def _redacted_env(value: Any) -> tuple[str, ...]:
    shown = []
    for name, text in _env(value).items():
        shown.append(
            f"{name}={'<redacted>' if _SECRET_NAME.search(name) and text else redact(text)}"
        )
    return tuple(shown)


def _facts(  # noqa: PLR0917 - the private last step of image_snapshot
    manifest: ImageManifest,
    rootfs: RootFs,
    settings: Mapping[str, Any],
    environments: Sequence[pythons.Environment],
    primary: pythons.Environment | None,
    found: Mapping[tuple[str, str], tuple[list[Dist], TorchFlavour | None]],
) -> ImageFacts:
    history = manifest.config.get("history")
    steps = [
        h.get("created_by")
        for h in (history if isinstance(history, list) else [])
        if isinstance(h, dict) and not h.get("empty_layer")
    ]
    if len(steps) != len(rootfs.layers):
        steps = [None] * len(rootfs.layers)
    labels = settings.get("Labels")

    def words(value: Any) -> tuple[str, ...] | None:
        return tuple(str(v) for v in value) if isinstance(value, list) else None

    return ImageFacts(
        reference=manifest.reference,
        transport=manifest.transport,
        name=manifest.name,
        digest=manifest.digest,
        index_digest=manifest.index_digest,
        config_digest=manifest.config_digest,
        platform=manifest.platform,
        created=_opt(manifest.config.get("created")),
        user=_opt(settings.get("User")) or None,
        env=_redacted_env(settings.get("Env")),
        entrypoint=words(settings.get("Entrypoint")),
        cmd=words(settings.get("Cmd")),
        working_dir=_opt(settings.get("WorkingDir")) or None,
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        layers=tuple(
            ImageLayer(
                digest=stats.digest,
                diff_id=stats.diff_id,
                media_type=stats.media_type,
                compression=stats.compression,
                compressed_size=stats.compressed_size,
                size=stats.size,
                created_by=_opt(step),
            )
            for stats, step in zip(rootfs.layers, steps, strict=True)
        ),
        environments=tuple(
            PythonEnvironment(
                prefix="/" + e.prefix,
                executable=pythons.executable(rootfs, e),
                version=e.minor,
                site_packages=tuple("/" + s for s in e.site_dirs),
                dists=tuple(sorted(f"{d.name}=={d.version}" for d in found[e.prefix, e.minor][0])),
                primary=e is primary,
            )
            for e in environments
        ),
        skipped=dict(sorted(rootfs.warnings.items())),
        cuda_libraries=_cuda_libraries(rootfs),
    )


def _cuda_libraries(rootfs: RootFs) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for path, entry in rootfs.files():
        library = cuda_library(path)
        if library and entry.size:
            found.setdefault(library, []).append("/" + path)
    return {name: tuple(sorted(paths)) for name, paths in sorted(found.items())}


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)

"""An image's snapshot: the same ``Snapshot`` a venv probe yields, read from its root file system.

Every Python environment is found by its ``site-packages``/``dist-packages``
directories; the one the image's ``PATH`` reaches first is the primary one
(the snapshot's ``python`` and ``dists``), the others are listed in the image
facts. Dists are read with the very code the venv probe runs (``_probe``), so
their RECORD digests compare across both. The system side comes from the
image's own files: ``os-release``, dpkg's status database, ``ld.so.conf``,
CUDA's ``version.json`` and the config's ``Env``. Nothing from the image runs.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from packaging.utils import canonicalize_name

from lockd import __version__
from lockd.snapshot import _probe, parse
from lockd.snapshot.closure import LoaderConfig, library_closure, parse_ld_so_conf
from lockd.snapshot.elf import ElfObject
from lockd.snapshot.model import (
    Available,
    DebPackage,
    Dist,
    ImageFacts,
    ImageLayer,
    Interpreter,
    LibraryScan,
    Probe,
    PythonEnvironment,
    Snapshot,
    SystemInfo,
    TorchFlavour,
    Unavailable,
)
from lockd.urls import redact

from ._rootfs import RootFs, Wanted
from ._sources import ImageManifest

_DIST_FILES = frozenset({"METADATA", "RECORD", "INSTALLER", "direct_url.json", "PKG-INFO"})
_SYSTEM_FILES = frozenset(
    {
        "etc/os-release",
        "usr/lib/os-release",
        "var/lib/dpkg/status",
        "etc/ld.so.conf",
    }
)
_SYSTEM_DIRS = ("etc/ld.so.conf.d/", "var/lib/dpkg/status.d/")
_CUDA_VERSION_FILE = re.compile(r"^usr/local/cuda[^/]*/version\.json$")
SHARED_OBJECT = re.compile(r"\.so(?:\.\d[\w.]*)?$")
CUDA_LIBRARY = re.compile(
    r"^(lib(?:cudart|cublas|cublasLt|cudnn\w*|cufft\w*|curand|cusolver\w*|cusparse\w*|nccl"
    r"|nvrtc\w*|nvJitLink|cupti|nvToolsExt|cufile\w*|cusparseLt|npp\w*|nvjpeg))\.so"
)
_LIBC = re.compile(r"^libc(?:-\d+\.\d+)?\.so(?:\.6)?$")
_SITE = re.compile(
    r"^(?P<pre>.*?)/?lib(?:64)?/python(?P<minor>\d+\.\d+)/(?P<kind>site|dist)-packages$"
)
_DEBIAN_SITE = "usr/lib/python3/dist-packages"
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|PASSWD|CREDENTIAL|AUTH|PRIVATE|_KEY$|^KEY$", re.I)
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ARCH = {"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "ppc64le": "ppc64le"}


def classify(path: str, size: int) -> Wanted | None:
    """What the snapshot keeps of a layer file: its bytes, its ELF dynamic section, or nothing."""
    head, _, base = path.rpartition("/")
    if base in _DIST_FILES and head.endswith((".dist-info", ".egg-info")):
        return Wanted.CONTENT
    if (
        path.endswith((".egg-info", "/torch/version.py", "/pyvenv.cfg"))
        or path in _SYSTEM_FILES
        or path.startswith(_SYSTEM_DIRS)
        or _CUDA_VERSION_FILE.match(path)
    ):
        return Wanted.CONTENT
    if _LIBC.match(base):
        return Wanted.BOTH  # the closure needs its class; its banner names the glibc release
    if SHARED_OBJECT.search(base):
        return Wanted.ELF
    return None


@dataclass(frozen=True, slots=True)
class _Environment:
    prefix: str  # relative to the root: "opt/venv", "usr"
    minor: str
    site_dirs: tuple[str, ...]  # in sys.path order
    venv: Mapping[str, str] | None  # pyvenv.cfg


def image_snapshot(manifest: ImageManifest, rootfs: RootFs) -> Snapshot:
    """The snapshot of an image's primary Python environment, with its image facts."""
    config = manifest.config.get("config")
    settings: Mapping[str, Any] = config if isinstance(config, Mapping) else {}
    env = _env(settings.get("Env"))
    environments = _environments(rootfs)
    primary = _primary(rootfs, environments, env.get("PATH", _DEFAULT_PATH))
    dpkg = _dpkg(rootfs)
    found: dict[str, tuple[list[Dist], TorchFlavour | None]] = {}
    for environment in environments:
        found[environment.prefix + environment.minor] = _dists(rootfs, environment)
    dists, torch = found[primary.prefix + primary.minor] if primary else ([], None)
    effective, shadowed = parse.split_shadowed(dists)
    interpreter = _interpreter(rootfs, manifest, primary, env, dpkg)
    system = SystemInfo(
        os_release=_os_release(rootfs),
        glibc=_glibc(rootfs, dpkg),
        dpkg=dpkg,
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
            if primary
            else "the image has no Python environment"
        ),
        system=Available(system),
        image=_facts(manifest, rootfs, settings, environments, primary, found),
    )


# -- Python environments ------------------------------------------------------------


def _environments(rootfs: RootFs) -> list[_Environment]:
    sites: dict[tuple[str, str], list[str]] = {}
    system_minor = _system_minor(rootfs)
    for path, entry in rootfs.entries.items():
        if entry.kind != "dir" or not path.endswith(("site-packages", "dist-packages")):
            continue
        if path == _DEBIAN_SITE:
            if system_minor:
                sites.setdefault(("usr", system_minor), []).append(path)
            continue
        match = _SITE.match(path)
        if match is None:
            continue
        prefix = match["pre"]
        if match["kind"] == "dist" and prefix == "usr/local":
            prefix = "usr"  # Debian's python3 reads /usr/local/lib/python3.X/dist-packages
        sites.setdefault((prefix, match["minor"]), []).append(path)
    found = []
    for (prefix, minor), dirs in sorted(sites.items()):
        cfg = rootfs.read_text(f"{prefix}/pyvenv.cfg")
        venv = _pyvenv(cfg) if cfg is not None else None
        found.append(_Environment(prefix, minor, tuple(sorted(dirs, key=_site_order)), venv))
    by_prefix = {(e.prefix, e.minor): e for e in found}
    # A venv that includes the system site-packages sees its base's after its own.
    return [
        _Environment(e.prefix, e.minor, e.site_dirs + _base_sites(e, by_prefix), e.venv)
        for e in found
    ]


def _base_sites(
    environment: _Environment, by_prefix: Mapping[tuple[str, str], _Environment]
) -> tuple[str, ...]:
    venv = environment.venv
    if not venv or venv.get("include-system-site-packages", "false").lower() != "true":
        return ()
    home = venv.get("home", "").strip("/")
    base = by_prefix.get((posixpath.dirname(home), environment.minor))
    return base.site_dirs if base else ()


def _site_order(path: str) -> int:
    # Debian's order: /usr/local/lib/python3.X/dist-packages, /usr/lib/python3/dist-packages,
    # /usr/lib/python3.X/dist-packages; elsewhere there is one directory.
    if path.startswith("usr/local/"):
        return 0
    return 1 if path == _DEBIAN_SITE else 2


def _system_minor(rootfs: RootFs) -> str | None:
    real = rootfs.resolve("usr/bin/python3") or ""
    match = re.search(r"python(\d+\.\d+)$", real)
    if match:
        return match[1]
    versions = sorted(
        (name.removeprefix("python") for name in rootfs.listdir("usr/lib")),
        key=lambda v: [int(p) for p in v.split(".") if p.isdigit()],
    )
    minors = [v for v in versions if re.fullmatch(r"3\.\d+", v)]
    return minors[-1] if minors else None


def _pyvenv(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    return values


def _primary(
    rootfs: RootFs, environments: Sequence[_Environment], path: str
) -> _Environment | None:
    """The environment whose ``python3`` (or ``python``) comes first on the image's ``PATH``."""
    by_prefix = {e.prefix: e for e in environments}
    for entry in path.split(":"):
        directory = entry.strip("/")
        for name in ("python3", "python"):
            executable = f"{directory}/{name}"
            if not rootfs.is_file(executable):
                continue
            prefix = posixpath.dirname(directory)
            if rootfs.is_file(f"{prefix}/pyvenv.cfg") and prefix in by_prefix:
                return by_prefix[prefix]  # a venv: its python links to the base interpreter
            real = rootfs.resolve(executable) or ""
            real_prefix = posixpath.dirname(posixpath.dirname(real))
            minor = re.search(r"python(\d+\.\d+)$", real)
            for environment in environments:
                if environment.prefix in (real_prefix, prefix) and (
                    minor is None or environment.minor == minor[1]
                ):
                    return environment
    with_dists = [e for e in environments if _count_dists(rootfs, e)]
    return max(with_dists, key=lambda e: _count_dists(rootfs, e)) if with_dists else None


def _count_dists(rootfs: RootFs, environment: _Environment) -> int:
    return sum(
        name.endswith((".dist-info", ".egg-info"))
        for site in environment.site_dirs
        for name in rootfs.listdir(site)
    )


def _dists(rootfs: RootFs, environment: _Environment) -> tuple[list[Dist], TorchFlavour | None]:
    """Every dist along the environment's site directories, and the torch flavour."""

    def read(path: str) -> bytes | None:
        return rootfs.read_bytes(path)

    def isdir(path: str) -> bool:
        return rootfs.is_dir(path)

    dists: list[Dist] = []
    torch_raw: dict[str, Any] | None = None
    for site in environment.site_dirs:
        location = "/" + site
        for entry in rootfs.listdir(site):
            if not entry.endswith((".dist-info", ".egg-info")):
                continue
            raw = _probe._dist(location, entry, read, isdir)
            if raw is None:
                continue
            if torch_raw is None and canonicalize_name(raw["name"]) == "torch":
                torch_raw = {**_probe._torch(raw, read), "version": raw["version"]}
            del raw["_record"]
            dists.append(Dist.from_dict(raw))
    effective, _ = parse.split_shadowed(dists)
    torch = None
    if torch_raw is not None:
        torch = parse.classify_torch(
            torch_raw["version"],
            torch_raw["version_py"],
            torch_raw["record_libs"],
            {d.canonical_name: d.version for d in effective},
        )
    return dists, torch


def _interpreter(
    rootfs: RootFs,
    manifest: ImageManifest,
    environment: _Environment | None,
    env: Mapping[str, str],
    dpkg: Probe[tuple[DebPackage, ...]],
) -> Interpreter:
    arch = str(manifest.config.get("architecture") or "")
    machine = _ARCH.get(arch, arch)
    if environment is None:
        return Interpreter(
            "", "", "cpython", "", "", "", f"linux-{machine}", machine, None, 64, (), ()
        )
    prefix = "/" + environment.prefix
    executable = _executable(rootfs, environment) or f"{prefix}/bin/python3"
    version = _full_version(environment, env, dpkg)
    venv = environment.venv
    base_prefix = (
        "/" + posixpath.dirname(venv["home"].strip("/")) if venv and venv.get("home") else prefix
    )
    sites = tuple("/" + s for s in environment.site_dirs)
    return Interpreter(
        executable=executable,
        version=version,
        implementation="cpython",
        implementation_version=version,
        prefix=prefix,
        base_prefix=base_prefix,
        platform=f"linux-{machine}",
        machine=machine,
        soabi=f"cpython-{environment.minor.replace('.', '')}-{machine}-linux-gnu",
        pointer_bits=64 if machine in ("x86_64", "aarch64", "ppc64le", "s390x") else 32,
        site_packages=sites,
        sys_path=sites,
    )


def _executable(rootfs: RootFs, environment: _Environment) -> str | None:
    for name in (f"python{environment.minor}", "python3", "python"):
        if rootfs.is_file(f"{environment.prefix}/bin/{name}"):
            return f"/{environment.prefix}/bin/{name}"
    return None


def _full_version(
    environment: _Environment, env: Mapping[str, str], dpkg: Probe[tuple[DebPackage, ...]]
) -> str:
    minor = environment.minor
    venv = environment.venv or {}
    candidates = [
        venv.get("version_info", ""),
        venv.get("version", ""),
        env.get("PYTHON_VERSION", ""),
    ]
    if isinstance(dpkg, Available):
        candidates += [
            p.version.split(":")[-1].split("-")[0]
            for p in dpkg.value
            if p.name.split(":")[0] in (f"python{minor}", f"python{minor}-minimal")
        ]
    for candidate in candidates:
        match = re.match(r"(\d+\.\d+\.\d+)", candidate)
        if match and match[1].startswith(minor + "."):
            return match[1]
    return minor


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


def _glibc(rootfs: RootFs, dpkg: Probe[tuple[DebPackage, ...]]) -> Probe[str]:
    if isinstance(dpkg, Available):
        version = parse.glibc_from_dpkg(dpkg.value)
        if version:
            return Available(version)
    for path, entry in rootfs.files():
        if entry.content is not None and _LIBC.match(posixpath.basename(path)):
            version = parse.glibc_from_libc(entry.content)
            if version:
                return Available(version)
    return Unavailable("no glibc found (no libc6 package, no libc.so.6 banner; musl?)")


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


class _ImageFs:
    """The closure's view of the image: absolute paths, resolved inside the image."""

    def __init__(self, rootfs: RootFs) -> None:
        self._rootfs = rootfs

    def is_file(self, path: str) -> bool:
        return self._rootfs.is_file(path)

    def realpath(self, path: str) -> str | None:
        real = self._rootfs.resolve(path)
        return None if real is None else "/" + real

    def dynamic(self, path: str) -> ElfObject | str | None:
        return self._rootfs.dynamic(path)


def _libraries(
    rootfs: RootFs, site_packages: Sequence[str], env: Mapping[str, str]
) -> Probe[LibraryScan]:
    if not site_packages:
        return Unavailable("the image has no Python environment")

    def expand(pattern: str) -> list[str]:
        directory, _, glob = pattern.rpartition("/")
        return [
            f"{directory}/{name}"
            for name in rootfs.listdir(directory)
            if fnmatch.fnmatchcase(name, glob) and rootfs.is_file(f"{directory}/{name}")
        ]

    loader = LoaderConfig(
        ld_library_path=tuple(p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p),
        conf_dirs=parse_ld_so_conf("/etc/ld.so.conf", rootfs.read_text, expand),
    )
    roots = tuple(site_packages)
    files = [
        "/" + path
        for path, entry in rootfs.files()
        if SHARED_OBJECT.search(path) and any(("/" + path).startswith(r + "/") for r in roots)
    ]
    return Available(library_closure(_ImageFs(rootfs), roots, files, loader))


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
    environments: Sequence[_Environment],
    primary: _Environment | None,
    found: Mapping[str, tuple[list[Dist], TorchFlavour | None]],
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
                executable=_executable(rootfs, e),
                version=e.minor,
                site_packages=tuple("/" + s for s in e.site_dirs),
                dists=tuple(sorted(f"{d.name}=={d.version}" for d in found[e.prefix + e.minor][0])),
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
        match = CUDA_LIBRARY.match(posixpath.basename(path))
        if match and entry.size:
            found.setdefault(match[1], []).append("/" + path)
    return {name: tuple(sorted(paths)) for name, paths in sorted(found.items())}


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)

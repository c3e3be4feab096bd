"""Python environments inside an image: where they are, which one ``PATH`` reaches, their dists.

Every ``site-packages``/``dist-packages`` directory belongs to a prefix (a venv,
``/usr/local``, Debian's ``/usr`` with its three directories); a venv's
``pyvenv.cfg`` names its base and whether it sees the base's packages. The
primary environment is the one whose ``python3`` (or ``python``) comes first
on the image's ``PATH``. Dists are read with the probe's own code, so RECORD
digests compare with a venv's.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name

from lockd.snapshot import _probe, parse
from lockd.snapshot.model import Available, DebPackage, Dist, Interpreter, Probe, TorchFlavour

from ._rootfs import RootFs
from ._sources import ImageManifest

_SITE = re.compile(
    r"^(?P<pre>.*?)/?lib(?:64)?/python(?P<minor>\d+\.\d+)/(?P<kind>site|dist)-packages$"
)
_DEBIAN_SITE = "usr/lib/python3/dist-packages"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ARCH = {"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "ppc64le": "ppc64le"}


@dataclass(frozen=True, slots=True)
class Environment:
    prefix: str  # relative to the root: "opt/venv", "usr"
    minor: str
    site_dirs: tuple[str, ...]  # in sys.path order
    venv: Mapping[str, str] | None  # pyvenv.cfg


def environments(rootfs: RootFs) -> list[Environment]:
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
        found.append(Environment(prefix, minor, tuple(sorted(dirs, key=_site_order)), venv))
    by_prefix = {(e.prefix, e.minor): e for e in found}
    # A venv that includes the system site-packages sees its base's after its own.
    return [
        Environment(e.prefix, e.minor, e.site_dirs + _base_sites(e, by_prefix), e.venv)
        for e in found
    ]


def _base_sites(
    environment: Environment, by_prefix: Mapping[tuple[str, str], Environment]
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


def primary(rootfs: RootFs, environments: Sequence[Environment], path: str) -> Environment | None:
    """The environment whose ``python3`` (or ``python``) comes first on the image's ``PATH``."""
    by_prefix = {e.prefix: e for e in environments}
    for entry in path.split(":"):
        directory = entry.strip("/")
        for name in ("python3", "python"):
            candidate = f"{directory}/{name}"
            if not rootfs.is_file(candidate):
                continue
            prefix = posixpath.dirname(directory)
            if rootfs.is_file(f"{prefix}/pyvenv.cfg") and prefix in by_prefix:
                return by_prefix[prefix]  # a venv: its python links to the base interpreter
            real = rootfs.resolve(candidate) or ""
            real_prefix = posixpath.dirname(posixpath.dirname(real))
            minor = re.search(r"python(\d+\.\d+)$", real)
            for environment in environments:
                if environment.prefix in (real_prefix, prefix) and (
                    minor is None or environment.minor == minor[1]
                ):
                    return environment
    with_dists = [e for e in environments if _count_dists(rootfs, e)]
    return max(with_dists, key=lambda e: _count_dists(rootfs, e)) if with_dists else None


def _count_dists(rootfs: RootFs, environment: Environment) -> int:
    return sum(
        name.endswith((".dist-info", ".egg-info"))
        for site in environment.site_dirs
        for name in rootfs.listdir(site)
    )


def read_dists(rootfs: RootFs, environment: Environment) -> tuple[list[Dist], TorchFlavour | None]:
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


def interpreter(
    rootfs: RootFs,
    manifest: ImageManifest,
    environment: Environment | None,
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
    sites = tuple("/" + s for s in environment.site_dirs)
    bits = 64 if machine in ("x86_64", "aarch64", "ppc64le", "s390x") else 32
    program = executable(rootfs, environment)
    if program is None:  # site-packages with nothing to run them: never an invented one
        return Interpreter(
            "", "", "cpython", "", prefix, prefix, f"linux-{machine}", machine, None, bits,
            sites, sites,
        )  # fmt: skip
    version = _full_version(environment, env, dpkg)
    venv = environment.venv
    base_prefix = (
        "/" + posixpath.dirname(venv["home"].strip("/")) if venv and venv.get("home") else prefix
    )
    return Interpreter(
        executable=program,
        version=version,
        implementation="cpython",
        implementation_version=version,
        prefix=prefix,
        base_prefix=base_prefix,
        platform=f"linux-{machine}",
        machine=machine,
        soabi=f"cpython-{environment.minor.replace('.', '')}-{machine}-linux-gnu",
        pointer_bits=bits,
        site_packages=sites,
        sys_path=sites,
    )


def executable(rootfs: RootFs, environment: Environment) -> str | None:
    for name in (f"python{environment.minor}", "python3", "python"):
        if rootfs.is_file(f"{environment.prefix}/bin/{name}"):
            return f"/{environment.prefix}/bin/{name}"
    return None


def _full_version(
    environment: Environment, env: Mapping[str, str], dpkg: Probe[tuple[DebPackage, ...]]
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

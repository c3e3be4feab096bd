"""I/O probes of the operating system: files, ``dpkg-query``, ``ldconfig``, ``nvidia-smi``.

Each probe answers ``Available(value)`` or ``Unavailable(why)``. Files are read
below ``root`` and commands are looked up on ``environ["PATH"]``, so tests build
a fake ``/sys`` and ``/proc`` tree and fake commands in a temporary directory.
Parsing is delegated to :mod:`lockd.snapshot.parse`.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from lockd.errors import ConfigError
from lockd.settings import env_default

from . import parse, rpmdb
from .closure import scan_libraries
from .filesystem import HOST
from .model import (
    Available,
    CudaToolkit,
    DebPackage,
    DriverVersion,
    LdCacheEntry,
    LibraryScan,
    Probe,
    RpmPackage,
    SystemInfo,
    Unavailable,
)

COMMAND_TIMEOUT_S = 60
# ldconfig lives in /sbin, which is not on an ordinary user's PATH on Debian.
_SBIN = ("/sbin", "/usr/sbin")


def probe(
    site_packages: Sequence[str] = (),
    *,
    root: Path = Path("/"),
    environ: Mapping[str, str] | None = None,
) -> SystemInfo:
    """Probe the system around an interpreter whose site-packages are ``site_packages``."""
    env = os.environ if environ is None else environ
    ld_cache = probe_ld_cache(env)
    # The interpreter runs on this host: its libraries resolve in the host's own file system.
    libraries: Probe[LibraryScan] = (
        Available(scan_libraries(HOST, site_packages, env, ld_cache.or_none()))
        if site_packages
        else Unavailable("the interpreter reported no site-packages directory")
    )
    return SystemInfo(
        os_release=probe_os_release(root),
        glibc=probe_glibc(),
        dpkg=probe_dpkg(env),
        rpm=probe_rpm(root),
        ld_cache=ld_cache,
        driver=probe_driver(root, env),
        cuda=probe_cuda(root, env),
        libraries=libraries,
    )


def probe_os_release(root: Path) -> Probe[Mapping[str, str]]:
    """``/etc/os-release``, else ``/usr/lib/os-release`` (the systemd fallback)."""
    for relative in ("etc/os-release", "usr/lib/os-release"):
        text = _read(root / relative)
        if text is not None:
            return Available(parse.parse_os_release(text))
    return Unavailable(
        f"neither {root / 'etc/os-release'} nor {root / 'usr/lib/os-release'} exists"
    )


def probe_glibc() -> Probe[str]:
    """The C library of this process (the snapshotted interpreter runs on the same one)."""
    try:
        raw = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        raw = None
    version = parse.parse_glibc(raw)
    if version is None:
        return Unavailable(f"not a glibc system (CS_GNU_LIBC_VERSION is {raw!r}; musl?)")
    return Available(version)


def probe_dpkg(environ: Mapping[str, str]) -> Probe[tuple[DebPackage, ...]]:
    """Installed Debian packages, when ``dpkg-query`` exists."""
    output = run_command(["dpkg-query", "-W", f"-f={parse.DPKG_FORMAT}"], environ)
    if isinstance(output, Unavailable):
        return output
    return Available(parse.parse_dpkg_query(output))


def probe_rpm(root: Path) -> Probe[tuple[RpmPackage, ...]]:
    """Installed RPM packages, read from the SQLite database (no ``rpm`` run)."""
    for relative in rpmdb.SQLITE_PATHS:
        path = root / relative
        try:
            if not stat.S_ISREG(path.stat().st_mode):
                continue
            with path.open("rb") as file:
                data = file.read(rpmdb.MAX_FILE + 1)
        except OSError:
            continue
        return rpmdb.probe(data, f"/{relative}")
    listed: list[str] = []
    for relative in rpmdb.DIRECTORIES:
        try:
            listed += [entry.name for entry in (root / relative).iterdir()]
        except OSError:
            continue
    return rpmdb.absent(listed)


def probe_ld_cache(environ: Mapping[str, str]) -> Probe[tuple[LdCacheEntry, ...]]:
    """The ``ld.so`` cache as ``ldconfig -p`` prints it."""
    output = run_command(["ldconfig", "-p"], environ, extra_path=_SBIN)
    if isinstance(output, Unavailable):
        return output
    return Available(parse.parse_ldconfig(output))


def probe_driver(root: Path, environ: Mapping[str, str]) -> Probe[DriverVersion]:
    """The NVIDIA driver version, in uv's order.

    ``LOCKD_CUDA_DRIVER_VERSION``, then ``/sys/module/nvidia/version``, then
    ``/proc/driver/nvidia/version``, then ``nvidia-smi``. The first that answers wins;
    when none does, the reason lists what each said.
    """
    override = env_default("LOCKD_CUDA_DRIVER_VERSION", environ)
    if override:
        version = parse.parse_sys_module_version(override)
        if version is None:
            raise ConfigError(
                f"LOCKD_CUDA_DRIVER_VERSION={override!r} is not a driver version.",
                hint="Set it to a version such as 550.54.14, or unset it to probe the machine.",
            )
        return Available(DriverVersion(version, "LOCKD_CUDA_DRIVER_VERSION"))
    tried: list[str] = []
    for relative, parser in (
        ("sys/module/nvidia/version", parse.parse_sys_module_version),
        ("proc/driver/nvidia/version", parse.parse_proc_driver_version),
    ):
        text = _read(root / relative)
        if text is None:
            tried.append(f"/{relative} absent")
            continue
        version = parser(text)
        if version:
            return Available(DriverVersion(version, f"/{relative}"))
        tried.append(f"/{relative} unrecognised")
    output = run_command(
        ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], environ
    )
    if isinstance(output, Unavailable):
        tried.append(output.reason)
    else:
        version = parse.parse_nvidia_smi(output)
        if version:
            return Available(DriverVersion(version, "nvidia-smi"))
        tried.append(f"nvidia-smi printed {output.strip()[:80]!r}")
    return Unavailable("no NVIDIA driver found: " + "; ".join(tried))


def probe_cuda(root: Path, environ: Mapping[str, str]) -> Probe[CudaToolkit]:
    """The image's CUDA toolkit: ``/usr/local/cuda/version.json``, else ``CUDA_VERSION`` & co."""
    toolkit = parse.cuda_toolkit(_read(root / "usr/local/cuda/version.json"), environ)
    if toolkit is None:
        return Unavailable(
            "no CUDA toolkit: /usr/local/cuda/version.json absent and none of "
            + ", ".join(parse.CUDA_ENV_VARS)
            + " set"
        )
    return Available(toolkit)


def run_command(
    argv: Sequence[str], environ: Mapping[str, str], *, extra_path: Sequence[str] = ()
) -> str | Unavailable:
    """Run a probe command found on ``environ["PATH"]``; its stdout, or why there is none."""
    search = os.pathsep.join([environ.get("PATH", os.defpath), *extra_path])
    executable = shutil.which(argv[0], path=search)
    if executable is None:
        return Unavailable(f"{argv[0]} not on PATH")
    try:
        completed = subprocess.run(
            [executable, *argv[1:]],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=COMMAND_TIMEOUT_S,
            env={**environ, "LC_ALL": "C"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Unavailable(f"{argv[0]} did not answer within {COMMAND_TIMEOUT_S} s")
    except OSError as exc:
        return Unavailable(f"{argv[0]} could not run: {exc.strerror or exc}")
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip().splitlines()
        last = detail[-1][:200] if detail else "no output"
        return Unavailable(f"{argv[0]} failed with exit code {completed.returncode}: {last}")
    return completed.stdout


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None

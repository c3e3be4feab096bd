"""Targets: one platform × one Python minor × one accelerator (pure)."""

from __future__ import annotations

import itertools
import platform as _platform
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from .errors import UsageError

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Platform:
    """An operating system and CPU pair, as lockd names it."""

    name: str
    os: str  # linux | macos | windows
    arch: str  # x86_64 | aarch64 | arm64
    conda_subdir: str
    oci_platform: str  # os/architecture as registries spell it

    def uv_platform(self, glibc: str = "2.28") -> str:
        """The ``--python-platform`` value uv understands for this platform."""
        if self.os == "linux":
            major, minor = glibc.split(".")
            return f"{self.arch}-manylinux_{major}_{minor}"
        if self.os == "macos":
            return "aarch64-apple-darwin"
        return "x86_64-pc-windows-msvc"


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform("linux-x86_64", "linux", "x86_64", "linux-64", "linux/amd64"),
        Platform("linux-aarch64", "linux", "aarch64", "linux-aarch64", "linux/arm64"),
        Platform("macos-arm64", "macos", "arm64", "osx-arm64", "darwin/arm64"),
        Platform("windows-x86_64", "windows", "x86_64", "win-64", "windows/amd64"),
    )
}

_CUDA_RE = re.compile(r"^(?:cu(?P<compact>\d{3,4})|(?:cuda)?(?P<dotted>\d{2}\.\d))$")
_ROCM_RE = re.compile(r"^rocm(?P<version>\d+\.\d+(?:\.\d+)?)$")


@dataclass(frozen=True, slots=True, order=True)
class Accelerator:
    """``cpu``, a CUDA version (``cu124``), a ROCm version (``rocm6.2``) or ``xpu``."""

    kind: str  # cpu | cuda | rocm | xpu
    version: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        """The PyTorch index variant name: ``cpu``, ``cu124``, ``rocm6.2``, ``xpu``."""
        if self.kind == "cuda":
            return "cu" + "".join(str(part) for part in self.version)
        if self.kind == "rocm":
            return "rocm" + ".".join(str(part) for part in self.version)
        return self.kind

    @property
    def cuda_version(self) -> str | None:
        """``"12.4"`` for ``cu124``; ``None`` for anything that is not CUDA."""
        return ".".join(map(str, self.version)) if self.kind == "cuda" else None

    def __str__(self) -> str:
        return self.name


CPU = Accelerator("cpu")


def parse_accelerator(text: str) -> Accelerator:
    """Parse ``cpu``, ``cu124``, ``12.4``, ``cuda12.4``, ``rocm6.2`` or ``xpu``."""
    value = text.strip().lower()
    if value in {"cpu", "xpu"}:
        return Accelerator(value)
    if match := _CUDA_RE.match(value):
        if compact := match["compact"]:
            return Accelerator("cuda", (int(compact[:-1]), int(compact[-1])))
        major, minor = match["dotted"].split(".")
        return Accelerator("cuda", (int(major), int(minor)))
    if match := _ROCM_RE.match(value):
        return Accelerator("rocm", tuple(int(p) for p in match["version"].split(".")))
    raise UsageError(
        f"Unknown accelerator {text!r}.",
        hint="Use cpu, a CUDA variant as PyTorch names its indexes (cu118, cu121, cu124, "
        "cu126, cu128, …, or 12.4), rocmX.Y or xpu.",
    )


def parse_platform(text: str) -> Platform:
    try:
        return PLATFORMS[text.strip().lower()]
    except KeyError:
        raise UsageError(
            f"Unknown platform {text!r}.", hint=f"Use one of: {', '.join(PLATFORMS)}."
        ) from None


def parse_python(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(?:py)?(\d)\.?(\d{1,2})", text.strip())
    if not match:
        raise UsageError(
            f"Unknown Python version {text!r}.", hint="Give a minor version such as 3.11."
        )
    return int(match[1]), int(match[2])


@dataclass(frozen=True, slots=True, order=True)
class Target:
    """One platform × one Python minor × one accelerator."""

    platform: Platform
    python: tuple[int, int]
    accelerator: Accelerator

    @property
    def id(self) -> str:
        """``linux-x86_64-py311-cu124``: no dots, as PEP 751 lock names require."""
        major, minor = self.python
        return f"{self.platform.name}-py{major}{minor}-{self.accelerator.name.replace('.', '')}"

    @property
    def python_version(self) -> str:
        return "{}.{}".format(*self.python)

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker values of this target, to evaluate dependency markers for it."""
        os_name = self.platform.os
        version = self.python_version
        return {
            "implementation_name": "cpython",
            "implementation_version": f"{version}.0",
            "os_name": "nt" if os_name == "windows" else "posix",
            "platform_machine": {"windows": "AMD64", "macos": "arm64"}.get(
                os_name, self.platform.arch
            ),
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": {"linux": "Linux", "macos": "Darwin", "windows": "Windows"}[os_name],
            "platform_version": "",
            "python_full_version": f"{version}.0",
            "python_version": version,
            "sys_platform": {"linux": "linux", "macos": "darwin", "windows": "win32"}[os_name],
            "extra": "",
        }

    def __str__(self) -> str:
        return self.id


def expand_matrix(
    platforms: Iterable[str], pythons: Iterable[str], accelerators: Iterable[str]
) -> list[Target]:
    """Every combination, in a stable order, without duplicates."""
    plats = _unique(parse_platform(p) for p in platforms)
    pys = _unique(parse_python(p) for p in pythons)
    accs = _unique(parse_accelerator(a) for a in accelerators)
    if not (plats and pys and accs):
        raise UsageError(
            "The target matrix is empty.",
            hint="Give at least one --platform, --python and --cuda (or set them in lockd.toml).",
        )
    return [Target(p, py, a) for p, py, a in itertools.product(plats, pys, accs)]


def parse_target_id(text: str) -> Target:
    """The inverse of ``Target.id``."""
    match = re.fullmatch(r"(?P<plat>[a-z]+-[a-z0-9_]+)-py(?P<py>\d{2,3})-(?P<acc>[a-z0-9]+)", text)
    if not match:
        raise UsageError(
            f"Unknown target {text!r}.", hint="Targets look like linux-x86_64-py311-cu124."
        )
    acc = match["acc"]
    if acc.startswith("rocm") and "." not in acc:
        acc = f"rocm{acc[4]}.{acc[5:]}"
    py = match["py"]
    return Target(parse_platform(match["plat"]), (int(py[0]), int(py[1:])), parse_accelerator(acc))


def host_platform() -> Platform | None:
    """The platform lockd is running on, if it is one lockd knows."""
    machine = _platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    system = {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(sys.platform)
    for candidate in PLATFORMS.values():
        if candidate.os == system and arch in {
            candidate.arch,
            "aarch64" if candidate.arch == "arm64" else "",
        }:
            return candidate
    return None


def host_python() -> tuple[int, int]:
    return sys.version_info[:2]


def _unique(items: Iterable[_T]) -> list[_T]:
    seen: dict[_T, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)

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

# The variant indexes PyTorch has published (https://download.pytorch.org/whl/<variant>).
# A name outside these lists is a typo far more often than a brand-new variant, and a
# typo would otherwise surface as an index error after resolution started.
CUDA_VARIANTS: tuple[str, ...] = (
    "cu92",
    "cu100",
    "cu101",
    "cu102",
    "cu110",
    "cu111",
    "cu113",
    "cu115",
    "cu116",
    "cu117",
    "cu118",
    "cu121",
    "cu124",
    "cu126",
    "cu128",
    "cu129",
    "cu130",
)
ROCM_VARIANTS: tuple[str, ...] = (
    "rocm4.0.1",
    "rocm4.1",
    "rocm4.2",
    "rocm4.5.2",
    "rocm5.0",
    "rocm5.1.1",
    "rocm5.2",
    "rocm5.3",
    "rocm5.4.2",
    "rocm5.5",
    "rocm5.6",
    "rocm5.7",
    "rocm6.0",
    "rocm6.1",
    "rocm6.2",
    "rocm6.2.4",
    "rocm6.3",
    "rocm6.4",
    "rocm7.0",
)


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
    """Parse ``cpu``, ``cu124``, ``12.4``, ``cuda12.4``, ``rocm6.2`` or ``xpu``.

    CUDA and ROCm versions must be variants PyTorch publishes (``CUDA_VARIANTS``,
    ``ROCM_VARIANTS``).
    """
    value = text.strip().lower()
    if value in {"cpu", "xpu"}:
        return Accelerator(value)
    if match := _CUDA_RE.match(value):
        if compact := match["compact"]:
            accelerator = Accelerator("cuda", (int(compact[:-1]), int(compact[-1])))
        else:
            major, minor = match["dotted"].split(".")
            accelerator = Accelerator("cuda", (int(major), int(minor)))
        if accelerator.name not in CUDA_VARIANTS:
            raise UsageError(
                f"{text.strip()!r} is not a CUDA variant PyTorch publishes.",
                hint="Known CUDA variants: " + ", ".join(CUDA_VARIANTS) + " (or as versions: "
                "12.4 means cu124). Other accelerators: cpu, rocmX.Y, xpu.",
            )
        return accelerator
    if match := _ROCM_RE.match(value):
        accelerator = Accelerator("rocm", tuple(int(p) for p in match["version"].split(".")))
        if accelerator.name not in ROCM_VARIANTS:
            raise UsageError(
                f"{text.strip()!r} is not a ROCm variant PyTorch publishes.",
                hint="Known ROCm variants: " + ", ".join(ROCM_VARIANTS) + ".",
            )
        return accelerator
    raise UsageError(
        f"Unknown accelerator {text!r}.",
        hint="Use cpu, a CUDA variant as PyTorch names its indexes ("
        + ", ".join(CUDA_VARIANTS[-6:])
        + ", or a version such as 12.4), a ROCm variant (rocm6.2) or xpu.",
    )


def parse_platform(text: str) -> Platform:
    try:
        return PLATFORMS[text.strip().lower()]
    except KeyError:
        raise UsageError(
            f"Unknown platform {text!r}.", hint=f"Use one of: {', '.join(PLATFORMS)}."
        ) from None


# CPython minors a lock can be made for: uv's oldest, and the newest released (3.15: 2026-10).
PYTHONS = ((3, 8), (3, 15))


def parse_python(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(?:py)?(\d)\.?(\d{1,2})", text.strip())
    if not match:
        raise UsageError(
            f"Unknown Python version {text!r}.", hint="Give a minor version such as 3.11."
        )
    version = int(match[1]), int(match[2])
    oldest, newest = PYTHONS
    if not oldest <= version <= newest:
        raise UsageError(
            f"No released CPython {version[0]}.{version[1]} to lock for ({text!r}).",
            hint=f"Give a minor version from {oldest[0]}.{oldest[1]} to {newest[0]}.{newest[1]}.",
        )
    return version


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
    if acc.startswith("rocm"):  # ids drop the dots: rocm624 is rocm6.2.4
        acc = next((v for v in ROCM_VARIANTS if v.replace(".", "") == acc), acc)
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

"""Is the conda solution really the CUDA (or CPU) build? Pure checks on solved packages.

A ``cuXYZ`` target that resolved a CPU-only PyTorch is a failed lock, not a
warning. The flavour of a conda build shows in several places, all checked:

* the build string: conda-forge writes ``cpu_generic_py312h…`` /
  ``cuda126_mkl_py312h…``, the pytorch channel ``py3.11_cpu_0`` /
  ``py3.11_cuda12.4_cudnn9.1.0_0``;
* marker packages: ``pytorch-cpu`` / ``cpuonly`` (CPU), ``pytorch-gpu`` /
  ``pytorch-cuda`` (CUDA);
* ``track_features`` containing ``cpu`` (how CPU builds are de-prioritised);
* CUDA dependencies: ``__cuda``, ``cuda-version``, ``cudatoolkit``, ``pytorch-cuda``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lockd.errors import VerificationError

if TYPE_CHECKING:
    from lockd.targets import Accelerator

    from .rattler import CondaPackage, CondaSolution

CONDA_TORCH_FAMILY: tuple[str, ...] = (
    "pytorch",
    "pytorch-cpu",
    "pytorch-gpu",
    "libtorch",
    "torchvision",
    "torchaudio",
    "pytorch-mutex",
    "pytorch-cuda",
    "cpuonly",
)
_CPU_MARKERS = {"pytorch-cpu": "is the CPU-only metapackage", "cpuonly": "forces CPU builds"}
_CUDA_MARKERS = {"pytorch-gpu": "is the CUDA metapackage", "pytorch-cuda": "selects CUDA builds"}
_CUDA_DEPENDS = ("__cuda", "cuda-version", "cudatoolkit", "pytorch-cuda")
# cuda124 / cuda12.4 / cuda_12.4 / a bare cuda as a token of the build string.
_CUDA_BUILD = re.compile(
    r"(?:^|_)cuda_?(?:(?P<dotted>\d{1,2}\.\d{1,2})|(?P<compact>\d{2,4}))?(?:_|$)"
)
_CPU_BUILD = re.compile(r"cpu", re.IGNORECASE)
_LOWER_BOUND = re.compile(r"^(?:>=|==)?\s*(?P<version>\d+\.\d+)")


@dataclass(frozen=True, slots=True)
class BuildFlavour:
    """What one package's metadata says about it: ``cpu``, ``cuda`` or ``unknown``."""

    kind: str
    reason: str
    cuda_version: str | None = None


@dataclass(frozen=True, slots=True)
class BuildMismatch:
    """A PyTorch-family package whose flavour the target does not allow."""

    package: CondaPackage
    flavour: BuildFlavour


def build_flavour(pkg: CondaPackage) -> BuildFlavour:
    """Classify one package as a CPU build, a CUDA build, or neither (pure).

    The checks run from the most to the least explicit marker.
    """
    return (
        _by_name(pkg)
        or _by_build_string(pkg)
        or _by_track_features(pkg)
        or _by_depends(pkg)
        or BuildFlavour("unknown", "no CPU or CUDA marker")
    )


def _by_name(pkg: CondaPackage) -> BuildFlavour | None:
    if pkg.name in _CPU_MARKERS:
        return BuildFlavour("cpu", f"{pkg.name} {_CPU_MARKERS[pkg.name]}")
    if pkg.name in _CUDA_MARKERS:
        # pytorch-cuda's version is the CUDA version; pytorch-gpu's is PyTorch's.
        cuda = ".".join(pkg.version.split(".")[:2]) if pkg.name == "pytorch-cuda" else None
        return BuildFlavour("cuda", f"{pkg.name} {_CUDA_MARKERS[pkg.name]}", cuda)
    return None


def _by_build_string(pkg: CondaPackage) -> BuildFlavour | None:
    if match := _CUDA_BUILD.search(pkg.build):
        version = match["dotted"] or (_compact(match["compact"]) if match["compact"] else None)
        return BuildFlavour("cuda", f"build string {pkg.build!r} marks a CUDA build", version)
    if _CPU_BUILD.search(pkg.build):
        return BuildFlavour("cpu", f"build string {pkg.build!r} marks a CPU build")
    return None


def _by_track_features(pkg: CondaPackage) -> BuildFlavour | None:
    cpu = [feature for feature in pkg.track_features if "cpu" in feature.lower()]
    return BuildFlavour("cpu", f"track_features {cpu[0]!r} marks a CPU build") if cpu else None


def _by_depends(pkg: CondaPackage) -> BuildFlavour | None:
    for dep in pkg.depends:
        name, _, spec = dep.strip().partition(" ")
        if name in _CUDA_DEPENDS:
            bound = _LOWER_BOUND.match(spec.strip())
            return BuildFlavour(
                "cuda", f"it depends on {dep!r}", bound["version"] if bound else None
            )
    return None


def build_mismatches(
    solution: CondaSolution, accelerator: Accelerator, family: Iterable[str] = CONDA_TORCH_FAMILY
) -> tuple[BuildMismatch, ...]:
    """The family packages of ``solution`` whose flavour contradicts ``accelerator`` (pure).

    A CUDA target must not contain CPU builds (nor CUDA builds for another CUDA
    version, where the build string names one); a cpu target must not contain
    CUDA builds. ROCm/XPU targets are not checked here.
    """
    members = set(family)
    found: list[BuildMismatch] = []
    for pkg in solution.packages:
        if pkg.name not in members:
            continue
        flavour = build_flavour(pkg)
        if accelerator.kind == "cuda":
            # Only a build string names the CUDA a build is for; a dependency's
            # lower bound (cuda-version >=12.0) does not.
            wrong_version = (
                flavour.kind == "cuda"
                and "build string" in flavour.reason
                and flavour.cuda_version is not None
                and flavour.cuda_version != accelerator.cuda_version
            )
            if flavour.kind == "cpu" or wrong_version:
                found.append(BuildMismatch(pkg, flavour))
        elif accelerator.kind == "cpu" and flavour.kind == "cuda":
            found.append(BuildMismatch(pkg, flavour))
    return tuple(found)


def offered_cuda_versions(records: Iterable[CondaPackage]) -> tuple[str, ...]:
    """The CUDA versions the given records have builds for, ascending (pure)."""
    versions = {
        flavour.cuda_version
        for flavour in map(build_flavour, records)
        if flavour.kind == "cuda" and flavour.cuda_version
    }
    return tuple(sorted(versions, key=lambda v: tuple(int(p) for p in v.split("."))))


def mismatch_error(
    mismatches: Sequence[BuildMismatch],
    target_id: str,
    accelerator: Accelerator,
    subdir: str,
    offered: Iterable[CondaPackage] = (),
) -> VerificationError:
    """One paragraph that names the target, the package, the build and why (pure).

    ``offered`` are the family records the channels have for the target's
    subdir; for a CUDA target they tell which CUDA versions could be locked.
    """
    first = mismatches[0]
    pkg, flavour = first.package, first.flavour
    others = "".join(
        f" Also {m.package.name} {m.package.version} ({m.package.build})." for m in mismatches[1:]
    )
    if accelerator.kind != "cuda":
        return VerificationError(
            f"Target {target_id} is a CPU target but resolved the CUDA build of {pkg.name} "
            f"{pkg.version} ({pkg.build}): {flavour.reason}.{others}",
            target=target_id,
            hint="Remove the CUDA pin (pytorch-gpu, pytorch-cuda, =*=cuda*) for cpu targets.",
        )
    cuda = accelerator.cuda_version
    what = "a CPU build" if flavour.kind == "cpu" else f"a CUDA {flavour.cuda_version} build"
    message = (
        f"Target {target_id} needs CUDA {cuda} builds, but {pkg.name} {pkg.version} resolved "
        f"to {what} ({pkg.build}): {flavour.reason}.{others}"
    )
    versions = offered_cuda_versions(offered)
    if not versions:
        message += f" The channels offer no CUDA build of the PyTorch family for {subdir}."
        hint = "Lock this platform with --cuda cpu, or add a channel with CUDA builds for it."
    elif cuda not in versions:
        message += (
            f" The channels have CUDA builds for {subdir} only for CUDA {', '.join(versions)}."
        )
        hint = f"Lock one of those CUDA versions (--cuda {versions[-1]}), or add a channel "
        hint += f"with CUDA {cuda} builds."
    else:
        message += (
            f" CUDA {cuda} builds exist for {subdir}, but none fits the other specs "
            "(the Python version, for example)."
        )
        hint = f"Pin the build ({pkg.name}=*=cuda*) to see the conflict."
    return VerificationError(message, target=target_id, hint=hint)


def _compact(digits: str) -> str:
    """``124`` -> ``12.4``, ``118`` -> ``11.8``, ``1210`` -> ``12.10``."""
    return f"{digits[:2]}.{digits[2:]}" if len(digits) > 2 else f"{digits[0]}.{digits[1:]}"

"""Is the lock what the target says it is? (pure checks)

A ``cu124`` target that resolved a CPU-only torch is a failed lock, not a
warning. Coming from a CUDA index proves nothing: on cu124 the linux-aarch64
wheels carry no local tag and are CPU builds, and PyPI's Linux torch is a CUDA
build without a tag, whose CUDA version shows only in its ``Requires-Dist``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import VerificationError
from ..routing import VARIANT_INDEX_NAME, IndexPlan, RoutedIndex, index_of
from ..targets import Target
from .interface import Resolution

TORCH = "torch"
TAGGED_FAMILY = ("torch", "torchvision", "torchaudio")
_RUNTIMES = ("nvidia-cuda-runtime-cu", "cuda-toolkit")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What verification concluded about a lock that passed."""

    flavour: str | None  # "cuda 12.4", "cpu", "rocm 6.2", None when there is no torch
    notes: tuple[str, ...] = ()


def cuda_from_requires(
    requires: Sequence[str], environment: Mapping[str, str] | None = None
) -> str | None:
    """The CUDA major.minor a torch build bundles, from its ``Requires-Dist`` lines.

    With ``environment`` (a target's marker values) only the lines that apply to
    that target count: PyPI's aarch64 torch 2.6.0 lists the CUDA runtime with a
    ``platform_machine == "x86_64"`` marker and is a CPU build.
    """
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        marker = req.marker
        if (
            environment is not None
            and marker is not None
            and not marker.evaluate(dict(environment))
        ):
            continue
        name = canonicalize_name(req.name)
        if not name.startswith(_RUNTIMES):
            continue
        for spec in req.specifier:
            if spec.operator in {"==", "==="}:
                try:
                    release = Version(spec.version.rstrip(".*")).release
                except InvalidVersion:
                    continue
                if len(release) >= 2:
                    return f"{release[0]}.{release[1]}"
    return None


def local_flavour(version: str) -> tuple[str, str | None] | None:
    """``2.4.0+cu124`` -> ("cuda", "12.4"); ``+cpu`` -> ("cpu", None); no tag -> None."""
    try:
        local = Version(version).local
    except InvalidVersion:
        return None
    if not local:
        return None
    tag = str(local).split(".")[0]
    if tag == "cpu":
        return ("cpu", None)
    if tag.startswith("cu") and tag[2:].isdigit():
        digits = tag[2:]
        return ("cuda", f"{int(digits[:-1])}.{digits[-1]}")
    if tag.startswith("rocm"):
        return ("rocm", str(local).removeprefix("rocm"))
    return (tag, None)


def verify(
    resolution: Resolution,
    plan: IndexPlan,
    requires: Mapping[str, Sequence[str]],
) -> Verdict:
    """Check a resolution against its target; raise ``VerificationError`` on a broken rule.

    ``requires`` maps a package name to its ``Requires-Dist`` lines, for the
    torch-family packages whose metadata decides their flavour.
    """
    target = resolution.target
    _check_indexes(resolution, plan)
    packages = {p.name: p for p in resolution.packages}
    torch = packages.get(TORCH)
    if torch is None:
        return Verdict(None, ("no torch in this lock: the accelerator was not checked",))
    file = torch.files[0].filename if torch.files else "?"
    tagged = local_flavour(torch.version)
    bundled = cuda_from_requires(requires.get(TORCH, ()), target.marker_environment())
    acc = target.accelerator
    where = f"Target {target.id}: torch {torch.version} ({file})"

    if acc.kind == "cuda":
        want = acc.cuda_version
        if tagged is not None and tagged[0] == "cpu":
            raise _fail(
                target, f"{where} is a CPU-only build (local tag +cpu), not CUDA {want}.", plan
            )
        if tagged is not None and tagged[0] == "cuda":
            if tagged[1] != want:
                raise _fail(
                    target, f"{where} is built for CUDA {tagged[1]}, not CUDA {want}.", plan
                )
            flavour = f"cuda {tagged[1]}"
        elif bundled is not None:
            if bundled != want:
                raise _fail(
                    target,
                    f"{where} bundles the CUDA {bundled} runtime "
                    "(by its nvidia/cuda requirements), "
                    f"not CUDA {want}.",
                    plan,
                )
            flavour = f"cuda {bundled}"
        else:
            raise _fail(
                target,
                f"{where} is a CPU-only build: it has no CUDA local tag and requires no "
                f"nvidia CUDA runtime, so it cannot use CUDA {want}.",
                plan,
            )
        _check_companions(resolution, acc.name)
        return Verdict(flavour)

    if acc.kind == "cpu":
        nvidia = sorted(
            p.name for p in resolution.packages if p.name.startswith(("nvidia-", "cuda-"))
        )
        if (tagged is not None and tagged[0] == "cuda") or bundled is not None or nvidia:
            detail = (
                f"; it pulls in {', '.join(nvidia[:4])}{' …' if len(nvidia) > 4 else ''}"
                if nvidia
                else ""
            )
            raise VerificationError(
                f"{where} is a CUDA build, but the target is cpu{detail}: gigabytes of GPU "
                "libraries the target cannot use.",
                target=target.id,
                hint="Take torch from the cpu variant index (pytorch-index = a PyTorch index "
                "URL rather than 'pypi'), or drop the cpu target.",
            )
        return Verdict("cpu")

    if tagged is None or tagged[0] != acc.kind:
        raise _fail(target, f"{where} does not carry the {acc.name} local tag.", plan)
    if acc.kind == "rocm" and tagged[1] != ".".join(map(str, acc.version)):
        raise _fail(target, f"{where} is built for ROCm {tagged[1]}, not {acc.name}.", plan)
    return Verdict(f"{acc.kind} {tagged[1] or ''}".strip())


def _check_indexes(resolution: Resolution, plan: IndexPlan) -> None:
    """Both routing rules: a routed package only from its index, nothing else from one."""
    routes = {route.public_url: route for route in plan.routes()}
    if not routes:
        return
    for package in resolution.packages:
        expected = plan.expected_index(package.name)
        own = plan.route_of(package.name)
        for file in package.files:
            actual = index_of(file.url, plan)
            if actual == expected:
                continue
            what = (
                f"Target {resolution.target.id}: {package.name} {package.version} ({file.filename})"
            )
            if own is not None:
                why = (
                    ""
                    if own.name == VARIANT_INDEX_NAME
                    else " (a same-named package on another index is how dependency confusion "
                    "happens)"
                )
                raise VerificationError(
                    f"{what} came from {actual}, but it is routed to the {_label(own)} index "
                    f"and must come from {expected} only{why}.",
                    target=resolution.target.id,
                    hint=_routing_hint(own),
                )
            raise VerificationError(
                f"{what} came from the {_label(routes[actual])} index {actual}, which serves "
                f"only {', '.join(sorted(routes[actual].packages))}; {package.name} must come "
                f"from the default index {expected}.",
                target=resolution.target.id,
                hint=_routing_hint(routes[actual]),
            )


def _routing_hint(route: RoutedIndex) -> str:
    if route.name == VARIANT_INDEX_NAME:
        return (
            "Do not list the PyTorch index as an extra index; lockd routes the family itself "
            "(add names to pytorch-family to route more)."
        )
    return (
        "Route packages only with [[index]] tables in lockd.toml (never an extra index); "
        "list every package the private index must serve in its packages."
    )


def _label(route: RoutedIndex) -> str:
    return "PyTorch" if route.name == VARIANT_INDEX_NAME else f"private {route.name!r}"


def _check_companions(resolution: Resolution, variant: str) -> None:
    """torchvision/torchaudio from a variant index must match torch's variant."""
    for package in resolution.packages:
        if package.name in TAGGED_FAMILY[1:]:
            tagged = local_flavour(package.version)
            if tagged is not None and tagged[0] == "cpu":
                raise VerificationError(
                    f"Target {resolution.target.id}: {package.name} {package.version} is a CPU "
                    f"build next to a {variant} torch.",
                    target=resolution.target.id,
                    hint=f"Pin {package.name} to a release the {variant} index offers.",
                )


def _fail(target: Target, message: str, plan: IndexPlan) -> VerificationError:
    if target.platform.os == "macos":
        hint = "PyTorch publishes no CUDA builds for macOS: lock macos-arm64 with --cuda cpu only."
    elif plan.variant is not None:
        hint = (
            f"The index {plan.public()['variant']} offers no CUDA build of torch for "
            f"{target.platform.name} / Python {target.python_version}; pick another torch "
            "version or CUDA variant, or drop this target."
        )
    else:
        hint = (
            "Take torch from the PyTorch variant index instead of 'pypi', "
            "or change the CUDA version."
        )
    return VerificationError(message, target=target.id, hint=hint)

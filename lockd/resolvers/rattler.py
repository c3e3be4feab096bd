"""Conda resolution with py-rattler: one solve per conda target, all targets at once.

A conda target is one platform x one accelerator (``linux-x86_64-cu124``); its
Python comes from the solution. Each target is solved for its conda subdir
plus ``noarch`` with the virtual packages *of the target* (``__cuda`` for CUDA
targets, ``__glibc``/``__linux``/``__osx``/``__win``/``__unix``/``__archspec``
from :class:`VirtualPackageVersions`), never those of the machine lockd runs
on. One rattler ``Gateway`` with an on-disk cache is shared by every target,
so each channel subdir is fetched once, and the targets are solved
concurrently.

The domain values (:class:`CondaTarget`, :class:`CondaPackage`,
:class:`CondaSolution`) are plain frozen dataclasses; ``rattler`` itself is
imported lazily, so importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lockd.errors import IndexError_, MatrixError, ResolutionError, UsageError, clipped
from lockd.inputs.environment import CondaEnvironment
from lockd.targets import Accelerator, Platform, parse_accelerator, parse_platform
from lockd.urls import redact, shown

from .conda_verify import (
    CONDA_TORCH_FAMILY,
    build_mismatches,
    mismatch_error,
    offered_cuda_versions,
)

if TYPE_CHECKING:
    from rattler import Gateway, GenericVirtualPackage, MatchSpec, RepoDataRecord, Subdir

DEFAULT_CHANNEL_BASE = "https://conda.anaconda.org"
# conda's "defaults" on Linux and macOS (msys2 only joins on Windows hosts).
_DEFAULTS = ("https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r")
_ARCHSPEC = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "m1"}


@dataclass(frozen=True, slots=True)
class VirtualPackageVersions:
    """Versions of the system virtual packages a target is solved against.

    They describe the oldest machine the lock must run on, so they are low by
    default (glibc 2.28 is manylinux_2_28's baseline). ``archspec`` overrides
    the generic microarchitecture of the platform's CPU when set.
    """

    glibc: str = "2.28"
    linux: str = "5.10"
    osx: str = "13.0"
    win: str = "0"
    archspec: str | None = None


@dataclass(frozen=True, slots=True)
class CondaTarget:
    """One platform x one accelerator; the Python version comes from the solution."""

    platform: Platform
    accelerator: Accelerator

    @property
    def id(self) -> str:
        """``linux-x86_64-cu124``: no dots, like the pip target ids."""
        return f"{self.platform.name}-{self.accelerator.name.replace('.', '')}"

    @property
    def subdir(self) -> str:
        return self.platform.conda_subdir

    def __str__(self) -> str:
        return self.id


def conda_targets(platforms: Iterable[str], accelerators: Iterable[str]) -> tuple[CondaTarget, ...]:
    """Every platform x accelerator, in a stable order, without duplicates.

    Only ``cpu`` and CUDA make sense for conda: ROCm and XPU have no virtual
    package a conda solver could be told about.
    """
    targets: dict[CondaTarget, None] = {}
    for plat in platforms:
        for acc in accelerators:
            accelerator = parse_accelerator(acc)
            if accelerator.kind not in {"cpu", "cuda"}:
                raise UsageError(
                    f"Accelerator {accelerator.name!r} is not supported for conda targets.",
                    hint="Use cpu or a CUDA version (cu124, 12.4) with environment.yml inputs.",
                )
            targets.setdefault(CondaTarget(parse_platform(plat), accelerator), None)
    if not targets:
        raise UsageError(
            "The conda target matrix is empty.", hint="Give at least one --platform and --cuda."
        )
    return tuple(targets)


@dataclass(frozen=True, slots=True)
class VirtualPackage:
    """A virtual package as the solver sees it: ``__cuda=12.4=0``."""

    name: str
    version: str
    build: str = "0"

    def __str__(self) -> str:
        return f"{self.name}={self.version}={self.build}"


def virtual_packages(
    target: CondaTarget, versions: VirtualPackageVersions = VirtualPackageVersions()
) -> tuple[VirtualPackage, ...]:
    """The virtual packages a machine of ``target`` provides (pure)."""
    plat = target.platform
    found: list[VirtualPackage] = []
    if plat.os == "linux":
        found += [
            VirtualPackage("__unix", "0"),
            VirtualPackage("__linux", versions.linux),
            VirtualPackage("__glibc", versions.glibc),
        ]
    elif plat.os == "macos":
        found += [VirtualPackage("__unix", "0"), VirtualPackage("__osx", versions.osx)]
    else:
        found.append(VirtualPackage("__win", versions.win))
    found.append(VirtualPackage("__archspec", "1", versions.archspec or _ARCHSPEC[plat.arch]))
    if cuda := target.accelerator.cuda_version:
        found.append(VirtualPackage("__cuda", cuda))
    return tuple(found)


def cuda_constraints(target: CondaTarget) -> tuple[str, ...]:
    """Constraints that make a CUDA target pick builds *for* its CUDA version.

    ``__cuda`` alone only says what the driver supports, so a ``cu124`` solve
    could take an 11.8 build. conda-forge selects the CUDA flavour through
    ``cuda-version``, the pytorch channel through ``pytorch-cuda``; as
    constraints they add no package to environments that use neither.
    """
    cuda = target.accelerator.cuda_version
    return (f"cuda-version {cuda}.*", f"pytorch-cuda {cuda}.*") if cuda else ()


def channel_url(channel: str, base: str = DEFAULT_CHANNEL_BASE) -> str:
    """The base URL of a channel given by name, URL or local path (pure).

    ``conda-forge`` -> ``<base>/conda-forge``; ``https://…`` and ``file://…`` stay
    as they are; an absolute path becomes a ``file://`` URL.
    """
    text = channel.strip().rstrip("/")
    if re.match(r"^[a-z][a-z0-9+.-]*://", text):
        return text
    if text.startswith(("/", "~")):
        return Path(text).expanduser().as_uri()
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)*", text):
        raise UsageError(
            f"Cannot read the conda channel {channel!r}.",
            hint="Give a channel name (conda-forge), a URL or an absolute path.",
        )
    return f"{base.rstrip('/')}/{text}"


def channel_urls(channels: Iterable[str], base: str = DEFAULT_CHANNEL_BASE) -> tuple[str, ...]:
    """:func:`channel_url` for each channel, ``defaults`` expanded, without duplicates."""
    urls: dict[str, None] = {}
    for channel in channels:
        for url in _DEFAULTS if channel.strip() == "defaults" else (channel_url(channel, base),):
            urls.setdefault(url, None)
    return tuple(urls)


@dataclass(frozen=True, slots=True)
class CondaPackage:
    """One package of a solution, with everything a lock file needs to install it."""

    name: str
    version: str
    build: str
    build_number: int
    subdir: str
    channel: str
    url: str
    md5: str
    sha256: str
    depends: tuple[str, ...] = ()
    constrains: tuple[str, ...] = ()
    track_features: tuple[str, ...] = ()

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class CondaSolution:
    """One target's answer: the packages, and what was asked to get them."""

    target_id: str
    subdir: str
    channels: tuple[str, ...]
    packages: tuple[CondaPackage, ...]
    python_version: str | None
    specs: tuple[str, ...] = ()
    virtual_packages: tuple[str, ...] = ()

    def package(self, name: str) -> CondaPackage | None:
        return next((p for p in self.packages if p.name == name), None)

    @property
    def python(self) -> tuple[int, int] | None:
        """``(3, 11)`` for Python 3.11.9: what the ``pip:`` section is locked against."""
        if not self.python_version:
            return None
        major, minor = re.findall(r"\d+", self.python_version)[:2]
        return int(major), int(minor)


@dataclass(frozen=True, slots=True)
class CondaRequest:
    """Everything one conda lock run needs; ``cache_dir`` holds rattler's repodata cache."""

    environment: CondaEnvironment
    targets: tuple[CondaTarget, ...]
    channel_base: str = DEFAULT_CHANNEL_BASE
    cache_dir: Path | None = None
    virtual_versions: VirtualPackageVersions = field(default_factory=VirtualPackageVersions)
    offline: bool = False  # use cached repodata only, however old
    concurrency: int = 4
    torch_family: tuple[str, ...] = CONDA_TORCH_FAMILY
    deadline_s: float | None = None  # the whole matrix, repodata fetches included


def resolve_conda(request: CondaRequest) -> tuple[CondaSolution, ...]:
    """Solve every target; raise its error if one fails, :class:`MatrixError` if several do."""
    outcomes = asyncio.run(solve_conda_matrix(request))
    failures = [o for o in outcomes if isinstance(o, ResolutionError)]
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise MatrixError(failures)
    return tuple(o for o in outcomes if isinstance(o, CondaSolution))


async def solve_conda_matrix(
    request: CondaRequest, gateway: Gateway | None = None
) -> tuple[CondaSolution | ResolutionError, ...]:
    """Solve every target concurrently; one outcome per target, in order.

    A failure that belongs to one target (unknown package, conflict, CPU build
    on a CUDA target) comes back as its :class:`ResolutionError`; a channel
    that cannot be read fails the whole run with :class:`IndexError_`.
    """
    channels = channel_urls(request.environment.channels, request.channel_base)
    specs, extra_channels = _qualify_specs(request.environment.specs, request.channel_base)
    channels += tuple(c for c in extra_channels if c not in channels)
    if not channels:
        raise UsageError(
            f"{request.environment.source} lists no channels.",
            hint="Add for example 'channels: [conda-forge]', or pass --conda-channel.",
        )
    gateway = gateway or make_gateway(request.cache_dir, offline=request.offline)
    limit = asyncio.Semaphore(max(1, request.concurrency))

    async def one(target: CondaTarget) -> CondaSolution:
        async with limit:
            return await _solve_target(target, request, gateway, channels, specs)

    try:
        async with asyncio.timeout(request.deadline_s):
            outcomes = await asyncio.gather(
                *(one(t) for t in request.targets), return_exceptions=True
            )
    except TimeoutError:
        raise IndexError_(
            f"The conda solve did not finish within {request.deadline_s:g} s and was stopped "
            f"(a channel that answers too slowly, or trickles its repodata: "
            f"{', '.join(shown(c) for c in channels)}).",
            hint="Check the channels, or allow more time with LOCKD_UV_DEADLINE.",
        ) from None
    # A channel failure is the same for every target: report it once. Targets
    # that waited on the same (coalesced) fetch may get a vaguer copy of it.
    run_errors = [o for o in outcomes if isinstance(o, IndexError_ | UsageError)]
    if run_errors:
        raise min(run_errors, key=lambda e: e.message.startswith("One of"))
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, ResolutionError):
            raise outcome
    return tuple(o for o in outcomes if isinstance(o, CondaSolution | ResolutionError))


def make_gateway(cache_dir: Path | None, *, offline: bool = False) -> Gateway:
    """A rattler gateway caching repodata in ``cache_dir`` (rattler's default when ``None``)."""
    from rattler import Gateway, SourceConfig

    config = SourceConfig(cache_action="force-cache-only" if offline else "cache-or-fetch")
    return Gateway(cache_dir=cache_dir, default_config=config)


async def _solve_target(
    target: CondaTarget,
    request: CondaRequest,
    gateway: Gateway,
    channels: tuple[str, ...],
    specs: tuple[str, ...],
) -> CondaSolution:
    from rattler import solve
    from rattler.exceptions import InvalidMatchSpecError, SolverError

    virtual = virtual_packages(target, request.virtual_versions)
    subdirs = (target.subdir, "noarch")
    try:
        records = await solve(
            list(channels),
            [_match_spec(s) for s in specs],
            gateway=gateway,
            platforms=_subdirs(subdirs),
            virtual_packages=[_generic(v) for v in virtual],
            constraints=list(cuda_constraints(target)),
            # Exactly the channels asked for: CEP-42 relations could add others.
            channel_relations="disabled",
        )
    except SolverError as exc:
        raise await _solver_error(exc, target, request, gateway, channels) from None
    except InvalidMatchSpecError as exc:
        raise UsageError(
            f"{request.environment.source}: a dependency is not a conda match spec ({exc})."
        ) from None
    except _channel_errors() as exc:
        raise _channel_error(exc, channels) from None
    packages = tuple(sorted((_package(r) for r in records), key=lambda p: p.name))
    _require_hashes(packages, target)
    python = next((p.version for p in packages if p.name == "python"), None)
    solution = CondaSolution(
        target_id=target.id,
        subdir=target.subdir,
        channels=channels,
        packages=packages,
        python_version=python,
        specs=specs,
        virtual_packages=tuple(str(v) for v in virtual),
    )
    if mismatches := build_mismatches(solution, target.accelerator, request.torch_family):
        offered = await _query(gateway, channels, subdirs, request.torch_family)
        raise mismatch_error(mismatches, target.id, target.accelerator, target.subdir, offered)
    return solution


async def _query(
    gateway: Gateway, channels: Sequence[str], subdirs: Sequence[str], names: Iterable[str]
) -> tuple[CondaPackage, ...]:
    """The records of ``names`` the channels offer (from the gateway's cache)."""
    try:
        result = await gateway.query(
            list(channels),
            _subdirs(subdirs),
            list(names),
            recursive=False,
            channel_relations="disabled",
        )
    except _channel_errors() as exc:
        raise _channel_error(exc, channels) from None
    return tuple(_package(record) for records in result for record in records)


async def _solver_error(
    exc: Exception,
    target: CondaTarget,
    request: CondaRequest,
    gateway: Gateway,
    channels: tuple[str, ...],
) -> ResolutionError:
    text = str(exc)
    where = f"in {', '.join(channels)} for {target.subdir} (or noarch)"
    missing = re.search(r"No candidates were found for (.+?)\.?\s*$", text, re.MULTILINE)
    if missing:
        spec = missing[1].strip()
        name = re.split(r"[\s=<>!~\[]", spec, maxsplit=1)[0]
        offered = await _query(gateway, channels, [target.subdir, "noarch"], [name])
        if not offered:
            return ResolutionError(
                f"Package {name!r} is not {where}.",
                target=target.id,
                hint="Check the name in the environment file, or add the channel that has it.",
            )
        have = _sorted_versions(p.version for p in offered)
        return ResolutionError(
            f"No build of {name!r} matches {spec!r} {where}; "
            f"the channels have {name} {', '.join(have)}.",
            target=target.id,
            hint="Relax the version in the environment file.",
        )
    message = f"The conda specs cannot be satisfied together {where}: "
    message += condense_solver_message(text)
    hint = "Relax or remove one of the conflicting specs."
    family_involved = any(re.search(rf"\b{re.escape(n)}\b", text) for n in request.torch_family)
    if (cuda := target.accelerator.cuda_version) and family_involved:
        offered = await _query(gateway, channels, [target.subdir, "noarch"], request.torch_family)
        versions = offered_cuda_versions(offered)
        if cuda not in versions:
            builds = f"CUDA {', '.join(versions)}" if versions else "no CUDA version"
            message += (
                f" The channels have CUDA builds of the PyTorch family for {builds} on "
                f"{target.subdir}, not CUDA {cuda}."
            )
            hint = "Lock a CUDA version the channels offer, or use --cuda cpu for this platform."
    return ResolutionError(message, target=target.id, hint=hint)


def condense_solver_message(text: str, max_lines: int = 8) -> str:
    """rattler's conflict tree as one line: the essential clauses, joined by ``;`` (pure)."""
    text = re.sub(r"^\s*Cannot solve the request because of:\s*", "", text.strip())
    stripped = (re.sub(r"^[\s│├└─]+", "", line).strip() for line in text.splitlines())
    lines = [line.rstrip(":") for line in stripped if line]
    shown = "; ".join(lines[:max_lines])
    if len(lines) > max_lines:
        shown += f"; … ({len(lines) - max_lines} more)"
    return shown + ("" if shown.endswith(".") else ".")


def _channel_errors() -> tuple[type[Exception], ...]:
    """rattler's errors for a channel that cannot be read (imported when one is raised)."""
    from rattler.exceptions import CacheDirError, FetchRepoDataError, GatewayError, IoError

    return (CacheDirError, FetchRepoDataError, GatewayError, IoError)


def _channel_error(exc: Exception, channels: Sequence[str]) -> IndexError_:
    """A gateway failure as :class:`IndexError_`, naming the channel and the root cause.

    Channel URLs may carry credentials (``LOCKD_CONDA_CHANNEL``); none reaches the message.
    """
    text = redact(str(exc).strip())
    url = next(iter(re.findall(r"\(((?:https?|file)://[^)\s]+)\)", text)), None)
    named = re.search(r"in channel '([^']+)'", text)
    public = [shown(c) for c in channels]
    channel = next(
        (f"Conda channel {c}" for c in public if url and url.startswith(c.rstrip("/") + "/")),
        f"Conda channel {named[1].rstrip('/')}"
        if named
        else f"One of the conda channels {', '.join(public)}",
    )
    causes = [line.removeprefix("Caused by:").strip() for line in text.splitlines()]
    cause = causes[-1] if causes else type(exc).__name__
    detail = f" ({shown(url)})" if url else ""
    return IndexError_(
        f"{channel} could not be read{detail}: {clipped(cause, 300)}.",
        hint="Check the channel URL (LOCKD_CONDA_CHANNEL / --conda-channel for named channels) "
        "and the network; offline runs need repodata cached by an earlier run.",
    )


def _require_hashes(packages: Iterable[CondaPackage], target: CondaTarget) -> None:
    for pkg in packages:
        if not (pkg.md5 and pkg.sha256):
            raise ResolutionError(
                f"Channel {pkg.channel} publishes no "
                f"{'md5' if not pkg.md5 else 'sha256'} for {pkg.filename}; "
                "lockd records both hashes of every conda package.",
                target=target.id,
                hint="Use a channel (or mirror) whose repodata carries md5 and sha256.",
            )


def _qualify_specs(specs: Iterable[str], base: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Rewrite ``chan::pkg`` to the channel's URL (rattler would use its own default base)."""
    out: list[str] = []
    extra: list[str] = []
    for spec in specs:
        channel, sep, rest = spec.partition("::")
        if not sep:
            out.append(spec)
            continue
        url = channel_url(channel, base)
        extra.append(url)
        out.append(f"{url}::{rest}")
    return tuple(out), tuple(extra)


def _subdirs(names: Iterable[str]) -> list[Subdir]:
    from rattler import Subdir

    return [Subdir(name) for name in names]


def _match_spec(spec: str) -> MatchSpec:
    from rattler import MatchSpec

    return MatchSpec(spec, strict=False)  # lenient, as conda reads environment.yml


def spec_name(spec: str) -> str | None:
    """The (normalised) package name a match spec names; ``None`` when it names none."""
    from rattler.exceptions import InvalidMatchSpecError

    try:
        name = _match_spec(spec).name
    except InvalidMatchSpecError:
        return None
    return name.normalized if name is not None else None


def _generic(virtual: VirtualPackage) -> GenericVirtualPackage:
    from rattler import BuildString, GenericVirtualPackage, PackageName, Version

    return GenericVirtualPackage(
        PackageName(virtual.name), Version(virtual.version), BuildString(virtual.build)
    )


def _package(record: RepoDataRecord) -> CondaPackage:
    return CondaPackage(
        name=record.name.normalized,
        version=str(record.version),
        build=str(record.build),
        build_number=record.build_number,
        subdir=record.subdir,
        channel=record.channel.rstrip("/"),
        url=record.url,
        md5=record.md5.hex() if record.md5 else "",
        sha256=record.sha256.hex() if record.sha256 else "",
        depends=tuple(record.depends),
        constrains=tuple(record.constrains),
        track_features=tuple(record.track_features),
    )


def _sorted_versions(versions: Iterable[str]) -> list[str]:
    from rattler import Version

    return sorted(set(versions), key=Version)

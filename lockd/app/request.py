"""``lockd compile`` flags + configuration (lockd.toml / [tool.lockd]) -> a LockRequest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..builds import BuildPolicy
from ..errors import ConfigError, UsageError, excerpt
from ..targets import Target

if TYPE_CHECKING:
    from ..routing import RoutedIndex


@dataclass(frozen=True, slots=True)
class LockRequest:
    """Everything ``lockd compile`` was asked to do, after flags and config are merged."""

    project: str
    inputs: tuple[Path, ...]
    targets: tuple[Target, ...]
    root: Path
    out_dir: Path
    index_url: str
    pytorch_index: str
    family: frozenset[str]
    database_url: str
    resolver: str = "uv"
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # PEP 735 dependency groups of a pyproject input
    private_indexes: tuple[RoutedIndex, ...] = ()  # [[index]] routing, credentials included
    index_given: bool = True  # False: a requirements file's -i/--index-url may set index_url
    glibc: str = "2.28"
    allow_partial: bool = False
    refresh: bool = False
    exclude_newer: str | None = None
    concurrency: int = 4
    cache_dir: Path | None = None
    images: tuple[str, ...] = ()  # base image references, as written
    dockerfile: Path | None = None  # whose FROM images are base images too
    build_args: Mapping[str, str] = field(default_factory=dict)  # for the Dockerfile's ARGs
    conda_channel: str = "https://conda.anaconda.org"  # base URL for named channels
    conda_channels: tuple[str, ...] = ()  # put in front of environment.yml's channels
    conda_cache: Path | None = None  # rattler's repodata cache
    metadata_cache: Path | None = None  # core metadata of wheels, by sha256
    upgrade: bool = False  # move every pin (the previous lock's pins are not kept)
    upgrade_packages: tuple[str, ...] = ()  # NAME or NAME==VERSION: move these pins
    builds: BuildPolicy = field(default_factory=BuildPolicy)  # sdists allowed to build

    @property
    def moves_pins(self) -> bool:
        """An upgrade is asked for: never a no-op, whatever the input key says."""
        return self.upgrade or bool(self.upgrade_packages)


@dataclass(frozen=True, slots=True)
class CompileFlags:
    """``lockd compile`` flags as typed; ``None``/empty means "not given"."""

    inputs: tuple[Path, ...] = ()
    cuda: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    pythons: tuple[str, ...] = ()
    project: str | None = None
    out: Path | None = None
    resolver: str | None = None
    index_url: str | None = None
    pytorch_index: str | None = None
    pytorch_family: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    db: str | None = None
    allow_partial: bool = False
    refresh: bool = False
    exclude_newer: str | None = None
    glibc: str | None = None
    images: tuple[str, ...] = ()
    dockerfile: Path | None = None
    build_args: tuple[str, ...] = ()  # NAME=VALUE, as --build-arg takes them
    conda_channels: tuple[str, ...] = ()
    upgrade: bool = False
    upgrade_packages: tuple[str, ...] = ()
    allow_build: tuple[str, ...] = ()


def build_lock_request(
    flags: CompileFlags, cwd: Path, environ: dict[str, str] | None = None
) -> LockRequest:
    """Merge flags > environment > lockd.toml/[tool.lockd] > defaults."""
    import os

    from ..routing import (
        VARIANT_INDEX_NAME,
        family_names,
        url_with_variables,
        with_environment_credentials,
    )
    from ..settings import Settings, load_project_config
    from ..targets import expand_matrix, host_platform, host_python

    env = dict(os.environ if environ is None else environ)
    settings = Settings.from_env(env)
    config = load_project_config(cwd)
    root = config.root
    inputs = flags.inputs or tuple(root / p for p in config.inputs) or _default_inputs(root)
    host = host_platform()
    platforms = flags.platforms or config.platforms or ((host.name,) if host else ())
    pythons = flags.pythons or config.pythons or ("{}.{}".format(*host_python()),)
    accelerators = flags.cuda or config.accelerators or ("cpu",)
    given_index = flags.index_url or env.get("LOCKD_INDEX_URL") or config.index_url
    pytorch_index = (
        flags.pytorch_index
        or env.get("LOCKD_PYTORCH_INDEX")
        or config.pytorch_index
        or settings.pytorch_index
    )
    family = family_names((*config.pytorch_family, *flags.pytorch_family))
    for index in config.indexes:
        both = sorted(index.packages & family)
        if both:
            raise ConfigError(
                f"[[index]] {index.name!r} in {config.path} routes {', '.join(both)}, which "
                "belong to the PyTorch family routed to the PyTorch index.",
                hint="Point pytorch-index at your mirror of the PyTorch indexes instead, or "
                "drop the names from the [[index]] table.",
            )
    return LockRequest(
        project=flags.project or config.project or project_name(root),
        inputs=tuple(inputs),
        targets=tuple(expand_matrix(platforms, pythons, accelerators)),
        root=root,
        out_dir=flags.out or (root / (config.out or "locks")),
        index_url=(given_index or settings.index_url).rstrip("/"),
        index_given=bool(given_index),
        pytorch_index=url_with_variables(pytorch_index.rstrip("/"), VARIANT_INDEX_NAME, env),
        family=family,
        private_indexes=tuple(with_environment_credentials(i, env) for i in config.indexes),
        database_url=flags.db or settings.database_url,
        resolver=flags.resolver or config.resolver or "uv",
        extras=flags.extras or config.extras,
        groups=flags.groups or config.groups,
        glibc=_glibc(flags.glibc or config.glibc or "2.28"),
        allow_partial=flags.allow_partial,
        refresh=flags.refresh,
        exclude_newer=_cutoff(flags.exclude_newer),
        concurrency=settings.concurrency,
        cache_dir=settings.uv_cache,
        images=flags.images or config.images,
        dockerfile=flags.dockerfile or (root / config.dockerfile if config.dockerfile else None),
        build_args=_build_args(flags.build_args),
        conda_channel=settings.conda_channel,
        conda_channels=flags.conda_channels or config.conda_channels,
        conda_cache=settings.home / "cache" / "rattler",
        metadata_cache=settings.home / "cache" / "metadata",
        upgrade=flags.upgrade,
        upgrade_packages=tuple(_upgrade_package(p) for p in flags.upgrade_packages),
        # An allowance is a list of names: the flag adds to the configuration's.
        builds=BuildPolicy.parse(config.allow_build, f"allow-build in {config.path}").union(
            BuildPolicy.parse(flags.allow_build)
        ),
    )


def _build_args(items: tuple[str, ...]) -> dict[str, str]:
    if not items:
        return {}
    from ..images import parse_build_args  # httpx and friends: only when needed

    return parse_build_args(items)


def _default_inputs(root: Path) -> tuple[Path, ...]:
    for name in ("requirements.in", "pyproject.toml", "environment.yml"):
        if (root / name).is_file():
            return (root / name,)
    raise UsageError(
        f"No inputs given and none found in {root}.",
        hint="Pass a requirements.in, pyproject.toml or environment.yml, or set inputs in "
        "lockd.toml.",
    )


def project_name(root: Path) -> str:
    import tomllib

    from ..inputs.files import read_input

    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            project = tomllib.loads(read_input(pyproject, root).text).get("project")
            name = project.get("name") if isinstance(project, dict) else None
        except (UsageError, ValueError):  # the input reader or the config says what is wrong
            name = None
        if isinstance(name, str) and name:
            return _named(name, f"[project] name of {excerpt(str(pyproject))}")
    return _named(root.resolve().name, f"the directory name of {excerpt(str(root.resolve()))}")


def _cutoff(text: str | None) -> str | None:
    """``--exclude-newer`` as the absolute UTC time uv is given and the lockset records."""
    if text is None:
        return None
    from datetime import UTC, datetime

    from ..times import format_time, parse_time

    now = datetime.now(UTC)
    moment = parse_time(text, "--exclude-newer", now=now)
    if moment > now:
        raise UsageError(
            f"--exclude-newer {excerpt(text)} is in the future ({format_time(moment)}): a "
            "cut-off that has not passed yet would let later uploads into the lock.",
            hint="Give a past ISO date or time (--exclude-newer 2026-01-31T02:00Z) or a "
            "duration ago (--exclude-newer 3d); without it the resolution time is recorded.",
        )
    return format_time(moment)


def _named(name: str, where: str) -> str:
    from ..names import check_name

    return check_name(
        "project",
        name,
        where=where,
        hint='Name the project in lockd.toml (project = "my-service") or with --project.',
    )


def _glibc(value: str) -> str:
    """``2.28``: the manylinux level of Linux targets."""
    import re

    if not re.fullmatch(r"2\.\d{1,2}", value.strip()):
        raise UsageError(
            f"glibc {value!r} is not a glibc version such as 2.28.",
            hint="Give major.minor, as manylinux tags spell it (2.17, 2.28, 2.34).",
        )
    return value.strip()


def _upgrade_package(text: str) -> str:
    """``NAME`` or ``NAME==VERSION`` (any version specifier), normalised."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        requirement = None
    if requirement is None or requirement.url or requirement.marker or requirement.extras:
        raise UsageError(
            f"--upgrade-package {text!r} is not a package name with an optional version.",
            hint="Write --upgrade-package numpy or --upgrade-package numpy==2.2.0.",
        )
    return canonicalize_name(requirement.name) + str(requirement.specifier)

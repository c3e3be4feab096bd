"""Every ``LOCKD_*`` variable and the project configuration file -> frozen settings.

Precedence, highest first: command-line flag, environment variable, project
configuration (``lockd.toml`` or ``[tool.lockd]`` in ``pyproject.toml``), default.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, UsageError
from .names import check_name

if TYPE_CHECKING:
    from .routing import RoutedIndex


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    default: str | None
    help: str


# The one place where lockd's environment variables are declared.
ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("LOCKD_HOME", "~/.local/share/lockd", "Directory for the default database."),
    EnvVar(
        "LOCKD_DATABASE_URL",
        None,
        "SQLAlchemy URL of the store; default sqlite:///$LOCKD_HOME/lockd.db.",
    ),
    EnvVar("LOCKD_INDEX_URL", "https://pypi.org/simple", "Default (non-PyTorch) package index."),
    EnvVar(
        "LOCKD_PYTORCH_INDEX",
        "https://download.pytorch.org/whl",
        "Base of the PyTorch variant indexes (<base>/<variant>), or 'pypi'.",
    ),
    EnvVar(
        "LOCKD_CONDA_CHANNEL", "https://conda.anaconda.org", "Base URL for named conda channels."
    ),
    EnvVar(
        "LOCKD_CUDA_DRIVER_VERSION",
        None,
        "NVIDIA driver version to assume instead of probing the machine.",
    ),
    EnvVar(
        "LOCKD_CONCURRENCY", "4", "Targets resolved (and projects checked by drift --all) at once."
    ),
    EnvVar(
        "LOCKD_SHARDS",
        None,
        "Number of shards of the nightly drift --all run (with JOB_COMPLETION_INDEX).",
    ),
    # Not lockd's own: Kubernetes sets it in every pod of an Indexed Job (0..N-1).
    EnvVar("JOB_COMPLETION_INDEX", None, "Kubernetes Indexed Job: this pod's shard, 0-based."),
    EnvVar("LOCKD_REGISTRY_USERNAME", None, "User name for the registry LOCKD_REGISTRY_HOST."),
    EnvVar("LOCKD_REGISTRY_PASSWORD", None, "Password or token for LOCKD_REGISTRY_HOST."),
    EnvVar(
        "LOCKD_REGISTRY_HOST",
        "docker.io",
        "The one registry LOCKD_REGISTRY_USERNAME/PASSWORD are sent to.",
    ),
    EnvVar(
        "LOCKD_INSECURE_REGISTRIES",
        None,
        "Comma-separated registry hosts spoken to over plain http (loopback always is).",
    ),
    EnvVar(
        "LOCKD_HTTP_DEADLINE",
        "300",
        "Seconds one request of lockd's own to an index or registry may take, body included.",
    ),
    EnvVar(
        "LOCKD_UV_DEADLINE",
        "1800",
        "Seconds one resolution (a uv or pip-compile run, a rebuild, a conda solve with its "
        "repodata fetches) may take.",
    ),
    EnvVar("LOCKD_TOKEN", None, "API token `lockd snapshot --post` sends (Bearer)."),
    EnvVar(
        "LOCKD_SERVE_BODY_LIMIT",
        "16777216",
        "lockd serve: largest request body in bytes (413 beyond).",
    ),
    EnvVar(
        "LOCKD_SERVE_RATE_LIMIT",
        "100",
        "lockd serve: requests per second per token (burst twice that); 0 turns it off.",
    ),
    EnvVar(
        "LOCKD_SERVE_STALE_AFTER",
        "24h",
        "lockd serve: a deployment not seen for this long is stale (s, m, h or d).",
    ),
    EnvVar(
        "LOCKD_SERVE_PUBLIC_READ",
        None,
        "lockd serve: 1 lets anyone read the API and dashboard (as --public-read).",
    ),
    EnvVar(
        "LOCKD_SERVE_CORS_ORIGINS",
        None,
        "lockd serve: comma-separated origins allowed cross-origin reads (default: none).",
    ),
)

PYPI_SENTINEL = "pypi"
DEFAULT_FAMILY: tuple[str, ...] = (
    "torch",
    "torchvision",
    "torchaudio",
    "triton",
    "pytorch-triton",
    "pytorch-triton-rocm",
    "pytorch-triton-xpu",
)


def env_default(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of a declared variable, from the environment or its default."""
    environ = os.environ if environ is None else environ
    declared = {var.name: var for var in ENV_VARS}
    if name not in declared:  # pragma: no cover - programming error
        raise KeyError(f"{name} is not declared in lockd.settings.ENV_VARS")
    value = environ.get(name)
    return value if value not in (None, "") else declared[name].default


def deadline(name: str, environ: Mapping[str, str] | None = None) -> float:
    """A ``LOCKD_*_DEADLINE`` variable in seconds (positive)."""
    value = env_default(name, environ) or ""
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise ConfigError(
            f"{name}={value[:40]!r} is not a number of seconds.",
            hint=f"Set it to a positive number such as {env_default(name, {})}.",
        )
    return seconds


@dataclass(frozen=True, slots=True)
class Settings:
    """Machine-level settings (where the store is, which indexes to use)."""

    home: Path
    database_url: str
    index_url: str
    pytorch_index: str
    conda_channel: str
    cuda_driver_version: str | None
    concurrency: int
    http_deadline: float = 300.0
    uv_deadline: float = 1800.0
    shards: int | None = None  # LOCKD_SHARDS
    job_index: str | None = None  # JOB_COMPLETION_INDEX, as Kubernetes set it
    uv_cache: Path | None = None  # UV_CACHE_DIR, absolute (see ``uv_cache_dir``)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env_default("LOCKD_HOME", env) or "").expanduser()
        database_url = env_default("LOCKD_DATABASE_URL", env) or f"sqlite:///{home / 'lockd.db'}"
        try:
            concurrency = int(env_default("LOCKD_CONCURRENCY", env) or "4")
        except ValueError:
            raise ConfigError(
                f"LOCKD_CONCURRENCY={env.get('LOCKD_CONCURRENCY')!r} is not a number.",
                hint="Set it to a positive integer such as 4.",
            ) from None
        shards = env_default("LOCKD_SHARDS", env)
        if shards is not None and not shards.strip().isdigit():
            raise ConfigError(
                f"LOCKD_SHARDS={shards!r} is not a number.",
                hint="Set it to the number of shards (the Indexed Job's completions).",
            )
        return cls(
            home=home,
            database_url=database_url,
            index_url=(env_default("LOCKD_INDEX_URL", env) or "").rstrip("/"),
            pytorch_index=(env_default("LOCKD_PYTORCH_INDEX", env) or "").rstrip("/"),
            conda_channel=(env_default("LOCKD_CONDA_CHANNEL", env) or "").rstrip("/"),
            cuda_driver_version=env_default("LOCKD_CUDA_DRIVER_VERSION", env),
            concurrency=max(1, concurrency),
            http_deadline=deadline("LOCKD_HTTP_DEADLINE", env),
            uv_deadline=deadline("LOCKD_UV_DEADLINE", env),
            shards=int(shards) if shards is not None else None,
            job_index=env_default("JOB_COMPLETION_INDEX", env),
            uv_cache=uv_cache_dir(env),
        )


def uv_cache_dir(environ: Mapping[str, str]) -> Path | None:
    """``UV_CACHE_DIR`` made absolute against the working directory, as uv reads it.

    lockd runs uv inside scratch directories: a relative ``UV_CACHE_DIR=.uv-cache``
    (common in CI) passed on as it is would put uv's cache inside the scratch
    directory, deleted at the end of every run.
    """
    value = environ.get("UV_CACHE_DIR")
    return Path(value).absolute() if value else None


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """What ``lockd serve`` reads from the environment (flags override some of it)."""

    body_limit: int  # bytes
    rate_limit: float  # requests per second per token; 0: no limit
    stale_after: timedelta
    cors_origins: tuple[str, ...]
    public_read: bool = False  # reads without a token (writes always need one)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        env = os.environ if environ is None else environ
        body = _positive_number("LOCKD_SERVE_BODY_LIMIT", env, integer=True)
        rate = _positive_number("LOCKD_SERVE_RATE_LIMIT", env, integer=False)
        origins = env_default("LOCKD_SERVE_CORS_ORIGINS", env) or ""
        return cls(
            body_limit=int(body),
            rate_limit=rate,
            stale_after=_duration("LOCKD_SERVE_STALE_AFTER", env),
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            public_read=(env_default("LOCKD_SERVE_PUBLIC_READ", env) or "0").lower()
            in {"1", "true", "yes"},
        )


def _duration(name: str, env: Mapping[str, str]) -> timedelta:
    from .times import parse_duration

    try:
        return parse_duration(env_default(name, env) or "", name)
    except UsageError as err:
        raise ConfigError(err.message, hint=err.hint) from None


def _positive_number(name: str, env: Mapping[str, str], *, integer: bool) -> float:
    text = env_default(name, env) or ""
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = -1
    if not value >= 0 or (integer and value == 0):  # NaN compares false: not a limit
        raise ConfigError(
            f"{name}={text!r} is not a {'positive whole' if integer else 'non-negative'} number.",
            hint=f"Unset it to use the default ({env_default(name, {})}).",
        )
    return value


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """What ``lockd.toml`` or ``[tool.lockd]`` says. Unset means "not said"."""

    path: Path | None = None
    project: str | None = None
    inputs: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    pythons: tuple[str, ...] = ()
    accelerators: tuple[str, ...] = ()
    index_url: str | None = None
    pytorch_index: str | None = None
    pytorch_family: tuple[str, ...] = ()
    out: str | None = None
    resolver: str | None = None
    glibc: str | None = None
    conda_channels: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    dockerfile: str | None = None
    indexes: tuple[RoutedIndex, ...] = ()  # [[index]] tables: per-package routing
    allow_build: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.path.parent if self.path else Path.cwd()


_KEYS: dict[str, str] = {
    "project": "project",
    "inputs": "inputs",
    "extras": "extras",
    "groups": "groups",
    "platforms": "platforms",
    "platform": "platforms",
    "python": "pythons",
    "pythons": "pythons",
    "cuda": "accelerators",
    "accelerators": "accelerators",
    "index-url": "index_url",
    "pytorch-index": "pytorch_index",
    "pytorch-family": "pytorch_family",
    "out": "out",
    "resolver": "resolver",
    "glibc": "glibc",
    "conda-channels": "conda_channels",
    "images": "images",
    "dockerfile": "dockerfile",
    "index": "indexes",
    "allow-build": "allow_build",
}
_LISTS = {
    "inputs",
    "extras",
    "groups",
    "platforms",
    "pythons",
    "accelerators",
    "pytorch_family",
    "conda_channels",
    "images",
    "allow_build",
}


def load_project_config(directory: Path) -> ProjectConfig:
    """Read ``lockd.toml``, else ``[tool.lockd]`` of ``pyproject.toml``, in ``directory``."""
    lockd_toml = directory / "lockd.toml"
    pyproject = directory / "pyproject.toml"
    if lockd_toml.is_file():
        document = _read_toml(lockd_toml)
        table = (_tool_lockd(document, lockd_toml) if "tool" in document else None) or document
        return parse_project_config(table, lockd_toml)
    if pyproject.is_file():
        found = _tool_lockd(_read_toml(pyproject), pyproject)
        if found is not None:
            return parse_project_config(found, pyproject)
    return ProjectConfig()


def _tool_lockd(document: Mapping[str, Any], path: Path) -> Mapping[str, Any] | None:
    """``[tool.lockd]``, if the document has one; a wrong shape is a configuration error."""
    tool = document.get("tool", {})
    table = tool.get("lockd") if isinstance(tool, dict) else None
    if not isinstance(tool, dict) or (table is not None and not isinstance(table, dict)):
        raise ConfigError(
            f"{path}: [tool] and [tool.lockd] must be tables.",
            hint="Write the configuration as a [tool.lockd] table of keys.",
        )
    return table


def parse_project_config(table: Mapping[str, Any], path: Path | None) -> ProjectConfig:
    """Validate a configuration table (pure)."""
    where = str(path) if path else "the configuration"
    values: dict[str, Any] = {"path": path}
    extra: dict[str, Any] = {}
    for key, value in table.items():
        attr = _KEYS.get(key)
        if attr is None:
            if key in {"conda", "drift", "audit"}:  # sections owned by later features
                extra[key] = value
                continue
            raise ConfigError(
                f"Unknown key {key!r} in {where}.",
                hint=f"Known keys: {', '.join(sorted(_KEYS))}.",
            )
        if attr == "indexes":
            values[attr] = parse_index_tables(value, where)
        elif attr in _LISTS:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
                raise ConfigError(
                    f"{key!r} in {where} must be a list of strings, not {value!r}.",
                    hint=f'Write for example {key} = ["…"].',
                )
            values[attr] = tuple(items)
        else:
            if not isinstance(value, str):
                raise ConfigError(
                    f"{key!r} in {where} must be a string, not {value!r}.",
                    hint=f'Write for example {key} = "…".',
                )
            values[attr] = value
    if "project" in values:
        check_name(
            "project",
            values["project"],
            where=where,
            hint='Write a one-line name, for example project = "my-service".',
            error=ConfigError,
        )
    if "out" in values:
        _check_inside_project("out", values["out"], where, path.parent if path else None)
    values["extra"] = extra
    return ProjectConfig(**values)


def _check_inside_project(key: str, value: str, where: str, root: Path | None) -> None:
    """A directory a configuration file names (it may come from a pull request) lies inside
    the project: relative, without ``..``, and not through a symbolic link that leads out
    (``root``: the project). What the person running lockd types (``--out``) may point
    anywhere."""
    parts = PurePosixPath(value.replace("\\", "/")).parts
    outside = not value.strip() or Path(value).is_absolute() or ".." in parts
    if not outside and root is not None:
        outside = not (root / value).resolve().is_relative_to(root.resolve())
    if outside:
        raise ConfigError(
            f"{key!r} in {where} must name a directory inside the project, not {value!r}: "
            "a configuration file never makes lockd write outside the project.",
            hint=f'Write a relative path such as {key} = "locks", or pass --{key} DIR on the '
            "command line to write elsewhere.",
        )


MAX_CONFIG_BYTES = 10 * 1024 * 1024
_INDEX_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PACKAGE_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_INDEX_KEYS = ("name", "url", "packages")


def parse_index_tables(value: object, where: str) -> tuple[RoutedIndex, ...]:
    """``[[index]]`` tables (name, url, packages) -> routed indexes, validated (pure)."""
    from packaging.utils import canonicalize_name

    from .routing import RESERVED_INDEX_NAMES, RoutedIndex, credential_variables

    example = (
        'Write [[index]] tables: name = "internal", url = "https://pkgs.example/simple", '
        'packages = ["acme-models"].'
    )
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError(f"'index' in {where} must be [[index]] tables.", hint=example)
    out: list[RoutedIndex] = []
    owners: dict[str, str] = {}
    variables: dict[tuple[str, str], str] = {}
    for table in value:
        unknown = sorted(set(table) - set(_INDEX_KEYS))
        missing = [key for key in _INDEX_KEYS if key not in table]
        label = f"[[index]] {table.get('name')!r}" if "name" in table else "an [[index]] table"
        if unknown or missing:
            problem = f"unknown key {unknown[0]!r}" if unknown else f"no {missing[0]!r}"
            raise ConfigError(f"{label} in {where} has {problem}.", hint=example)
        name, url, packages = table["name"], table["url"], table["packages"]
        if not isinstance(name, str) or not _INDEX_NAME.match(name):
            raise ConfigError(
                f"{label} in {where}: the name must be letters, digits, '.', '_' or '-'.",
                hint=example,
            )
        if name.lower() in RESERVED_INDEX_NAMES:
            raise ConfigError(
                f"{label} in {where}: {name!r} is the name of an index lockd itself routes.",
                hint="Choose another name (the default index is index-url; the PyTorch index "
                "is pytorch-index).",
            )
        if credential_variables(name) in variables:
            raise ConfigError(
                f"{label} in {where} has the same name as [[index]] "
                f"{variables[credential_variables(name)]!r} (uv's credential variables "
                f"{credential_variables(name)[0]} would be shared).",
                hint="Give every [[index]] its own name.",
            )
        variables[credential_variables(name)] = name
        if not isinstance(url, str) or not re.match(r"^(https?|file)://", url):
            raise ConfigError(
                f"{label} in {where}: url must be an http(s):// or file:// index URL.",
                hint=example,
            )
        if (
            not isinstance(packages, list)
            or not packages
            or not all(isinstance(p, str) and _PACKAGE_NAME.match(p) for p in packages)
        ):
            raise ConfigError(
                f"{label} in {where}: packages must be a non-empty list of package names.",
                hint=example,
            )
        for package in map(canonicalize_name, packages):
            if package in owners and owners[package] != name:
                raise ConfigError(
                    f"{package} is routed to two indexes in {where} "
                    f"({owners[package]!r} and {name!r}).",
                    hint="A routed package comes from exactly one index: list it once.",
                )
            owners[package] = name
        out.append(RoutedIndex(name, url.rstrip("/"), frozenset(map(canonicalize_name, packages))))
    return tuple(out)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES // 2**20} MiB.")
        return tomllib.loads(data.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}.", hint="Fix the syntax at the position shown."
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path} is not UTF-8 text; TOML files are UTF-8.", hint="Save it as UTF-8."
        ) from None
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}.") from None

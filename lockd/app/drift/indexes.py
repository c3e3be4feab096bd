"""The lockset's indexes as drift reaches them: recorded URLs with the configured credentials.

Lock files and records never hold credentials. Drift takes them where compile
does — ``--index``/``--pytorch-index``, then ``LOCKD_INDEX_URL``/
``LOCKD_PYTORCH_INDEX``, then ``lockd.toml`` (its ``[[index]]`` tables
included), then uv's ``UV_INDEX_<NAME>_*`` variables — and puts them back on a
recorded URL only when the configured URL, credentials stripped, is that very
URL: drift checks the indexes the lockset names, never others.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ...lockset import Lockset
from ...routing import (
    VARIANT_INDEX_NAME,
    IndexPlan,
    RoutedIndex,
    family_names,
    plan_for,
    url_with_variables,
    with_environment_credentials,
)
from ...settings import PYPI_SENTINEL, load_project_config
from ...targets import Target
from ...urls import strip_credentials
from .options import DriftOptions


def index_plan(
    lockset: Lockset, target: Target, configured: tuple[str, ...], environ: Mapping[str, str]
) -> IndexPlan:
    """The lockset's indexes and routes for ``target``, as compile built them, with the
    credentials of ``configured`` URLs that match (uv's ``UV_INDEX_<NAME>_USERNAME``/
    ``_PASSWORD`` for the PyTorch and ``[[index]]`` ones without any)."""
    default = _with_credentials(lockset.indexes["default"], configured)
    pytorch = lockset.indexes.get("pytorch", PYPI_SENTINEL)
    if pytorch != PYPI_SENTINEL:
        pytorch = _with_credentials(pytorch, configured)
        pytorch = url_with_variables(pytorch, VARIANT_INDEX_NAME, environ)
    family = family_names(lockset.extra.get("family", ()))
    routes = lockset.extra.get("routes", {})
    private = tuple(
        with_environment_credentials(
            RoutedIndex(
                name, _with_credentials(lockset.indexes[name], configured), frozenset(packages)
            ),
            environ,
        )
        for name, packages in sorted(routes.items())
        if name in lockset.indexes
    )
    return plan_for(target, default, pytorch, family, private)


def configured_indexes(options: DriftOptions) -> tuple[str, ...]:
    """Every index URL configured for this run, most specific first (flags, env, lockd.toml)."""
    return configured_index_urls(
        options.workdir, options.environ, options.index_url, options.pytorch_index
    )


def configured_index_urls(
    workdir: Path, env: Mapping[str, str], *given: str | None
) -> tuple[str, ...]:
    """The index URLs ``given`` on the command line, then the environment's, then the
    project's ``lockd.toml``: where credentials for a recorded index URL may be found."""
    config = load_project_config(workdir)
    candidates = (
        *given,
        env.get("LOCKD_INDEX_URL"),
        env.get("LOCKD_PYTORCH_INDEX"),
        config.index_url,
        config.pytorch_index,
        *(routed.url for routed in config.indexes),
    )
    return tuple(url.rstrip("/") for url in candidates if url)


def credentialed(recorded: str, plan: IndexPlan) -> str:
    """A recorded (credential-free) index URL as the plan's URL, credentials included."""
    return next((url for url in plan.urls() if strip_credentials(url) == recorded), recorded)


def _with_credentials(recorded: str, configured: tuple[str, ...]) -> str:
    """The first configured URL that is ``recorded`` with credentials, else ``recorded``."""
    return next(
        (url for url in configured if url != recorded and strip_credentials(url) == recorded),
        recorded,
    )

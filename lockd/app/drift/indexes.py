"""The lockset's indexes as drift reaches them: recorded URLs with the configured credentials."""

from __future__ import annotations

from ...lockset import Lockset
from ...routing import IndexPlan, plan_for
from ...settings import PYPI_SENTINEL, Settings
from ...targets import Target
from ...urls import strip_credentials
from .options import DriftOptions


def index_plan(lockset: Lockset, target: Target, options: DriftOptions) -> IndexPlan:
    """The lockset's indexes and routes, as compile built them, with credentials from the
    environment where they match (``UV_INDEX_<NAME>_USERNAME``/``_PASSWORD`` for the
    ``[[index]]`` ones)."""
    from ...routing import (
        VARIANT_INDEX_NAME,
        RoutedIndex,
        family_names,
        url_with_variables,
        with_environment_credentials,
    )

    settings = Settings.from_env(options.environ)
    default = _with_credentials(lockset.indexes["default"], settings.index_url)
    pytorch = lockset.indexes.get("pytorch", PYPI_SENTINEL)
    if pytorch != PYPI_SENTINEL:
        pytorch = _with_credentials(pytorch, settings.pytorch_index)
        pytorch = url_with_variables(pytorch, VARIANT_INDEX_NAME, options.environ)
    family = family_names(lockset.extra.get("family", ()))
    routes = lockset.extra.get("routes", {})
    private = tuple(
        with_environment_credentials(
            RoutedIndex(name, lockset.indexes[name], frozenset(packages)), options.environ
        )
        for name, packages in sorted(routes.items())
        if name in lockset.indexes
    )
    return plan_for(target, default, pytorch, family, private)


def credentialed(recorded: str, plan: IndexPlan) -> str:
    """A recorded (credential-free) index URL as the plan's URL, credentials included."""
    return next((url for url in plan.urls() if strip_credentials(url) == recorded), recorded)


def _with_credentials(recorded: str, configured: str) -> str:
    return configured if strip_credentials(configured) == recorded else recorded

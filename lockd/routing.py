"""Which package comes from which index (pure).

The default index serves every package that is not routed. A *routed* index
serves exactly its packages, as an explicit index: the PyTorch variant index
(``<pytorch-index>/<variant>``) serves the PyTorch family, and each
``[[index]]`` table of the configuration serves the packages it lists. Two
rules hold for every routed index: a routed package comes only from its index,
and nothing else comes from it. The variant indexes host old copies of numpy,
filelock, …; a private index may host anything, and a public upload under an
internal package's name must never win (dependency confusion).

Credentials may sit in an index URL (``https://user:token@host/…``) or, for a
routed index, in uv's ``UV_INDEX_<NAME>_USERNAME``/``_PASSWORD`` variables;
the plan carries them, and only ``public`` views leave lockd.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import SplitResult, quote, unquote, urlsplit, urlunsplit

from packaging.utils import canonicalize_name

from .settings import DEFAULT_FAMILY, PYPI_SENTINEL
from .targets import Target
from .urls import join, strip_credentials

VARIANT_INDEX_NAME = "pytorch"  # the uv index name of the PyTorch variant index
RESERVED_INDEX_NAMES = frozenset({"default", VARIANT_INDEX_NAME})


@dataclass(frozen=True, slots=True)
class RoutedIndex:
    """An index that serves exactly ``packages`` (canonical names), and nothing else."""

    name: str
    url: str  # may carry credentials
    packages: frozenset[str]

    @property
    def public_url(self) -> str:
        return strip_credentials(self.url)


@dataclass(frozen=True, slots=True)
class IndexPlan:
    """The indexes of one target. ``variant`` is ``None`` when torch comes from PyPI."""

    default: str
    variant: str | None
    family: frozenset[str]
    private: tuple[RoutedIndex, ...] = ()  # the [[index]] tables of the configuration

    def routes(self) -> tuple[RoutedIndex, ...]:
        """Every routed index: the variant index (if any), then the private ones."""
        if self.variant is None:
            return self.private
        return (RoutedIndex(VARIANT_INDEX_NAME, self.variant, self.family), *self.private)

    def route_of(self, name: str) -> RoutedIndex | None:
        key = canonicalize_name(name)
        return next((r for r in self.routes() if key in r.packages), None)

    def is_routed(self, name: str) -> bool:
        return self.route_of(name) is not None

    def index_url(self, name: str) -> str:
        """The index ``name`` must come from, credentials included."""
        route = self.route_of(name)
        return route.url if route is not None else self.default

    def expected_index(self, name: str) -> str:
        """The index (credentials stripped) a package must come from."""
        return strip_credentials(self.index_url(name))

    def urls(self) -> tuple[str, ...]:
        """Every index URL of the plan, credentials included."""
        return (self.default, *(r.url for r in self.routes()))

    def public(self) -> dict[str, str]:
        """The plan as recorded: credentials stripped."""
        out = {"default": strip_credentials(self.default)}
        if self.variant is not None:
            out["variant"] = strip_credentials(self.variant)
        out.update({r.name: r.public_url for r in self.private})
        return out


def family_names(extra: Iterable[str] = ()) -> frozenset[str]:
    return frozenset(canonicalize_name(n) for n in (*DEFAULT_FAMILY, *extra))


def plan_for(
    target: Target,
    default_index: str,
    pytorch_index: str,
    family: frozenset[str],
    private: tuple[RoutedIndex, ...] = (),
) -> IndexPlan:
    """The index plan of ``target``; ``pytorch_index == "pypi"`` takes torch from the default."""
    if pytorch_index == PYPI_SENTINEL:
        return IndexPlan(default_index, None, family, private)
    return IndexPlan(default_index, join(pytorch_index, target.accelerator.name), family, private)


def index_of(url: str, plan: IndexPlan) -> str:
    """Which of the plan's indexes served ``url`` (credentials stripped).

    A file on a host that only one routed index uses is that index's: PyTorch
    pages link files root-relatively, and the copies of ordinary packages often
    live outside ``/whl/<variant>/`` (``/whl/numpy-…``). Where indexes share
    the file's host, the index sharing the most leading path segments with the
    file wins, the default index on a tie; files on any other host (PyPI's file
    host) count as the default index's.
    """
    file = urlsplit(strip_credentials(url))
    default = strip_credentials(plan.default)
    on_host = [r.public_url for r in plan.routes() if _origin(r.public_url) == _origin_of(file)]
    if not on_host:
        return default
    score, best = max(((_shared(urlsplit(u).path, file.path), u) for u in on_host), key=_first)
    if _origin(default) == _origin_of(file) and score <= _shared(urlsplit(default).path, file.path):
        return default
    return best


def credential_variables(name: str) -> tuple[str, str]:
    """uv's variables for the user name and password of the index called ``name``."""
    key = re.sub(r"[^A-Z0-9]", "_", name.upper())
    return f"UV_INDEX_{key}_USERNAME", f"UV_INDEX_{key}_PASSWORD"


def userinfo(url: str) -> tuple[str, str | None] | None:
    """The (decoded) user name and password in ``url``, if it has any."""
    parts = urlsplit(url)
    if parts.username is None:
        return None
    password = unquote(parts.password) if parts.password is not None else None
    return unquote(parts.username), password


def with_environment_credentials(index: RoutedIndex, environ: Mapping[str, str]) -> RoutedIndex:
    """``index`` with the user name and password of uv's variables, unless its URL has some."""
    return replace(index, url=url_with_variables(index.url, index.name, environ))


def url_with_variables(url: str, name: str, environ: Mapping[str, str]) -> str:
    """``url`` with the credentials of uv's variables for the index ``name``, unless it has some."""
    user_var, password_var = credential_variables(name)
    user, password = environ.get(user_var), environ.get(password_var)
    parts = urlsplit(url)
    if not parts.netloc or userinfo(url) is not None or not (user or password):
        return url  # "pypi" is no URL; credentials in the URL come first
    info = quote(user or "", safe="") + (f":{quote(password, safe='')}" if password else "")
    return urlunsplit(
        (parts.scheme, f"{info}@{parts.netloc}", parts.path, parts.query, parts.fragment)
    )


def _origin(url: str) -> tuple[str, str]:
    return _origin_of(urlsplit(url))


def _origin_of(parts: SplitResult) -> tuple[str, str]:
    return parts.scheme, parts.netloc


def _shared(index_path: str, file_path: str) -> int:
    count = 0
    index, file = ([s for s in p.split("/") if s] for p in (index_path, file_path))
    for a, b in zip(index, file, strict=False):
        if a != b:
            break
        count += 1
    return count


def _first(scored: tuple[int, str]) -> int:
    return scored[0]

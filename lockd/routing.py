"""Which package comes from which index (pure).

Only the PyTorch family is taken from ``<pytorch-index>/<variant>``, as an
*explicit* index; everything else comes from the default index. The variant
indexes host old copies of numpy, filelock, … that must never be picked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name

from .settings import DEFAULT_FAMILY, PYPI_SENTINEL
from .targets import Target
from .urls import join, strip_credentials


@dataclass(frozen=True, slots=True)
class IndexPlan:
    """The indexes of one target. ``variant`` is ``None`` when torch comes from PyPI."""

    default: str
    variant: str | None
    family: frozenset[str]

    def is_routed(self, name: str) -> bool:
        return canonicalize_name(name) in self.family

    def expected_index(self, name: str) -> str:
        """The index (credentials stripped) a package must come from."""
        if self.variant is not None and self.is_routed(name):
            return strip_credentials(self.variant)
        return strip_credentials(self.default)

    def public(self) -> dict[str, str]:
        """The plan as recorded: credentials stripped."""
        out = {"default": strip_credentials(self.default)}
        if self.variant is not None:
            out["variant"] = strip_credentials(self.variant)
        return out


def family_names(extra: Iterable[str] = ()) -> frozenset[str]:
    return frozenset(canonicalize_name(n) for n in (*DEFAULT_FAMILY, *extra))


def plan_for(
    target: Target, default_index: str, pytorch_index: str, family: frozenset[str]
) -> IndexPlan:
    """The index plan of ``target``; ``pytorch_index == "pypi"`` takes torch from the default."""
    if pytorch_index == PYPI_SENTINEL:
        return IndexPlan(default_index, None, family)
    return IndexPlan(default_index, join(pytorch_index, target.accelerator.name), family)


def index_of(url: str, plan: IndexPlan) -> str:
    """Which of the plan's indexes served ``url``.

    PyTorch pages link files root-relatively, and the copies of ordinary
    packages often live outside ``/whl/<variant>/`` (``/whl/numpy-…``), so a file
    on the variant index's host counts as the variant's unless the default
    index shares that host, where the path decides.
    """
    if plan.variant is None:
        return strip_credentials(plan.default)
    file, variant, default = (
        urlsplit(strip_credentials(u)) for u in (url, plan.variant, plan.default)
    )
    if (file.scheme, file.netloc) == (variant.scheme, variant.netloc):
        if variant.netloc != default.netloc:
            return strip_credentials(plan.variant)
        variant_root = variant.path.rstrip("/").rsplit("/", 1)[0] + "/"
        default_root = default.path.rstrip("/") + "/"
        if file.path.startswith(variant_root) and not file.path.startswith(default_root):
            return strip_credentials(plan.variant)
    return strip_credentials(plan.default)

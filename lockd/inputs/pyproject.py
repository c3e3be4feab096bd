"""``[project].dependencies`` (+ optional extras) of a ``pyproject.toml`` (pure parsing)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import UsageError
from .requirements import refuse_direct_reference


def parse_pyproject(text: str, source: str, extras: Iterable[str] = ()) -> tuple[str, ...]:
    """The requirements of the project's dependencies and the chosen extras."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source} is not valid TOML: {exc}.") from None
    project = data.get("project")
    if not isinstance(project, dict):
        raise UsageError(
            f"{source} has no [project] table.",
            hint="lockd reads [project].dependencies; add them, or lock a requirements.in.",
        )
    if "dependencies" in project.get("dynamic", []):
        raise UsageError(
            f"{source} declares its dependencies as dynamic; lockd cannot read them statically.",
            hint="List them in [project].dependencies or in a requirements.in.",
        )
    lines: list[str] = list(project.get("dependencies", []))
    optional = {
        canonicalize_name(k): v for k, v in project.get("optional-dependencies", {}).items()
    }
    for extra in extras:
        key = canonicalize_name(extra)
        if key not in optional:
            known = ", ".join(sorted(optional)) or "none"
            raise UsageError(
                f"{source} has no optional dependency group {extra!r}.",
                hint=f"Known extras: {known}.",
            )
        lines += optional[key]
    own = canonicalize_name(project.get("name", ""))
    out: list[str] = []
    for line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise UsageError(f"{source}: {line!r} is not a valid requirement ({exc}).") from None
        if canonicalize_name(req.name) == own:
            continue  # self-references such as "pkg[gpu]" inside extras
        refuse_direct_reference(req, source)
        out.append(str(req))
    return tuple(out)

"""``<target>.requirements.txt`` for ``pip install --require-hashes --no-deps -r`` (pure).

Routed artifacts (the PyTorch family, packages of an ``[[index]]``) are written
as direct URLs to the exact file, so pip has no way to fetch them from another
index (a same-named package on the default index never gets a chance);
everything else is pinned with ``==`` and every hash the lock recorded for it.
Where the lock has a dependency graph, each package is followed by ``# via``
comments as pip-compile (7) writes them: the input files that name it (``-r
requirements.in``, ``-c constraints.txt``, ``pyproject.toml (extra: train)``),
then the packages that require it.
"""

from __future__ import annotations

from ..graph import via
from ..lockset import Artifact, Lock
from ..routing import IndexPlan
from ..urls import with_userinfo


def render_requirements(
    lock: Lock, plan: IndexPlan, *, header: str, credentials: bool = False
) -> str:
    """The requirements file of a lock; ``credentials`` only for what no file keeps.

    Lock files never carry credentials. A drift rebuild renders the file with the
    configured credentials put back, so a private index stays reachable, and hands
    it to ``uv pip sync`` on stdin: it is never written to disk.
    """
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines.append(f"--index-url {plan.default if credentials else plan.public()['default']}")
    by_name: dict[str, list[Artifact]] = {}
    for artifact in lock.artifacts:
        by_name.setdefault(artifact.name, []).append(artifact)
    for name in sorted(by_name):
        artifacts = by_name[name]
        first = artifacts[0]
        route = plan.route_of(name)
        if route is not None:
            # One direct URL per requirement: the file this target installs.
            wheel = next((a for a in artifacts if a.kind == "wheel"), first)
            url = with_userinfo(wheel.url, route.url) if credentials else wheel.url
            lines.append(f"{name} @ {url} \\")
            lines.append(f"    --hash=sha256:{wheel.sha256}")
        else:
            hashes = sorted({a.sha256 for a in artifacts})
            lines.append(f"{name}=={first.version} \\")
            lines += [f"    --hash=sha256:{h} \\" for h in hashes[:-1]]
            lines.append(f"    --hash=sha256:{hashes[-1]}")
        if lock.graph is not None:
            lines += via_comment(via(lock.graph, name))
    return "\n".join(lines) + "\n"


def via_comment(reasons: list[str]) -> list[str]:
    """pip-compile's annotation: ``# via x`` for one reason, an indented list for more.

    A reason can hold text from an input (a file or extra name); any character that
    could end the comment line (pip splits lines on more than ``\\n``) is replaced.
    """
    reasons = ["".join(c if c.isprintable() else "?" for c in r) for r in reasons]
    if not reasons:
        return []
    if len(reasons) == 1:
        return [f"    # via {reasons[0]}"]
    return ["    # via", *(f"    #   {reason}" for reason in reasons)]

"""Run every rule over one Dockerfile; apply suppressions; pick the lock's target (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from packaging.utils import canonicalize_name

from lockd.errors import UsageError
from lockd.images import BuildOptions, parse_dockerfile_stages
from lockd.lockset import Lockset
from lockd.settings import DEFAULT_FAMILY
from lockd.targets import parse_target_id

from . import rules
from .base import check_base_images
from .context import TARGET_ID, Context
from .final import check_final_image
from .installs import check_installs
from .model import FileReport, LockFacts
from .secrets import check_secrets

_IGNORE = re.compile(r"lockd-lint\s+ignore\s*=\s*([A-Za-z0-9_,\s]+)")
_CHECKS = (check_base_images, check_installs, check_final_image, check_secrets)


def lint_text(
    text: str,
    source: str = "Dockerfile",
    *,
    options: BuildOptions | None = None,
    lock: LockFacts | None = None,
) -> FileReport:
    """Every finding of ``text``; those suppressed by ``# lockd-lint ignore=ID`` apart."""
    dockerfile = parse_dockerfile_stages(text, options, source=source)
    ctx = Context(dockerfile, lock)
    if not dockerfile.stages:
        ctx.report(rules.UNREADABLE, 1, "The file has no FROM instruction.")
    else:
        for check in _CHECKS:
            check(ctx)
    ignored = _suppressions(dockerfile.text.comments)
    findings = sorted(set(ctx.findings), key=lambda f: (f.line, f.rule.id, f.message))
    kept = tuple(f for f in findings if f.rule.id not in ignored.get(f.line, ()))
    dropped = tuple(f for f in findings if f.rule.id in ignored.get(f.line, ()))
    notes: tuple[str, ...] = ()
    if lock is not None and lock.target is None:
        notes = (
            "The lockset has several targets and the Dockerfile names none of them: checks of "
            "Python and CUDA against the lock were skipped (pass --target).",
        )
    return FileReport(source, kept, dropped, notes, lock)


def _suppressions(comments: Mapping[int, str]) -> dict[int, frozenset[str]]:
    """Line -> rule ids ignored there (``# lockd-lint ignore=LD101,LD302`` on the line before)."""
    out: dict[int, frozenset[str]] = {}
    for line, text in comments.items():
        if match := _IGNORE.search(text):
            ids = frozenset(p.strip().upper() for p in match[1].replace(" ", ",").split(","))
            out[line + 1] = ids - {""}
    return out


def lock_facts(lockset: Lockset, text: str, target: str | None = None) -> LockFacts:
    """The facts lock-aware rules use: the target the Dockerfile builds, if it can be told.

    ``target`` (``--target``) first; else the one target of the lockset the text
    names (a ``dev.lockd.target`` label, a lock file name); else the lockset's only
    target. With several candidates the target stays unknown and only what all of
    them share is used.
    """
    targets = [t for t in lockset.targets if "-" in t]
    if target is not None and target not in targets:
        raise UsageError(
            f"Target {target} is not in lockset {lockset.hash[:12]} (project {lockset.project}).",
            hint=f"Its targets: {', '.join(targets) or 'none'}.",
        )
    named = sorted({t for t in TARGET_ID.findall(text) if t in targets})
    chosen = target or (named[0] if len(named) == 1 else None)
    if chosen is None and len(targets) == 1:
        chosen = targets[0]
    candidates = [chosen] if chosen else targets
    parsed = []
    for candidate in candidates:
        try:
            parsed.append(parse_target_id(candidate))
        except UsageError:
            continue
    pythons = {t.python for t in parsed}
    cudas = {t.accelerator.version[:2] if t.accelerator.kind == "cuda" else None for t in parsed}
    accelerators = {t.accelerator.name for t in parsed}
    family = lockset.extra.get("family") or DEFAULT_FAMILY
    return LockFacts(
        lockset=lockset.hash,
        target=chosen,
        python=next(iter(pythons)) if len(pythons) == 1 else None,
        cuda=_pair(next(iter(cudas))) if len(cudas) == 1 else None,
        accelerator=next(iter(accelerators)) if len(accelerators) == 1 else None,
        family=frozenset(canonicalize_name(str(n)) for n in family),
        lock_files=frozenset(name for lock in lockset.locks for name in lock.files),
    )


def _pair(version: tuple[int, ...] | None) -> tuple[int, int] | None:
    return (version[0], version[1]) if version and len(version) >= 2 else None

"""Version creep: the inputs resolved again today (and as of the cut-off), and index offers."""

from __future__ import annotations

from collections.abc import Sequence

from ...builds import recorded_builds
from ...drift import Finding, compare_offered, compare_resolution
from ...errors import ResolutionError
from ...indexes import files_of_version, listed_versions
from ...lockset import Lock, Lockset
from ...resolvers.interface import Pin, ResolveRequest
from ...resolvers.uv import UvResolver
from ...scratch import scratch_dir
from ...settings import Settings
from ...targets import Target
from .indexes import credentialed
from .options import DriftOptions, TargetCheck


def conda_creep(options: DriftOptions, lockset: Lockset, lock: Lock) -> list[Finding]:
    """Solve the recorded environment again for this conda target, today."""
    from ...inputs.environment import CondaEnvironment
    from ...lockset import InputFile
    from ...targets import parse_accelerator, parse_platform
    from ..conda import lock_conda

    recorded = lockset.extra.get("conda")
    if not isinstance(recorded, dict):
        return []
    platform, accelerator = lock.target.rsplit("-", 1)
    environment = CondaEnvironment(
        name=recorded.get("name"),
        channels=tuple(recorded.get("channels", ())),
        specs=tuple(recorded.get("specs", ())),
        source=str(recorded.get("environment", "environment.yml")),
    )
    settings = Settings.from_env(options.environ)
    outcome = lock_conda(
        environment,
        InputFile(environment.source, ""),
        (Target(parse_platform(platform), (3, 0), parse_accelerator(accelerator)),),
        channel_base=settings.conda_channel,
        glibc=str(lockset.extra.get("glibc", "2.28")),
        cache_dir=settings.home / "cache" / "rattler",
        concurrency=1,
    )
    if outcome.failures:
        raise outcome.failures[0]
    return compare_resolution(lock, outcome.locks[0].packages(), None, cutoff_known=False)


def creep_findings(check: TargetCheck) -> list[Finding]:
    """What resolving the inputs again would change, and what the indexes offer now."""
    lockset, lock, plan = check.lockset, check.lock, check.plan
    resolver = UvResolver()
    constraints = tuple(lockset.extra.get("constraints", ()))
    glibc = str(lockset.extra.get("glibc", "2.28"))
    settings = Settings.from_env(check.options.environ)
    findings: list[Finding] = []
    for offered in lock.offered:
        links = check.client.project_links(credentialed(offered.index, plan), offered.name)
        locked_version = lock.packages().get(offered.name)
        files = files_of_version(links, locked_version) if locked_version else {}
        versions = list(listed_versions(links))
        findings += compare_offered(lock.target, offered, files, versions)
    with scratch_dir("creep", settings.home) as tmp:

        def resolve(name: str, exclude_newer: str | None, prefer: bool = False) -> dict[str, str]:
            request = ResolveRequest(
                target=check.target,
                requirements=lockset.requirements,
                constraints=constraints,
                plan=plan,
                workdir=tmp / name,
                glibc=glibc,
                exclude_newer=exclude_newer,
                cache_dir=settings.uv_cache,
                builds=recorded_builds(lockset),
                preferences=pins if prefer else (),
            )
            return {p.name: p.version for p in resolver.resolve(request).packages}

        pins = tuple(Pin(name, version) for name, version in sorted(lock.packages().items()))
        kept = None
        try:
            today = resolve("today", None)
            as_of = resolve("cutoff", lockset.cutoff) if today != lock.packages() else None
            if as_of is not None and as_of != lock.packages():
                # Moved at the cut-off too: a kept pin (the lock's own preferences reproduce
                # it), or upstream changed what was there (they do not).
                kept = resolve("kept", lockset.cutoff, prefer=True)
        except ResolutionError:
            if findings:  # what the index no longer offers explains the failure
                return _dedupe(findings)
            raise
    findings += compare_resolution(lock, today, as_of, kept_at_cutoff=kept)
    return _dedupe(findings)


def _dedupe(findings: Sequence[Finding]) -> list[Finding]:
    seen: dict[tuple[str, str | None, str | None, str | None], Finding] = {}
    for finding in findings:
        seen.setdefault((finding.kind, finding.target, finding.package, finding.actual), finding)
    return list(seen.values())

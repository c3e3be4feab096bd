"""An environment against its lock: a live one (``--python``/``--snapshot``) or a rebuild."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...builds import rebuild_refusal, recorded_builds
from ...drift import Finding, compare_snapshot, driver_findings
from ...errors import ResolutionError, UsageError
from ...lockfiles.requirements import render_requirements
from ...lockset import Lock
from ...processes import Deadline, run_child, stream_child
from ...resolvers.uv import hermetic_env, sync_build_flags, uv_binary
from ...scratch import scratch_dir
from ...settings import Settings, deadline
from ...store import Store
from ...targets import Target, host_platform
from ...urls import redact
from .artifacts import served_findings
from .options import DriftOptions, TargetCheck

if TYPE_CHECKING:
    from ...snapshot import Snapshot


def check_environment(
    store: Store, check: TargetCheck
) -> tuple[list[Finding], dict[str, Any] | None, str]:
    """The target's environment against its lock: ``(findings, snapshot, check name)``."""
    from ...snapshot import Snapshot, take_snapshot

    options, lock, target = check.options, check.lock, check.target
    baseline_doc = store.baseline_snapshot(check.lockset.project, lock.target)
    baseline = Snapshot.from_dict(baseline_doc) if baseline_doc else None
    if options.snapshot is not None or options.python is not None:
        check.step("snapshot", str(options.python) if options.python else "the snapshot given")
        snapshot = options.snapshot or take_snapshot(options.python)
        check.step("compare", f"{len(snapshot.dists)} dists against {len(lock.artifacts)} files")
        findings = live_findings(lock, target, snapshot, baseline, _driver_override(options))
        return findings, snapshot.to_dict(), f"live:{lock.target}"
    # --no-rebuild needs no interpreter: looking for one costs a `uv python find` per target.
    interpreter = None if options.rebuild is False else _interpreter_for(target, options)
    if interpreter is None:
        if options.rebuild:
            raise UsageError(
                f"Target {lock.target} cannot be rebuilt here: it needs {target.platform.name} "
                f"with Python {target.python_version}.",
                hint="Drop --rebuild to check the locked artifacts on their indexes instead.",
            )
        check.step("artifacts", f"{len(lock.artifacts)} locked files on their indexes")
        return served_findings(check), None, f"artifacts:{lock.target}"
    with scratch_dir("rebuild", Settings.from_env(options.environ).home) as tmp:
        findings, venv_python = _rebuild(check, interpreter, tmp)
        if venv_python is None:
            return findings, None, f"rebuild:{lock.target}"
        check.step("snapshot", "the rebuilt environment")
        snapshot = take_snapshot(venv_python)
        check.step("compare", f"{len(snapshot.dists)} dists against {len(lock.artifacts)} files")
        findings += live_findings(lock, target, snapshot, baseline, None)
        return findings, snapshot.to_dict(), f"rebuild:{lock.target}"


def live_findings(
    lock: Lock,
    target: Target,
    snapshot: Snapshot,
    baseline: Snapshot | None,
    driver_override: str | None,
    *,
    dists_baseline: Snapshot | None = None,
) -> list[Finding]:
    """An environment's snapshot against a target's lock (and the last clean ``baseline``):
    the one comparison behind ``--python``, ``--snapshot``, rebuilds and fleet snapshots
    (``dists_baseline``: see ``compare_snapshot``)."""
    findings = compare_snapshot(
        lock, target, snapshot, baseline=baseline, dists_baseline=dists_baseline
    )
    return findings + driver_findings(lock, target, snapshot.driver_version or driver_override)


def _driver_override(options: DriftOptions) -> str | None:
    return options.environ.get("LOCKD_CUDA_DRIVER_VERSION") or None


def _interpreter_for(target: Target, options: DriftOptions) -> str | None:
    """A Python of the target's version on this machine, if the platform matches."""
    if host_platform() != target.platform:
        return None
    proc = run_child(
        [uv_binary(), "python", "find", "--no-project", target.python_version],
        env=hermetic_env(options.environ),
    )
    found = proc.stdout.strip()
    return found if proc.returncode == 0 and found else None


def _rebuild(check: TargetCheck, interpreter: str, tmp: Path) -> tuple[list[Finding], Path | None]:
    """A fresh venv from the recorded lock, every file proven upstream first.

    Source builds the lockset did not allow are refused before anything is
    fetched. Each locked file's sha256 is checked against what its index serves
    today (files listed without one are downloaded and hashed); a lock that does
    not rebuild from upstream is not installed at all. uv then installs with
    ``--refresh``: every cached index page and wheel is revalidated with the
    server (a conditional request when unchanged), so a file replaced under
    the same name is downloaded again and fails the hash check instead of
    being installed from the cache.
    """
    lock = check.lock
    builds = recorded_builds(check.lockset)
    refused = sorted(name for name in lock.source_builds() if not builds.allows(name))
    if refused:
        raise rebuild_refusal(lock.target, refused)
    check.step("verify", f"{len(lock.artifacts)} locked files against their indexes")
    served = served_findings(check, hash_unlisted=True)
    if served:
        return served, None
    env = hermetic_env(check.options.environ)
    venv = tmp / "venv"
    check.step("venv", f"Python {interpreter}")
    made = run_child([uv_binary(), "venv", "--quiet", "--python", interpreter, str(venv)], env=env)
    if made.returncode != 0:
        raise ResolutionError(
            f"Could not create a venv with {interpreter} to rebuild {lock.target}: "
            f"{' '.join(made.stderr.split())[-400:]}",
            target=lock.target,
        )
    # With the configured credentials put back: read from stdin, never written to a file.
    requirements = render_requirements(
        lock, check.plan, header=f"lockd drift rebuild of {lock.target}", credentials=True
    )
    python = venv / "bin" / "python"
    proc = stream_child(
        [
            uv_binary(),
            "pip",
            "sync",
            "--require-hashes",
            "--refresh",
            *sync_build_flags(lock.packages(), builds),
            "--python",
            str(python),
            "-",
        ],
        env=env,
        deadline=Deadline(
            deadline("LOCKD_UV_DEADLINE", check.options.environ),
            "uv pip sync (rebuild)",
            lock.target,
        ),
        stdin=requirements,
        on_line=lambda line: _report(check, line),
    )
    if proc.returncode == 0:
        return [], python
    return [_rebuild_failure(lock, redact(proc.stderr))], None


def _report(check: TargetCheck, line: str) -> None:
    """What uv says while it installs, as progress (not the list of installed dists)."""
    text = line.strip()
    if text and not text.startswith(("+ ", "- ", "Using Python")):
        check.step("install", text)


_REFUSED = re.compile(r"\b(?:401|403)\b|Unauthorized|Forbidden|missing credentials")


def _rebuild_failure(lock: Lock, stderr: str) -> Finding:
    """What uv's failure says about the lock; a refused login is no finding but an error."""
    text = " ".join(stderr.split())
    if _REFUSED.search(text):
        raise ResolutionError(
            f"An index refused the rebuild of {lock.target} for want of credentials: {text[-300:]}",
            hint="Give drift the credentials as compile takes them: user:token in the index URL "
            "in lockd.toml, LOCKD_INDEX_URL/LOCKD_PYTORCH_INDEX or --index/--pytorch-index.",
            target=lock.target,
        )
    package = next(
        (a.name for a in lock.artifacts if a.filename in text or f"`{a.name}" in text), None
    )
    if "Hash mismatch" in text or "hash mismatch" in text:
        kind = "artifact-changed"
    elif "404" in text or "not found" in text.lower():
        kind = "artifact-gone"
    else:
        kind = "artifact-gone" if package else "missing"
    return Finding(kind, lock.target, package, "rebuildable", "rebuild failed", detail=text[-600:])

"""An environment against its lock: a live one (``--python``/``--snapshot``) or a rebuild."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...builds import rebuild_refusal, recorded_builds
from ...drift import Finding, compare_snapshot, driver_findings
from ...errors import ResolutionError, UsageError
from ...indexes import IndexClient
from ...lockfiles.requirements import render_requirements
from ...lockset import Lock, Lockset
from ...processes import Deadline, run_child
from ...resolvers.uv import hermetic_env, sync_build_flags, uv_binary
from ...scratch import scratch_dir
from ...settings import Settings, deadline
from ...store import Store
from ...targets import Target, host_platform
from ...urls import redact
from .artifacts import served_findings
from .indexes import index_plan
from .options import DriftOptions


def check_environment(  # noqa: PLR0917 - a step of run._check_lockset
    store: Store,
    options: DriftOptions,
    lockset: Lockset,
    lock: Lock,
    target: Target,
    client: IndexClient,
) -> tuple[list[Finding], dict[str, Any] | None, str]:
    from ...snapshot import Snapshot, read_snapshot, take_snapshot

    baseline_doc = store.baseline_snapshot(lockset.project, lock.target)
    baseline = Snapshot.from_dict(baseline_doc) if baseline_doc else None
    if options.snapshot is not None or options.python is not None:
        snapshot = (
            read_snapshot(options.snapshot) if options.snapshot else take_snapshot(options.python)
        )
        findings = compare_snapshot(lock, target, snapshot, baseline=baseline)
        findings += driver_findings(
            lock, target, snapshot.driver_version or _driver_override(options)
        )
        return findings, snapshot.to_dict(), f"live:{lock.target}"
    interpreter = _interpreter_for(target, options)
    if options.rebuild is False or interpreter is None:
        if options.rebuild:
            raise UsageError(
                f"Target {lock.target} cannot be rebuilt here: it needs {target.platform.name} "
                f"with Python {target.python_version}.",
                hint="Drop --rebuild to check the locked artifacts on their indexes instead.",
            )
        plan = index_plan(lockset, target, options)
        return served_findings(lock, client, plan), None, f"artifacts:{lock.target}"
    with scratch_dir("rebuild", Settings.from_env(options.environ).home) as tmp:
        findings, venv_python = _rebuild(lockset, lock, target, interpreter, tmp, options)
        if venv_python is None:
            return findings, None, f"rebuild:{lock.target}"
        snapshot = take_snapshot(venv_python)
        findings += compare_snapshot(lock, target, snapshot, baseline=baseline)
        findings += driver_findings(lock, target, snapshot.driver_version)
        return findings, snapshot.to_dict(), f"rebuild:{lock.target}"


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


def _rebuild(  # noqa: PLR0917 - a step of check_environment
    lockset: Lockset, lock: Lock, target: Target, interpreter: str, tmp: Path, options: DriftOptions
) -> tuple[list[Finding], Path | None]:
    """A fresh venv from the recorded lock, hashes enforced."""
    builds = recorded_builds(lockset)
    refused = sorted(name for name in lock.source_builds() if not builds.allows(name))
    if refused:
        raise rebuild_refusal(lock.target, refused)
    env = hermetic_env(options.environ)
    venv = tmp / "venv"
    made = run_child([uv_binary(), "venv", "--quiet", "--python", interpreter, str(venv)], env=env)
    if made.returncode != 0:
        raise ResolutionError(
            f"Could not create a venv with {interpreter} to rebuild {lock.target}: "
            f"{' '.join(made.stderr.split())[-400:]}",
            target=lock.target,
        )
    plan = index_plan(lockset, target, options)
    # With the configured credentials put back: read from stdin, never written to a file.
    requirements = render_requirements(
        lock, plan, header=f"lockd drift rebuild of {lock.target}", credentials=True
    )
    python = venv / "bin" / "python"
    proc = run_child(
        [
            uv_binary(),
            "pip",
            "sync",
            "--require-hashes",
            *sync_build_flags(lock.packages(), builds),
            "--python",
            str(python),
            "-",
        ],
        env=env,
        deadline=Deadline(
            deadline("LOCKD_UV_DEADLINE", options.environ), "uv pip sync (rebuild)", lock.target
        ),
        stdin=requirements,
    )
    if proc.returncode == 0:
        return [], python
    return [_rebuild_failure(lock, redact(proc.stderr))], None


def _rebuild_failure(lock: Lock, stderr: str) -> Finding:
    text = " ".join(stderr.split())
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

"""The conda side of ``lockd compile``: environment.yml -> one conda lock per target.

Each target (platform × accelerator) is solved in-process with rattler; the
``pip:`` section of the environment is then locked by the pip machinery for
the Python version the solution chose, and recorded next to the conda lock.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ResolutionError
from ..graph import DirectInput, conda_graph
from ..inputs.environment import CondaEnvironment, parse_environment
from ..lockset import Artifact, InputFile, Lock, sha256_text
from ..settings import deadline
from ..targets import Target
from ..urls import redact, strip_credentials

if TYPE_CHECKING:
    from ..resolvers.rattler import CondaSolution


@dataclass(slots=True)
class CondaOutcome:
    """What the conda side produced; failures are per target (for ``--allow-partial``)."""

    environment: CondaEnvironment
    input_file: InputFile
    locks: list[Lock] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    failures: list[ResolutionError] = field(default_factory=list)
    pip_targets: list[Target] = field(default_factory=list)  # for the pip: section

    def summary(self) -> dict[str, object]:
        """What the lockset records about the environment."""
        return {
            "environment": self.input_file.path,
            "name": self.environment.name,
            "channels": [strip_credentials(c) for c in self.environment.channels],
            "specs": [redact(s) for s in self.environment.specs],
            "pip": [redact(r) for r in self.environment.pip_requirements],
            "targets": [lock.target for lock in self.locks],
        }


def _without_credentials(solution: CondaSolution) -> CondaSolution:
    """Channel URLs may carry tokens (``https://user:token@host/…``): never in a lock file."""
    return replace(
        solution,
        channels=tuple(strip_credentials(c) for c in solution.channels),
        packages=tuple(
            replace(p, url=strip_credentials(p.url), channel=strip_credentials(p.channel))
            for p in solution.packages
        ),
    )


def read_environment(path: Path, root: Path) -> tuple[CondaEnvironment, InputFile]:
    from ..inputs.files import read_input

    source = read_input(path, root)
    environment = parse_environment(source.text, source.relative)
    return environment, InputFile(source.relative, source.sha256)


def lock_conda(
    environment: CondaEnvironment,
    input_file: InputFile,
    targets: tuple[Target, ...],
    *,
    channel_base: str,
    glibc: str,
    cache_dir: Path | None,
    concurrency: int,
) -> CondaOutcome:
    """Solve every conda target of the matrix; render its lock file."""
    from ..lockfiles.condalock import conda_lock_filename, lock_from_solution, render_conda_lock
    from ..resolvers.rattler import (
        CondaRequest,
        CondaSolution,
        VirtualPackageVersions,
        conda_targets,
        solve_conda_matrix,
        spec_name,
    )

    outcome = CondaOutcome(environment, input_file)
    matrix = conda_targets(
        dict.fromkeys(t.platform.name for t in targets),
        dict.fromkeys(t.accelerator.name for t in targets),
    )
    request = CondaRequest(
        environment=environment,
        targets=matrix,
        channel_base=channel_base,
        cache_dir=cache_dir,
        virtual_versions=VirtualPackageVersions(glibc=glibc),
        concurrency=concurrency,
        deadline_s=deadline("LOCKD_UV_DEADLINE"),
    )
    direct = [DirectInput(redact(spec), input_file.path) for spec in environment.specs]
    for conda_target, answer in zip(matrix, asyncio.run(solve_conda_matrix(request)), strict=True):
        if isinstance(answer, ResolutionError):
            outcome.failures.append(answer)
            continue
        assert isinstance(answer, CondaSolution)  # noqa: S101 - narrowed by the matrix contract
        result = _without_credentials(answer)
        name = conda_lock_filename(result.target_id)
        text = render_conda_lock(lock_from_solution(result, (input_file.path,)), name)
        outcome.files[name] = text.encode()
        acc = conda_target.accelerator
        outcome.locks.append(
            Lock(
                target=result.target_id,
                artifacts=tuple(
                    Artifact(
                        name=p.name,
                        version=p.version,
                        index=strip_credentials(p.channel),
                        url=strip_credentials(p.url),
                        filename=p.filename,
                        sha256=p.sha256,
                        kind="conda",
                        md5=p.md5,
                    )
                    for p in sorted(result.packages, key=lambda p: p.name)
                ),
                files={name: sha256_text(text)},
                flavour=f"cuda {acc.cuda_version}" if acc.kind == "cuda" else "cpu",
                notes=(f"conda {result.subdir}; python {result.python_version or 'none'}",),
                graph=conda_graph({p.name: p.depends for p in result.packages}, direct, spec_name),
            )
        )
        if environment.pip_requirements and result.python is not None:
            outcome.pip_targets.append(Target(conda_target.platform, result.python, acc))
    return outcome

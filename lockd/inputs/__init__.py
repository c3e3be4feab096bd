"""What the user asks to lock: requirements.in, pyproject.toml, environment.yml.

Every file is read through :func:`files.read_input` (inside the project, a
regular file, bounded, UTF-8); every line pip would accept but lockd cannot
lock is collected and reported at once (:func:`requirements.problems_error`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..graph import DirectInput
from ..lockset import InputFile
from ..urls import redact
from .files import read_input
from .pyproject import parse_pyproject
from .requirements import Problem, parse_requirements_file, problems_error

__all__ = ["PipInputs", "is_conda_input", "is_pyproject_input", "load_pip_inputs"]


@dataclass(frozen=True, slots=True)
class PipInputs:
    """The loose inputs of a pip lock, and every file they were read from.

    ``index_url`` is the default index a requirements file named (``-i``), if any;
    ``direct`` holds every requirement and constraint with where it was written,
    for the dependency graph's roots.
    """

    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    files: tuple[InputFile, ...]
    index_url: str | None = None
    direct: tuple[DirectInput, ...] = ()


def is_conda_input(path: Path) -> bool:
    return path.suffix in {".yml", ".yaml"}


def is_pyproject_input(path: Path) -> bool:
    return path.suffix == ".toml"


def load_pip_inputs(
    paths: Sequence[Path],
    root: Path,
    extras: Sequence[str] = (),
    groups: Sequence[str] = (),
) -> PipInputs:
    """Read every pip input file; paths in the result are relative to ``root``."""
    if (extras or groups) and not any(is_pyproject_input(p) for p in paths):
        flag = "--extra" if extras else "--group"
        raise UsageError(
            f"{flag} selects part of a pyproject.toml, but the inputs are "
            + ", ".join(map(str, paths))
            + ".",
            hint="Add pyproject.toml to the inputs, or drop the extras and groups "
            "(flags or lockd.toml).",
        )
    requirements: list[str] = []
    constraints: list[str] = []
    direct: list[DirectInput] = []
    files: dict[str, InputFile] = {}
    problems: list[Problem] = []
    index: str | None = None
    for path in paths:
        if not path.exists() and not path.is_symlink():
            raise UsageError(
                f"Input file {path} does not exist.",
                hint="Pass a requirements.in or pyproject.toml, or set inputs in lockd.toml.",
            )
        if is_pyproject_input(path):
            source = read_input(path, root)
            parsed = parse_pyproject(source.text, source.relative, extras, groups)
            requirements += parsed.requirements
            direct += parsed.direct
            problems += parsed.problems
            files.setdefault(source.relative, InputFile(source.relative, source.sha256))
            continue
        found = parse_requirements_file(path, root)
        requirements += found.requirements
        constraints += found.constraints
        direct += found.direct
        problems += found.problems
        for file in found.files:
            files.setdefault(file.path, file)
        if found.index_url is not None and index is not None and found.index_url != index:
            raise UsageError(
                f"The inputs name two default indexes ({redact(index)} and "
                f"{redact(found.index_url)}).",
                hint="Keep one -i/--index-url line, or set index-url in lockd.toml.",
            )
        index = index or found.index_url
    if problems:
        raise problems_error(problems)
    if not requirements:
        raise UsageError(
            "The inputs name no requirements: " + ", ".join(map(str, paths)) + ".",
            hint="Add at least one requirement such as torch==2.6.0.",
        )
    return PipInputs(
        tuple(dict.fromkeys(requirements)),
        tuple(dict.fromkeys(constraints)),
        tuple(files.values()),
        index,
        tuple(dict.fromkeys(direct)),
    )

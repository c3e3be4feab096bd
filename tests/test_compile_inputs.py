"""`lockd compile` on real inputs through the CLI: extras, groups, -i, hostile includes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.support.pyindex import IndexServer

MATRIX = ["--cuda", "cpu", "--platform", "linux-x86_64", "--python", "3.11"]
SECRET = "root:$6$s3cr3t-hash:19000:0:99999:7:::"

PYPROJECT = """\
[project]
name = "My-Project"
version = "1.0"
dependencies = ["idna"]

[project.optional-dependencies]
train = ["filelock"]
eval = ["typing-extensions", "my_project[TRAIN]"]

[dependency-groups]
a = ["requests"]
b = ["requests", {include-group = "c"}]
c = []
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def locked(tmp_path: Path) -> dict[str, str]:
    doc = json.loads((tmp_path / "locks" / "lockd.json").read_text())
    (lock,) = doc["locks"]
    return {a["name"]: a["version"] for a in lock["artifacts"]}


def assert_usage_error(run: Run) -> None:
    assert run.returncode == 2, run.output
    assert "Traceback" not in run.output
    assert run.stderr.startswith("error:") and run.stderr.count("\n") == 1, run.stderr
    assert SECRET not in run.output and "s3cr3t" not in run.output


def test_nested_extras_are_locked(lockd, tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", PYPROJECT)
    run = lockd("compile", "pyproject.toml", "--extra", "eval", *MATRIX)
    assert run.returncode == 0, run.output
    # train's filelock comes in through eval's self-reference "my_project[TRAIN]"
    assert {"idna", "typing-extensions", "filelock"} <= set(locked(tmp_path))


def test_groups_are_locked_and_recorded_so_a_change_relocks(lockd, tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", PYPROJECT)
    first = lockd("compile", "pyproject.toml", "--group", "a", *MATRIX, "--format", "json")
    assert first.returncode == 0, first.output
    assert {"idna", "requests"} <= set(locked(tmp_path))
    manifest = json.loads((tmp_path / "locks" / "lockd.json").read_text())
    assert manifest["extra"]["groups"] == ["a"]
    same = lockd("compile", "pyproject.toml", "--group", "a", *MATRIX, "--format", "json")
    assert json.loads(same.stdout)["status"] == "unchanged"
    # group b locks the same requirements, but it is another selection: a new lockset
    other = lockd("compile", "pyproject.toml", "--group", "b", *MATRIX, "--format", "json")
    assert json.loads(other.stdout)["status"] == "compiled", other.output
    assert json.loads((tmp_path / "locks" / "lockd.json").read_text())["extra"]["groups"] == ["b"]
    write(tmp_path / "lockd.toml", 'groups = ["nope"]\n')
    missing = lockd("compile", "pyproject.toml", *MATRIX)
    assert_usage_error(missing)
    assert "--group names the dependency group 'nope'" in missing.stderr
    assert "Known groups: a, b, c." in missing.stderr


def test_a_requirements_index_url_is_the_default_index_below_flags(
    lockd, tmp_path: Path, world: IndexServer
) -> None:
    write(tmp_path / "requirements.in", f"-i {world.url}/simple\nidna\n")
    unset = {"LOCKD_INDEX_URL": ""}
    run = lockd("compile", *MATRIX, "--pytorch-index", "pypi", env=unset)
    assert run.returncode == 0, run.output
    doc = json.loads((tmp_path / "locks" / "lockd.json").read_text())
    assert doc["indexes"]["default"] == f"{world.url}/simple"
    # the flag (and LOCKD_INDEX_URL, and index-url in lockd.toml) come first
    write(tmp_path / "requirements.in", "-i http://127.0.0.1:9/simple\nidna\n")
    flagged = lockd("compile", *MATRIX, "--index", f"{world.url}/simple", "--out", "l2", env=unset)
    assert flagged.returncode == 0, flagged.output
    assert json.loads((tmp_path / "l2" / "lockd.json").read_text())["indexes"]["default"] == (
        f"{world.url}/simple"
    )


def test_extra_index_urls_are_refused_with_routing_advice(lockd, tmp_path: Path) -> None:
    write(
        tmp_path / "requirements.in",
        "--extra-index-url https://user:pw@pkgs.example/simple\nacme-models\n",
    )
    run = lockd("compile", *MATRIX)
    assert_usage_error(run)
    assert "requirements.in:1: `--extra-index-url https://pkgs.example/simple`" in run.stderr
    assert "dependency confusion" in run.stderr and "[[index]]" in run.stderr
    assert "pw@" not in run.stderr
    assert not (tmp_path / "locks").exists()


@pytest.mark.parametrize(
    "include", ["/dev/zero", "/etc/shadow", "../outside.txt", "link.in", "fifo"]
)
def test_hostile_includes_are_refused_without_echo_or_hang(
    lockd, tmp_path: Path, include: str
) -> None:
    project = tmp_path / "project"
    write(tmp_path / "outside.txt", SECRET + "\n")
    write(project / "requirements.in", f"idna\n-r {include}\n")
    (project / "link.in").symlink_to(tmp_path / "outside.txt")
    os.mkfifo(project / "fifo")
    run = lockd("compile", *MATRIX, cwd=project)  # the fixture's timeout catches a hang
    assert_usage_error(run)
    assert "requirements.in:2: " in run.stderr


def test_bad_encodings_and_pip_forms_in_environment_yml(lockd, tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_bytes("idna\n".encode("utf-16"))
    utf16 = lockd("compile", *MATRIX)
    assert_usage_error(utf16)
    assert "requirements.in is UTF-16 encoded" in utf16.stderr
    (tmp_path / "requirements.in").unlink()
    write(
        tmp_path / "environment.yml",
        "name: t\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip:\n"
        "    - --extra-index-url https://download.pytorch.org/whl/cu118\n"
        "    - torch==2.0.1\n    - -e .\n",
    )
    env = lockd("compile", "environment.yml", *MATRIX)
    assert_usage_error(env)
    assert "environment.yml:6: `--extra-index-url" in env.stderr
    assert "environment.yml:8: `-e .` is an editable install" in env.stderr

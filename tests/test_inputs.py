"""Input files: reading only what is safe, every unlockable pip form at once, extras, groups."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from lockd.errors import UsageError
from lockd.inputs import load_pip_inputs
from lockd.inputs.files import MAX_INPUT_BYTES, read_input
from lockd.inputs.pyproject import parse_pyproject
from lockd.inputs.requirements import parse_requirement_lines, parse_requirements_file

SECRET = "root:$6$s3cr3t-hash:19000:0:99999:7:::"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory next to a file outside it that holds a secret."""
    write(tmp_path / "outside.txt", SECRET + "\n")
    root = tmp_path / "project"
    root.mkdir()
    return root


def problems_of(root: Path, text: str, name: str = "requirements.in") -> list[str]:
    write(root / name, text)
    return [p.render() for p in parse_requirements_file(root / name, root).problems]


def failure(root: Path, name: str = "requirements.in") -> str:
    with pytest.raises(UsageError) as info:
        load_pip_inputs([root / name], root)
    rendered = info.value.render()
    assert "\n" not in rendered  # one paragraph
    assert SECRET not in rendered and "s3cr3t" not in rendered
    return rendered


# -- includes: inside the project, regular files, bounded ---------------------------------


@pytest.mark.parametrize(
    ("include", "needle"),
    [
        ("-r ../outside.txt", "../outside.txt lies outside the project"),
        ("-c /dev/zero", "/dev/zero lies outside the project"),
        ("-r /etc/shadow", "/etc/shadow lies outside the project"),
        ("-r /etc/passwd", "/etc/passwd lies outside the project"),
        ("-r sub", "Input file sub is a directory, not a regular file"),
        ("-r https://example.invalid/reqs.txt", "`-r https://example.invalid/reqs.txt` includes a"),
    ],
)
def test_includes_outside_the_project_or_not_files_are_refused(
    project: Path, include: str, needle: str
) -> None:
    (project / "sub").mkdir()
    write(project / "requirements.in", f"idna\n{include}\n")
    message = failure(project)
    assert f"requirements.in:2: {needle}" in message
    assert "root:" not in message


def test_a_symlink_is_resolved_before_it_is_checked(project: Path) -> None:
    (project / "innocent.txt").symlink_to(project.parent / "outside.txt")
    write(project / "requirements.in", "idna\n-r innocent.txt\n")
    message = failure(project)
    assert "innocent.txt lies outside the project (through a symbolic link)" in message
    # a symlink that stays inside the project is followed
    write(project / "real" / "base.in", "requests\n")
    (project / "base.in").symlink_to(project / "real" / "base.in")
    write(project / "ok.in", "idna\n-r base.in\n")
    parsed = parse_requirements_file(project / "ok.in", project)
    assert parsed.requirements == ("idna", "requests")
    assert [f.path for f in parsed.files] == ["ok.in", "real/base.in"]


def test_a_fifo_is_refused_without_opening_it(project: Path) -> None:
    os.mkfifo(project / "pipe.in")
    write(project / "requirements.in", "idna\n-r pipe.in\n")
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(failure(project)), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "reading a FIFO include hung"
    assert "requirements.in:2: Input file pipe.in is a FIFO, not a regular file" in result[0]


def test_devices_and_large_files_are_refused(project: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a character device"):
        read_input(Path("/dev/zero"), Path("/dev"))
    big = project / "big.in"
    with big.open("wb") as handle:
        handle.truncate(MAX_INPUT_BYTES + 1)  # sparse: no disk used
    write(project / "requirements.in", "idna\n-r big.in\n")
    assert "big.in is larger than 10 MiB" in failure(project)


def test_a_top_level_input_outside_the_project_is_refused(project: Path) -> None:
    with pytest.raises(UsageError, match="lies outside the project") as info:
        load_pip_inputs([project.parent / "outside.txt"], project)
    assert SECRET not in info.value.render()


# -- encodings -----------------------------------------------------------------------------


def test_a_utf8_byte_order_mark_is_accepted(project: Path) -> None:
    write(project / "requirements.in", "\ufeffidna==3.10\n".encode())
    assert load_pip_inputs([project / "requirements.in"], project).requirements == ("idna==3.10",)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ("idna\nrequests\n".encode("utf-16"), "is UTF-16 encoded"),
        ("idna\nrequests\n".encode("utf-16-le"), "contains NUL bytes (line 1)"),
        (b"idna\nr\xe9quests\n", "is not valid UTF-8 (line 2)"),
    ],
)
def test_other_encodings_get_one_paragraph(project: Path, data: bytes, needle: str) -> None:
    write(project / "requirements.in", data)
    with pytest.raises(UsageError) as info:
        load_pip_inputs([project / "requirements.in"], project)
    assert needle in info.value.render()
    assert "UTF-8" in info.value.render()


# -- pip forms that cannot be locked: all at once, with file and line ----------------------


def test_every_unlockable_pip_form_is_reported_at_once(project: Path) -> None:
    write(project / "more.in", "./pkg[extra]\n")
    text = "\n".join(
        [
            "idna==3.10",  # 1: fine
            "-e .",  # 2
            "git+https://github.com/acme/x.git@v1#egg=x",  # 3
            ".",  # 4
            "./pkg",  # 5
            "https://files.example/x-1.0-py3-none-any.whl",  # 6
            "dist/x-1.0-py3-none-any.whl",  # 7
            "numpy==2.1.0 --hash=sha256:" + "a" * 64,  # 8
            'tomli; python_version < "3.11',  # 9: unmatched quote
            "--extra-index-url https://pkgs.example/simple",  # 10
            "--find-links ./wheels",  # 11
            "-r more.in",  # 12
            "requests \\",  # 13: continued onto 14
            "    --hash=sha256:" + "b" * 64,
        ]
    )
    write(project / "requirements.in", text)
    message = failure(project)
    for needle in [
        "12 problems in the inputs",
        "requirements.in:2: `-e .` is an editable install",
        "requirements.in:3: `git+https://github.com/acme/x.git@v1#egg=x` is a VCS URL",
        "requirements.in:4: `.` is a local directory",
        "requirements.in:5: `./pkg` is a local directory",
        "requirements.in:6: `https://files.example/x-1.0-py3-none-any.whl` is a wheel URL",
        "requirements.in:7: `dist/x-1.0-py3-none-any.whl` is a wheel file",
        "requirements.in:8: `numpy==2.1.0 --hash=sha256:aaaa",
        "carries --hash options",
        'requirements.in:9: `tomli; python_version < "3.11` has an unmatched quote',
        "requirements.in:10: `--extra-index-url https://pkgs.example/simple` adds an extra index",
        "dependency confusion",
        "[[index]]",
        "requirements.in:11: `--find-links ./wheels` uses the pip option --find-links",
        "more.in:1: `./pkg[extra]` is a local directory",
        "requirements.in:13: `requests --hash=sha256:bbbb",
        "lockd computes, records and verifies the sha256",
    ]:
        assert needle in message, needle


def test_index_url_lines_name_the_default_index(project: Path) -> None:
    write(project / "base.in", "--index-url=https://pkgs.example/simple/\nidna\n")
    write(project / "requirements.in", "-i https://pkgs.example/simple\n-r base.in\nrequests\n")
    inputs = load_pip_inputs([project / "requirements.in"], project)
    assert inputs.index_url == "https://pkgs.example/simple"
    write(project / "other.in", "-i https://elsewhere.example/simple\n-r base.in\n")
    assert (
        "base.in:1: sets the index https://pkgs.example/simple, but other.in:1 already set "
        "https://elsewhere.example/simple" in failure(project, "other.in")
    )
    write(project / "env.in", "--index-url https://${TOKEN}@pkgs.example/simple\nidna\n")
    assert "does not expand them" in failure(project, "env.in")


def test_environment_pip_section_uses_the_same_rules() -> None:
    parsed = parse_requirement_lines(
        [
            ("environment.yml:9", "--extra-index-url https://download.pytorch.org/whl/cu118"),
            ("environment.yml:10", "torch==2.0.1"),
            ("environment.yml:11", "-e ."),
            ("environment.yml:12", "-r requirements.txt"),
        ]
    )
    assert parsed.requirements == ("torch==2.0.1",)
    assert [p.where for p in parsed.problems] == [
        "environment.yml:9",
        "environment.yml:11",
        "environment.yml:12",
    ]


# -- pyproject: nested extras, dependency groups, shapes -----------------------------------

PYPROJECT = """\
[project]
name = "My_Project"
version = "1.2.0"
dependencies = ["requests"]

[project.optional-dependencies]
train = ["torch==2.6.0", "my-project[Data]"]
data = ["pandas", "my.project[train]"]
eval = ["scikit-learn", "my-project[train]"]
gpu = ["my-project[cuda]; sys_platform == 'linux'"]
cuda = ["nvidia-cuda-runtime-cu12; platform_machine == 'x86_64'"]

[dependency-groups]
Test = ["pytest", {include-group = "lint"}, "my-project[eval]"]
lint = ["ruff"]
loop-a = [{include-group = "loop-b"}]
loop-b = ["x", {include-group = "Loop_A"}]
"""


def test_self_referencing_extras_expand_like_pip() -> None:
    parsed = parse_pyproject(PYPROJECT, "pyproject.toml", ["EVAL"])
    # eval -> train -> data -> train (a cycle, closed), each requirement once
    assert parsed.requirements == ("requests", "scikit-learn", "torch==2.6.0", "pandas")
    assert parse_pyproject(PYPROJECT, "pyproject.toml", ["gpu"]).requirements == (
        "requests",
        'nvidia-cuda-runtime-cu12; sys_platform == "linux" and platform_machine == "x86_64"',
    )


def test_a_self_reference_to_a_missing_extra_is_an_error_not_a_silent_drop() -> None:
    text = PYPROJECT.replace('"my-project[Data]"', '"my-project[dta]"')
    (problem,) = parse_pyproject(text, "pyproject.toml", ["train"]).problems
    assert problem.render().startswith("pyproject.toml:7: names the extra 'dta'")
    assert "known extras: cuda, data, eval, gpu, train" in problem.render()


def test_dependency_groups_with_includes_and_self_references() -> None:
    parsed = parse_pyproject(PYPROJECT, "pyproject.toml", groups=["test"])
    assert parsed.requirements == (
        "requests",
        "pytest",
        "ruff",
        "scikit-learn",
        "torch==2.6.0",
        "pandas",
    )
    only_groups = '[dependency-groups]\ndev = ["ruff", "pytest>8"]\n'
    assert parse_pyproject(only_groups, "pyproject.toml", groups=["dev"]).requirements == (
        "ruff",
        "pytest>8",
    )


@pytest.mark.parametrize(
    ("text", "group", "needle"),
    [
        (PYPROJECT, "loop-a", "include each other in a cycle (loop-a -> loop-b -> loop-a)"),
        (PYPROJECT, "docs", "--group names the dependency group 'docs'"),
        (
            PYPROJECT.replace('"lint"}', '"lnt"}'),
            "test",
            "group 'Test' includes the dependency group 'lnt'",
        ),
        ('[dependency-groups]\ndev = ["a"]\nDev = ["b"]\n', "dev", "names one group twice"),
        ('[dependency-groups]\ndev = "ruff"\n', "dev", "[dependency-groups] dev must be a list"),
        (
            '[dependency-groups]\ndev = [{include-group = "x", extra = 1}]\nx = []\n',
            "dev",
            "neither a requirement string",
        ),
        ('[dependency-groups]\n"-bad-" = []\n', "dev", "is not a valid group name"),
    ],
)
def test_group_errors_name_the_group(text: str, group: str, needle: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_pyproject(text, "pyproject.toml", groups=[group])
    assert needle in info.value.render()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[project\nname = 1\n", "is not valid TOML"),
        ('project = "x"\n', "[project] must be a table"),
        ('[project]\nname = "x"\ndependencies = "requests"\n', "dependencies must be a list"),
        ('[project]\nname = "x"\ndependencies = [1]\n', "dependencies must be a list"),
        ("[project]\nname = 5\n", "[project] name must be a string"),
        ('[project]\nname = "x"\noptional-dependencies = []\n', "must be a table of lists"),
        ('[project]\nname = "x"\n[project.optional-dependencies]\ngpu = "torch"\n', "gpu must"),
        ('[project]\nname = "x"\ndynamic = ["dependencies"]\n', "as dynamic"),
    ],
)
def test_wrong_pyproject_shapes_get_one_paragraph(text: str, needle: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_pyproject(text, "pyproject.toml", ["gpu"] if "gpu =" in text else [])
    assert needle in info.value.render()
    assert "\n" not in info.value.render()


def test_pyproject_entries_get_the_pip_form_diagnosis_with_lines() -> None:
    text = '[project]\nname = "x"\ndependencies = [\n  "idna",\n  "-e .",\n  "./vendor/lib",\n]\n'
    rendered = [p.render() for p in parse_pyproject(text, "pyproject.toml").problems]
    assert rendered == [
        "pyproject.toml:5: `-e .` is an editable install",
        "pyproject.toml:6: `./vendor/lib` is a local directory",
    ]


def test_extras_and_groups_need_a_pyproject_input(project: Path) -> None:
    write(project / "requirements.in", "idna\n")
    with pytest.raises(UsageError, match=r"--group selects part of a pyproject\.toml"):
        load_pip_inputs([project / "requirements.in"], project, groups=["dev"])

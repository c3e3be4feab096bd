"""environment.yml parsing: shapes, line numbers in errors, the pip section."""

from __future__ import annotations

import pytest

from lockd.errors import UsageError
from lockd.inputs.environment import CondaEnvironment, parse_environment

GOOD = """\
name: train
channels:
  - conda-forge
  - https://example.invalid/mirror/pytorch
dependencies:
  - python=3.11
  - pytorch>=2.4
  - numpy 2.0.*
  - pip
  - pip:
    - requests==2.32.3
    - -r requirements.txt
prefix: /opt/env
variables:
  FOO: bar
"""


def test_parses_name_channels_specs_and_pip_section() -> None:
    env = parse_environment(GOOD, "env/environment.yml")
    assert env == CondaEnvironment(
        name="train",
        channels=("conda-forge", "https://example.invalid/mirror/pytorch"),
        specs=("python=3.11", "pytorch>=2.4", "numpy 2.0.*", "pip"),
        pip_requirements=("requests==2.32.3", "-r requirements.txt"),
        source="env/environment.yml",
        pip_lines=(11, 12),
    )


def test_scalars_keep_the_text_the_user_wrote() -> None:
    env = parse_environment("name: 2024\ndependencies:\n  - python=3.10\n")
    assert env.name == "2024"
    assert env.specs == ("python=3.10",)
    assert env.channels == ()


def _error(text: str) -> str:
    with pytest.raises(UsageError) as info:
        parse_environment(text, "environment.yml")
    assert "\n" not in info.value.render()  # one paragraph
    return info.value.render()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # YAML syntax: the mark of the parser names the line.
        (
            "name: x\ndependencies:\n  - python\n - numpy\n",
            "environment.yml, line 4: not valid YAML",
        ),
        ("name: x\nchannels: [conda-forge\ndependencies: []\n", "line 3: not valid YAML"),
        # Shape errors name the line of the offending entry.
        (
            "name: x\ndependencies:\n  - python\n  - [a, b]\n",
            "line 4: a dependency must be a string",
        ),
        ("name: x\ndependencies: python\n", "line 2: 'dependencies' must be a list"),
        ("name: x\nchannels: conda-forge\ndependencies: [python]\n", "line 2: 'channels' must be"),
        ("name: x\ndependencies:\n  - python\n  - numpy>>1\n", "line 4: 'numpy>>1' is not a conda"),
        ("dependencies:\n  - python\n  - conda:\n    - a\n", "line 3: unknown section 'conda'"),
        ("dependencies:\n  - pip:\n      req: 1\n", "line 3: 'pip' must be a list"),
        ("dependencies:\n  - python\n  -\n", "line 3: a dependency must be a string"),
        ("name: x\n", "line 1: there is no 'dependencies' key"),
        ("- python\n", "line 1: the top level must be a mapping"),
        ("", "environment.yml: the file is empty"),
        ("dependencies: []\n", "line 1: 'dependencies' is empty"),
    ],
)
def test_errors_name_the_file_and_the_line(text: str, expected: str) -> None:
    assert expected in _error(text)


def test_a_misindented_entry_is_not_glued_to_the_one_above() -> None:
    # YAML reads "- python=3.11\n   - numpy" as the single scalar "python=3.11 - numpy".
    message = _error("dependencies:\n  - python=3.11\n    - numpy\n")
    assert "line 2: the dependency 'python=3.11 - numpy' runs over several lines" in message

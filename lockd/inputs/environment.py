"""Conda ``environment.yml`` -> :class:`CondaEnvironment` (pure: text in, data out).

The file is composed into a YAML node tree rather than loaded, so every shape
error can name the line of the entry at fault, and scalars keep the text the
user wrote (``python=3.10`` and ``- 3.10`` are not turned into floats).
Keys conda itself tolerates (``prefix``, ``variables``, conda-lock's
``platforms`` …) are ignored, as conda ignores them.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from lockd.errors import UsageError

_NULL = "tag:yaml.org,2002:null"


@dataclass(frozen=True, slots=True)
class CondaEnvironment:
    """What an ``environment.yml`` asks for.

    ``specs`` are conda match specs as written (``python=3.11``,
    ``pytorch>=2.4``); ``pip_requirements`` are the lines of the ``pip:``
    section, locked later against the Python the conda solution picked.
    """

    name: str | None
    channels: tuple[str, ...]
    specs: tuple[str, ...]
    pip_requirements: tuple[str, ...] = ()
    source: str = "environment.yml"
    pip_lines: tuple[int, ...] = ()  # the line of each pip requirement, for messages


def parse_environment(text: str, source: str = "environment.yml") -> CondaEnvironment:
    """Parse the text of an ``environment.yml``; ``source`` names it in error messages.

    Raises :class:`UsageError` naming ``source`` and the line for malformed
    YAML, a wrong shape, or a dependency that is not a valid conda match spec.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}, line {mark.line + 1}" if mark else source
        raise UsageError(
            f"{where}: not valid YAML ({exc.problem or exc.context}).",
            hint="Fix the syntax at that line; environment.yml is YAML with a mapping at the top.",
        ) from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: not valid YAML ({exc}).") from None
    if root is None:
        raise _shape(source, None, "the file is empty", "Give at least 'dependencies:'.")
    mapping = _mapping(root, source, "the top level")

    name = _optional_string(mapping.get("name"), source, "'name'")
    channels = tuple(
        _string(item, source, "a channel")
        for item in _sequence(mapping.get("channels"), source, "'channels'")
    )
    deps_node = mapping.get("dependencies")
    if deps_node is None:
        raise _shape(
            source,
            root,
            "there is no 'dependencies' key",
            "List the conda packages under 'dependencies:' (check the spelling of the key).",
        )
    specs: list[str] = []
    pip: list[yaml.Node] = []
    for item in _sequence(deps_node, source, "'dependencies'"):
        if isinstance(item, yaml.MappingNode):
            section = _mapping(item, source, "a dependencies entry")
            unknown = [key for key in section if key != "pip"]
            if unknown:
                raise _shape(
                    source,
                    item,
                    f"unknown section {unknown[0]!r} among the dependencies",
                    "Only a 'pip:' section may appear among the dependencies.",
                )
            pip += _sequence(section["pip"], source, "'pip'")
        else:
            specs.append(_match_spec(item, source))
    if not specs and not pip:
        raise _shape(source, deps_node, "'dependencies' is empty", "Add at least one package.")
    return CondaEnvironment(
        name,
        channels,
        tuple(specs),
        tuple(_string(req, source, "a pip requirement") for req in pip),
        source,
        tuple(req.start_mark.line + 1 for req in pip),
    )


def _match_spec(node: yaml.Node, source: str) -> str:
    spec = _string(node, source, "a dependency")
    if node.start_mark.line != node.end_mark.line and not getattr(node, "style", None):
        # A mis-indented "- pkg" continues the entry above instead of starting one.
        raise _shape(
            source,
            node,
            f"the dependency {spec!r} runs over several lines",
            "Put each dependency on its own '- ' line, aligned with the others.",
        )
    from rattler import MatchSpec  # lazy: rattler's extension is only needed here
    from rattler.exceptions import InvalidMatchSpecError

    try:
        MatchSpec(spec, strict=False)
    except InvalidMatchSpecError as exc:
        raise _shape(
            source,
            node,
            f"{spec!r} is not a conda match spec ({exc})",
            "Write it as conda does, for example 'numpy>=1.26', 'python=3.11' or "
            "'pytorch=*=cuda*'.",
        ) from None
    return spec


def _mapping(node: yaml.Node, source: str, what: str) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        raise _shape(source, node, f"{what} must be a mapping", "Write 'key: value' entries.")
    result: dict[str, yaml.Node] = {}
    for key, value in node.value:
        result[_string(key, source, "a key")] = value
    return result


def _sequence(node: yaml.Node | None, source: str, what: str) -> list[yaml.Node]:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL):
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise _shape(
            source, node, f"{what} must be a list", "Write one '- item' per line below the key."
        )
    return list(node.value)


def _string(node: yaml.Node, source: str, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL or not str(node.value).strip():
        raise _shape(source, node, f"{what} must be a string", "Write a plain value here.")
    return str(node.value).strip()


def _optional_string(node: yaml.Node | None, source: str, what: str) -> str | None:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL):
        return None
    return _string(node, source, what)


def _shape(source: str, node: yaml.Node | None, problem: str, hint: str) -> UsageError:
    where = f"{source}, line {node.start_mark.line + 1}" if node is not None else source
    return UsageError(f"{where}: {problem}.", hint=hint)

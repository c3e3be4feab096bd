"""What a ``RUN`` script does, as far as the rules care (pure).

Not a shell: scripts are split into simple commands at ``&&``, ``||``, ``;``,
``|``, ``&``, parentheses and new lines; leading ``VAR=value`` assignments,
``sudo``/``env``/``exec`` and ``if``/``then``/``do`` are stepped over; then the
commands the rules judge are recognised: ``pip install`` (``pip``, ``pip3.11``,
``python -m pip``, any path to them), ``uv pip install|sync``, ``uv sync``,
and package-manager installs (``apt-get``/``apt``, ``apk``, ``yum``/``dnf``).
Generic shell checks are hadolint's job, not this module's.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

_SEPARATORS = frozenset({"&&", "||", ";", "|", "&", "(", ")", ";;", "|&"})
_REDIRECTS = frozenset({">", ">>", "<", ">&", "<&", "&>", "&>>", "<<<", ">|"})
_PREFIX_WORDS = frozenset(
    {"if", "then", "else", "elif", "do", "while", "until", "!", "{", "}", "time", "exec"}
)
_PREFIX_COMMANDS = frozenset({"sudo", "env", "command", "nohup", "nice"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.DOTALL)
_PIP = re.compile(r"pip(3(\.\d+)?)?")
_PYTHON = re.compile(r"python(3(\.\d+)?)?")

# pip and uv options that take a value (the next word unless written --opt=value).
_VALUED = frozenset(
    {
        "-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url",
        "-f", "--find-links", "-t", "--target", "--prefix", "--root", "-p", "--python",
        "--index", "--default-index", "--torch-backend", "-e", "--editable", "--platform",
        "--python-version", "--implementation", "--abi", "--only-binary", "--no-binary",
        "--progress-bar", "--cache-dir", "--src", "--upgrade-strategy", "--trusted-host",
        "--global-option", "-C", "--config-settings", "--python-platform", "--index-strategy",
        "--extra", "--group", "--exclude-newer", "--prerelease", "--resolution", "--link-mode",
        "--keyring-provider", "--log", "--timeout", "--retries", "--proxy", "--cert",
        "--client-cert", "--report", "--root-user-action", "--overrides", "--build-constraints",
        "--package", "--only-group", "--no-group", "--extra-index", "--directory", "--project",
    }
)  # fmt: skip
_APT_VALUED = frozenset({"-o", "--option", "-t", "--target-release", "-c", "--config-file"})


@dataclass(frozen=True, slots=True)
class Command:
    """One simple command: its words, and the variables assigned in front of it."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def program(self) -> str:
        """The command's base name: ``/opt/venv/bin/pip3`` -> ``pip3``."""
        return self.argv[0].rsplit("/", 1)[-1] if self.argv else ""


@dataclass(frozen=True, slots=True)
class PythonInstall:
    """A ``pip install``, ``uv pip install|sync`` or ``uv sync``."""

    tool: str  # "pip" | "uv"
    verb: str  # "install" | "sync" | "uv-sync" (the project sync of uv.lock)
    requirements: tuple[str, ...]  # -r files, and uv pip sync's positional files
    packages: tuple[str, ...]  # requirement specifiers and local paths
    options: frozenset[str]  # flags given, e.g. "--require-hashes", "--no-cache-dir"
    indexes: tuple[str, ...]  # --index-url, --extra-index-url, --index, -f values
    torch_backend: str | None  # uv --torch-backend
    env: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SystemInstall:
    """A package-manager install: ``apt-get install``, ``apk add``, ``dnf install``."""

    manager: str  # "apt" | "apk" | "yum"
    packages: tuple[str, ...]
    options: frozenset[str]
    words: tuple[str, ...]  # every word after the command, for option spellings


def commands(script: str) -> list[Command]:
    """The simple commands of a shell script."""
    out: list[Command] = []
    text = re.sub(r"\\\r?\n", " ", script)
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        out += _line_commands(line)
    return out


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = ""  # "#" inside ${VAR#x} or URLs is not a comment
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: words are still better than nothing
        return line.split()


def _line_commands(line: str) -> Iterator[Command]:
    current: list[str] = []
    skip_next = False
    for token in _tokens(line):
        if skip_next:
            skip_next = False
            continue
        if token in _SEPARATORS:
            if current:
                yield _command(current)
            current = []
        elif token in _REDIRECTS:
            skip_next = True
        elif token.startswith("#") and not current:
            break
        else:
            current.append(token)
    if current:
        yield _command(current)


def _command(words: list[str]) -> Command:
    env: dict[str, str] = {}
    index = 0
    while index < len(words):
        word = words[index]
        if word in _PREFIX_WORDS:
            index += 1
        elif _ASSIGNMENT.fullmatch(word):
            name, _, value = word.partition("=")
            env[name] = value
            index += 1
        elif word.rsplit("/", 1)[-1] in _PREFIX_COMMANDS:
            index += 1
            while index < len(words) and words[index].startswith("-"):
                index += 1  # sudo -E, env -i, …
        else:
            break
    return Command(tuple(words[index:]), env)


def python_install(command: Command) -> PythonInstall | None:
    """The pip/uv install ``command`` is, if it is one."""
    argv = list(command.argv)
    program = command.program
    if _PYTHON.fullmatch(program):
        rest = [w for w in argv[1:] if w not in ("-u", "-I", "-E", "-s", "-B")]
        if len(rest) >= 2 and rest[0] == "-m" and rest[1] in ("pip", "uv"):
            argv = [rest[1], *rest[2:]]
            program = rest[1]
        else:
            return None
    if _PIP.fullmatch(program) and len(argv) > 1 and argv[1] == "install":
        return _parse("pip", "install", argv[2:], command.env)
    if program == "uv" and len(argv) > 2 and argv[1] == "pip" and argv[2] in ("install", "sync"):
        return _parse("uv", argv[2], argv[3:], command.env)
    if program == "uv" and len(argv) > 1 and argv[1] == "sync":
        return _parse("uv", "uv-sync", argv[2:], command.env)
    return None


def _parse(tool: str, verb: str, words: list[str], env: Mapping[str, str]) -> PythonInstall:
    requirements: list[str] = []
    packages: list[str] = []
    options: set[str] = set()
    indexes: list[str] = []
    backend: str | None = None
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word.startswith("-r") and len(word) > 2 and not word.startswith("--"):
            requirements.append(word[2:])  # -rrequirements.txt
            continue
        if not word.startswith("-") or word == "-":
            if verb == "sync":
                requirements.append(word)  # uv pip sync FILE
            else:
                packages.append(word)
            continue
        name, eq, value = word.partition("=")
        if name in _VALUED:
            if not eq:
                value = words[index] if index < len(words) else ""
                index += 1
            if name in ("-r", "--requirement"):
                requirements.append(value)
            elif name in ("-e", "--editable"):
                packages.append(value)
            elif name in ("-i", "--index-url", "--extra-index-url", "--index", "--default-index"):
                indexes.append(
                    value.partition("=")[2] if name == "--index" and "=" in value else value
                )
            elif name in ("-f", "--find-links"):
                indexes.append(value)
            elif name == "--torch-backend":
                backend = value
        options.add(name)
    return PythonInstall(
        tool, verb, tuple(requirements), tuple(packages), frozenset(options), tuple(indexes),
        backend, env,
    )  # fmt: skip


def system_install(command: Command) -> SystemInstall | None:
    """The OS package install ``command`` is, if it is one."""
    program, words = command.program, command.argv[1:]
    managers = {"apt-get": "apt", "apt": "apt", "apk": "apk", "yum": "yum", "dnf": "yum"}
    managers["microdnf"] = "yum"
    manager = managers.get(program)
    if manager is None:
        return None
    verb = "add" if manager == "apk" else "install"
    packages: list[str] = []
    options: set[str] = set()
    seen_verb = False
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word.startswith("-"):
            name = word.partition("=")[0]
            options.add(name)
            if manager == "apt" and name in _APT_VALUED and "=" not in word:
                options.add(f"{name} {words[index] if index < len(words) else ''}")
                index += 1
        elif not seen_verb:
            if word != verb:
                return None
            seen_verb = True
        else:
            packages.append(word)
    if not seen_verb:
        return None
    return SystemInstall(manager, tuple(packages), frozenset(options), tuple(words))

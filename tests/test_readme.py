"""The README names only commands, flags, files and modules that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from lockd.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _code() -> list[str]:
    """Code blocks and inline code spans: where the README names real things."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, re.S)
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    return blocks + re.findall(r"`([^`\n]+)`", prose)


ROOT_COMMAND = typer.main.get_command(app)


def _resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The deepest command named by the leading words, and the words after it."""
    command: Any = ROOT_COMMAND  # typer's own copy of click: groups have ``commands``
    while words and words[0] in getattr(command, "commands", {}):
        command = command.commands[words.pop(0)]
    return command, words


def test_every_command_and_flag_the_readme_names_exists() -> None:
    missing = []
    for code in _code():
        for line in code.splitlines():
            command_line = line.split(" #", 1)[0]
            match = re.search(r"(?:^|&&|\()\s*(?:\S*/)?lockd ([a-z].*)", command_line)
            if not match:
                continue
            words = match.group(1).rstrip(")").split()
            command, rest = _resolve(list(words))
            if command is ROOT_COMMAND:
                missing.append(f"command: lockd {words[0]}")
                continue
            options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            for word in rest:
                flag = re.match(r"\[?(-[-a-z]+|-o)\b", word)
                if flag and flag.group(1) not in options:
                    missing.append(f"lockd {command.name} {flag.group(1)}")
    assert missing == []


def test_every_compile_flag_in_the_table_exists() -> None:
    compile_ = _resolve(["compile"])[0]
    options = {o for p in compile_.params for o in p.opts}
    rows = README.split("| flag | meaning |", 1)[1].split("\n\n", 1)[0]
    table = re.findall(r"`(--[a-z-]+)", rows)
    assert table
    assert [flag for flag in table if flag not in options] == []


def test_every_path_the_readme_names_exists() -> None:
    paths = set()
    for code in _code():
        paths |= set(re.findall(r"(?:\./)?\b((?:scripts|benchmarks|examples|\.ci)/[\w./-]+)", code))
    architecture = README.split("## Architecture", 1)[1].split("Data flows", 1)[0]
    names = re.findall(r"^  ([a-z_]+(?:\.py|/))", architecture, re.M)
    assert paths and names
    generated = "examples/ml-model/locks/"  # what the README's first command writes
    missing = [p for p in paths - {generated} if not (ROOT / p.rstrip("/")).exists()]
    missing += [n for n in names if not (ROOT / "lockd" / n).exists()]
    missing += [n for n in names if README.count(f"  {n} ") > 1]  # listed twice
    assert missing == []

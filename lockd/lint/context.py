"""What every check needs to know about one Dockerfile (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

from lockd.images import Dockerfile, FromKind, Instruction, Stage, words

from .baseimage import ImageFacts, env_facts, reference_facts
from .model import Finding, LockFacts, Rule, Severity
from .shell import Command, commands

# <platform>-py<XY>-<accelerator>, as lockd names targets and their lock files.
TARGET_ID = re.compile(r"(?:linux|macos|windows)-(?:x86_64|aarch64|arm64)-py\d{2,3}-[a-z0-9]+")
_LOCK_FILE = re.compile(
    rf"(?:pylock\.{TARGET_ID.pattern}\.toml|{TARGET_ID.pattern}\.requirements\.txt)"
)


@dataclass(frozen=True)
class Context:
    """A parsed Dockerfile, the lock it should install (if known), and derived facts."""

    dockerfile: Dockerfile
    lock: LockFacts | None
    findings: list[Finding] = field(default_factory=list)

    def report(self, rule: Rule, line: int, message: str, severity: Severity | None = None) -> None:
        """Record a finding."""
        self.findings.append(Finding(rule, line, message, severity))

    @cached_property
    def final_chain(self) -> tuple[Stage, ...]:
        """The final stage and the stages it builds on: what ships, root last."""
        final = self.dockerfile.final
        return self.dockerfile.chain(final) if final is not None else ()

    def in_final_image(self, stage: Stage) -> bool:
        """Whether ``stage``'s layers end up in the final image."""
        return any(s.index == stage.index for s in self.final_chain)

    def facts(self, stage: Stage) -> ImageFacts:
        """CUDA, devel and Python of ``stage``: its root image's name, then every ENV."""
        chain = self.dockerfile.chain(stage)
        root = chain[-1].source
        facts = reference_facts(root.reference) if root.kind is FromKind.IMAGE else ImageFacts()
        for link in reversed(chain):
            facts = env_facts(link.instructions, facts)
        return facts

    def chain_instructions(self, stage: Stage) -> Iterator[Instruction]:
        """The instructions of ``stage`` and of the stages it builds on, in build order."""
        for link in reversed(self.dockerfile.chain(stage)):
            yield from link.instructions

    @cached_property
    def lock_paths(self) -> frozenset[str]:
        """Paths in the image (or the context) that hold a lockd lock file."""
        names = set(self.lock.lock_files) if self.lock else set()
        found: set[str] = set()
        for stage in self.dockerfile.stages:
            for instruction in stage.instructions:
                if instruction.keyword not in ("COPY", "ADD"):
                    continue
                parts = copy_paths(instruction)
                if len(parts) < 2:
                    continue
                *sources, destination = parts
                for source in sources:
                    base = source.rstrip("/").rsplit("/", 1)[-1]
                    if base in names or _LOCK_FILE.fullmatch(base):
                        found.add(source)
                        found.add(destination + base if destination.endswith("/") else destination)
        return frozenset(found)

    def is_lock_file(self, path: str) -> bool:
        """``path`` is a lockd lock (by name, or as the place a COPY put one)."""
        base = path.rsplit("/", 1)[-1]
        names = self.lock.lock_files if self.lock else frozenset()
        return bool(_LOCK_FILE.fullmatch(base)) or base in names or path in self.lock_paths

    def run_commands(self, instruction: Instruction) -> list[Command]:
        """The simple commands of a ``RUN`` (shell form and heredocs; exec form as one)."""
        exec_form = instruction.exec_form
        if exec_form is not None:
            if len(exec_form) >= 3 and exec_form[1] == "-c":  # ["sh", "-c", "script"]
                return commands(exec_form[2])
            return [Command(exec_form)]
        return commands(instruction.script)


def copy_paths(instruction: Instruction) -> list[str]:
    """The source and destination words of ``COPY``/``ADD`` (JSON form too)."""
    exec_form = instruction.exec_form
    if exec_form is not None:
        return list(exec_form)
    text = instruction.arguments
    return [text[a:b].strip("\"'") for a, b in words(text) if not text[a:b].startswith("<<")]


def cache_mounts(instruction: Instruction) -> list[str]:
    """Targets of ``RUN --mount=type=cache,target=…``."""
    targets: list[str] = []
    for mount in instruction.flag_values("mount"):
        fields = dict(part.partition("=")[::2] for part in mount.split(","))
        if fields.get("type") == "cache":
            targets.append(
                fields.get("target") or fields.get("dst") or fields.get("destination", "")
            )
    return targets

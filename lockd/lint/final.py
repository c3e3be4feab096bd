"""LD3xx: the final image: compilers, root, health check, apt hygiene."""

from __future__ import annotations

import re

from lockd.images import Instruction

from . import rules
from .context import Context, cache_mounts
from .shell import Command, system_install

_COMPILERS = re.compile(
    r"(gcc|g\+\+|clang|gfortran)(-\d+(\.\d+)?)?|build-essential|build-base|gcc-c\+\+"
    r"|cuda-(nvcc|toolkit|compiler)(-[\d.-]+)?|nvidia-cuda-toolkit"
)
_SERVERS = re.compile(
    r"\b(uvicorn|gunicorn|hypercorn|tritonserver|torchserve|text-generation-launcher"
    r"|llama-server|vllm|sglang\.launch_server|flask|streamlit|gradio|fastapi|serve)\b"
    r"|--port\b"
)
_ROOT = frozenset({"root", "0"})


def check_final_image(ctx: Context) -> None:
    """LD301–LD305 over the final stage and the stages it builds on."""
    final = ctx.dockerfile.final
    if final is None:
        return
    shipped = list(ctx.chain_instructions(final))
    recommends_off = any("Install-Recommends" in i.raw for i in shipped)
    for instruction in shipped:
        if instruction.keyword == "RUN":
            _check_packages(ctx, instruction, ctx.run_commands(instruction), recommends_off)
    _check_user(ctx, shipped, final.source.line)
    _check_healthcheck(ctx, shipped)


def _check_packages(
    ctx: Context, instruction: Instruction, commands: list[Command], recommends_off: bool
) -> None:
    removed = {
        word
        for command in commands
        if command.program in ("apt-get", "apt", "yum", "dnf", "apk")
        and any(v in command.argv for v in ("remove", "purge", "autoremove", "del"))
        for word in command.argv
    }
    lists_cleaned = any(
        command.program == "rm" and any("/var/lib/apt/lists" in w for w in command.argv)
        for command in commands
    ) or any(t.startswith("/var/lib/apt") for t in cache_mounts(instruction))
    apt_seen = False
    for command in commands:
        install = system_install(command)
        if install is None:
            continue
        compilers = [
            p
            for p in install.packages
            if _COMPILERS.fullmatch(p.split("=")[0]) and p not in removed
        ]
        if compilers:
            ctx.report(
                rules.COMPILERS_FINAL,
                instruction.line,
                f"{command.program} installs {', '.join(compilers)} in the final image.",
            )
        if install.manager != "apt":
            continue
        apt_seen = True
        flags = " ".join(install.words)
        if not recommends_off and "--no-install-recommends" not in flags:
            ctx.report(
                rules.APT_RECOMMENDS,
                instruction.line,
                f"{command.program} install without --no-install-recommends pulls in "
                "recommended packages.",
            )
    if apt_seen and not lists_cleaned:
        ctx.report(
            rules.APT_LISTS,
            instruction.line,
            "apt-get install leaves /var/lib/apt/lists in this layer (tens of MB).",
        )


def _check_user(ctx: Context, shipped: list[Instruction], line: int) -> None:
    users = [i for i in shipped if i.keyword == "USER"]
    if not users:
        ctx.report(
            rules.ROOT_USER,
            line,
            "The final stage sets no USER: it runs as root unless its base image sets one.",
        )
        return
    last = users[-1]
    name = last.arguments.split(":", 1)[0].strip()
    if name in _ROOT:
        ctx.report(rules.ROOT_USER, last.line, f"USER {last.arguments} runs the container as root.")


def _check_healthcheck(ctx: Context, shipped: list[Instruction]) -> None:
    if any(i.keyword == "HEALTHCHECK" for i in shipped):
        return
    exposes = [i for i in shipped if i.keyword == "EXPOSE"]
    starts = [
        i
        for i in shipped
        if i.keyword in ("CMD", "ENTRYPOINT")
        and _SERVERS.search(" ".join(i.exec_form or (i.arguments,)))
    ]
    evidence = exposes or starts
    if evidence:
        what = "exposes a port" if exposes else "starts a server"
        ctx.report(
            rules.NO_HEALTHCHECK,
            evidence[-1].line,
            f"The final image {what} but has no HEALTHCHECK: a hung server looks healthy.",
        )

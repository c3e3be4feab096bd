"""LD2xx: Python installs: the PyTorch family's index, the lock and hashes, pip's cache."""

from __future__ import annotations

import re

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from lockd.images import Instruction, Stage, key_values
from lockd.settings import DEFAULT_FAMILY

from . import rules
from .context import Context, cache_mounts
from .shell import PythonInstall, python_install

_INDEX_VARIABLES = frozenset(
    {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX",
     "UV_DEFAULT_INDEX", "UV_TORCH_BACKEND", "PIP_FIND_LINKS"}
)  # fmt: skip
_VARIANT = re.compile(r"/whl/(?:nightly/|test/)?(cpu|cu\d{3,4}|rocm[\d.]+|xpu)(?:/|$)")


def check_installs(ctx: Context) -> None:
    """LD201–LD203 for every ``RUN`` of every stage."""
    family = (
        ctx.lock.family if ctx.lock else frozenset(canonicalize_name(n) for n in DEFAULT_FAMILY)
    )
    for stage in ctx.dockerfile.stages:
        for instruction in stage.instructions:
            if instruction.keyword != "RUN":
                continue
            commands = ctx.run_commands(instruction)
            for command in commands:
                install = python_install(command)
                if install is None:
                    continue
                indexes = _indexes(ctx, stage, install)
                _check_family(ctx, instruction, install, family, indexes)
                _check_lock(ctx, instruction, install)
                if ctx.in_final_image(stage):
                    _check_cache(
                        ctx,
                        stage,
                        instruction,
                        install,
                        " ".join(" ".join(c.argv) for c in commands),
                    )


def _names(install: PythonInstall) -> list[tuple[str, str]]:
    """(canonical name, specifier as written) of the packages named on the command line."""
    out: list[tuple[str, str]] = []
    for spec in install.packages:
        if _is_local(spec) or "$" in spec.split("=", 1)[0]:
            continue
        try:
            out.append((canonicalize_name(Requirement(spec).name), spec))
        except InvalidRequirement:
            continue
    return out


def _is_local(spec: str) -> bool:
    return spec.startswith((".", "/", "~", "file:")) or spec.endswith((".whl", ".tar.gz", ".zip"))


def _indexes(ctx: Context, stage: Stage, install: PythonInstall) -> list[str]:
    """Index URLs the install uses: its options, inline variables, and the stage's ENV."""
    found = list(install.indexes)
    found += [value for name, value in install.env.items() if name in _INDEX_VARIABLES]
    for earlier in ctx.chain_instructions(stage):
        if earlier.keyword == "ENV":
            pairs = key_values(earlier.arguments, legacy=True)
            found += [v or "" for n, v in pairs if n in _INDEX_VARIABLES]
    return [url for url in found if url]


def _check_family(
    ctx: Context,
    instruction: Instruction,
    install: PythonInstall,
    family: frozenset[str],
    indexes: list[str],
) -> None:
    named = [spec for name, spec in _names(install) if name in family]
    if not named:
        return
    variants = [m[1] for url in indexes if (m := _VARIANT.search(url))]
    templated = any("$" in url for url in indexes)
    direct = [spec for spec in named if "@" in spec and "download.pytorch.org" in spec]
    what = ", ".join(named)
    if not variants and not templated and not install.torch_backend and len(direct) < len(named):
        ctx.report(
            rules.TORCH_FALLBACK,
            instruction.line,
            f"{install.tool} installs {what} without the PyTorch variant index: it gets "
            "whichever build the default index has (PyPI: CUDA on Linux x86_64, CPU elsewhere).",
        )
        return
    lock = ctx.lock
    if lock and lock.accelerator and lock.target and variants and lock.accelerator not in variants:
        ctx.report(
            rules.TORCH_FALLBACK,
            instruction.line,
            f"{install.tool} installs {what} from the {'/'.join(variants)} index, but the lock's "
            f"target {lock.target} is {lock.accelerator}.",
        )


def _check_lock(ctx: Context, instruction: Instruction, install: PythonInstall) -> None:
    tool = "uv" if install.tool == "uv" else "pip"
    if install.verb == "uv-sync":
        if not install.options & {"--locked", "--frozen"}:
            ctx.report(
                rules.UNLOCKED_INSTALL,
                instruction.line,
                "uv sync without --locked or --frozen may resolve again instead of installing "
                "uv.lock as it is.",
            )
        return
    hashed = "--require-hashes" in install.options
    for path in install.requirements:
        if not ctx.is_lock_file(path) and not hashed and "$" not in path:
            ctx.report(
                rules.UNLOCKED_INSTALL,
                instruction.line,
                f"{tool} installs {path} without --require-hashes, and it is not a lockd lock: "
                "nothing proves the files are the ones that were tested.",
            )
    named = [spec for _, spec in _names(install)]
    if named and not hashed:
        ctx.report(
            rules.UNLOCKED_INSTALL,
            instruction.line,
            f"{tool} installs {', '.join(named)} by name: versions and files are decided at "
            "build time, not by the lock.",
        )
    local = [spec for spec in install.packages if _is_local(spec)]
    if local and "--no-deps" not in install.options and not hashed:
        ctx.report(
            rules.UNLOCKED_INSTALL,
            instruction.line,
            f"{tool} installs {', '.join(local)} with its dependencies resolved at build time; "
            "add --no-deps after installing the lock.",
        )


def _check_cache(
    ctx: Context, stage: Stage, instruction: Instruction, install: PythonInstall, script: str
) -> None:
    if install.tool == "pip":
        disabled = "--no-cache-dir" in install.options or "PIP_NO_CACHE_DIR" in install.env
        variable, cache, cleanup = "PIP_NO_CACHE_DIR", ".cache/pip", "pip cache purge"
    else:
        disabled = "--no-cache" in install.options or "UV_NO_CACHE" in install.env
        variable, cache, cleanup = "UV_NO_CACHE", ".cache/uv", "uv cache clean"
    mounted = any(
        t.startswith(("/root/.cache", "/root")) or "cache" in t for t in cache_mounts(instruction)
    )
    env = any(
        name == variable
        for earlier in ctx.chain_instructions(stage)
        if earlier.keyword in ("ENV", "ARG")
        for name, _ in key_values(earlier.arguments, legacy=earlier.keyword == "ENV")
    )
    if disabled or mounted or env or cleanup in script or cache in script:
        return
    ctx.report(
        rules.PIP_CACHE,
        instruction.line,
        f"{install.tool} keeps its download cache in this layer of the final image "
        f"(no {'--no-cache-dir' if install.tool == 'pip' else '--no-cache'}, no {variable}, "
        "no cache mount).",
    )

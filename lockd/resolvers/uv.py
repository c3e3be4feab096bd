"""The default backend: ``uv pip compile``, one subprocess per target.

Routing relies on uv's explicit indexes: a throw-away ``pyproject.toml`` per
target lists the requirements as dependencies, declares every routed index
(the PyTorch variant index and each ``[[index]]``) as an explicit index and
maps each routed name to its index through ``[tool.uv.sources]``. uv honours
sources for direct dependencies only, so a routed package that shows up
transitively (``triton`` under ``torch``) is promoted to a direct dependency
and the target is resolved again. That file never holds a credential: uv
reads them from ``UV_INDEX_<NAME>_USERNAME``/``_PASSWORD`` in its environment.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from ..builds import BuildPolicy, python_conflict, refusal
from ..errors import PackageIndexError, ResolutionError
from ..processes import Deadline, run_child, stream_child
from ..routing import IndexPlan, credential_variables, index_of, userinfo
from ..settings import deadline, uv_cache_dir
from ..urls import redact
from .interface import Pin, Resolution, Resolver, ResolveRequest

if TYPE_CHECKING:
    from ..indexes import IndexClient

PROJECT_NAME = "lockd-target"  # the throw-away project uv resolves; never shown to users
MAX_ROUNDS = 4

# uv variables that change what gets resolved: lockd decides those itself.
_PASS_THROUGH_UV = {
    "UV_CACHE_DIR",
    "UV_HTTP_TIMEOUT",
    "UV_HTTP_RETRIES",
    "UV_NATIVE_TLS",
    "UV_CONCURRENT_DOWNLOADS",
    "UV_OFFLINE",
    "UV_INDEX_PYTORCH_USERNAME",
    "UV_INDEX_PYTORCH_PASSWORD",
}


@cache
def uv_binary() -> str:
    """The uv executable shipped with the pinned ``uv`` wheel (looked up once).

    ``find_uv_bin`` reads ``sysconfig``, whose first use is not thread-safe:
    targets resolve in threads, so the answer is computed once, under the lock
    that ``functools.cache`` does not provide.
    """
    with _UV_LOOKUP:
        from uv import find_uv_bin

        return find_uv_bin()


_UV_LOOKUP = threading.Lock()


def hermetic_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for uv: no pip or resolution-changing uv settings leak in."""
    source = os.environ if environ is None else environ
    env = {
        key: value
        for key, value in source.items()
        if not key.startswith("PIP_") and (not key.startswith("UV_") or key in _PASS_THROUGH_UV)
    }
    cache = uv_cache_dir(source)
    if cache is not None:  # uv runs in scratch directories: never a relative cache
        env["UV_CACHE_DIR"] = str(cache)
    env["UV_NO_PROGRESS"] = "1"
    # No uv.toml of the user or the machine (resolution = "lowest", extra indexes…)
    # may change what a lock contains.
    env["UV_NO_CONFIG"] = "1"
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return env


class UvResolver(Resolver):
    name = "uv"

    def version(self) -> str:
        return _uv_version()

    def resolve(self, request: ResolveRequest) -> Resolution:
        """Resolve, promoting stray family packages and allowed builds as uv reveals them."""
        from ..lockfiles.pylock import parse_pylock

        direct = {canonicalize_name(Requirement(r).name) for r in request.requirements}
        request.workdir.mkdir(parents=True, exist_ok=True)
        output = request.workdir / f"pylock.{request.target.id}.toml"
        # uv reads an existing output file as preferences: the previous lock's pins.
        if request.preferences and not request.upgrade:
            output.write_text(render_preferences(request.preferences))
        promoted: set[str] = set(request.promote)
        plan = request.plan
        builds: set[str] = set()  # allowed packages uv said it must build
        rounds = 0
        while True:
            proc = self._compile(request, sorted(promoted), sorted(builds))
            if proc.returncode != 0:
                needed = wheels_required(proc.stderr) - builds
                if not needed:
                    raise condense_uv_error(proc.stderr, request)
                refused = {name for name in needed if not request.builds.allows(name)}
                if refused:
                    raise build_refusal(request, refused)
                builds |= needed
                continue
            packages = parse_pylock(output.read_text(), str(output))
            stray = {
                p.name
                for p in packages
                if plan.is_routed(p.name)
                and p.name not in direct | promoted
                and any(index_of(f.url, plan) != plan.expected_index(p.name) for f in p.files)
            }
            rounds += 1
            if not stray or rounds == MAX_ROUNDS:
                return Resolution(request.target, packages, frozenset(promoted))
            promoted |= stray

    def _compile(
        self, request: ResolveRequest, promoted: list[str], builds: list[str]
    ) -> subprocess.CompletedProcess[str]:
        workdir = request.workdir
        (workdir / "pyproject.toml").write_text(project_toml(request, promoted))
        if request.constraints:
            (workdir / "constraints.txt").write_text("\n".join(request.constraints) + "\n")
        env = hermetic_env()
        # Index URLs may carry credentials: the environment, unlike the command
        # line or a file, is not visible to other users of the machine.
        env.update(index_environment(request.plan))
        if request.cache_dir is not None:
            env["UV_CACHE_DIR"] = str(request.cache_dir)
        limit = Deadline(deadline("LOCKD_UV_DEADLINE"), "uv", request.target.id)
        command = compile_command(request, builds)
        if request.watch is None:
            return run_child(command, cwd=workdir, env=env, deadline=limit)
        from .uv_log import RUST_LOG, PickWatcher, without_log

        # uv names each wheel it picks as it resolves: the caller starts on them early.
        env["RUST_LOG"] = RUST_LOG
        watcher = PickWatcher(request.watch)
        proc = stream_child(command, cwd=workdir, env=env, deadline=limit, on_line=watcher)
        return subprocess.CompletedProcess(command, proc.returncode, "", without_log(proc.stderr))


def compile_command(request: ResolveRequest, builds: list[str]) -> list[str]:
    """The ``uv pip compile`` command line of one target (run in its work directory).

    ``builds``: packages allowed to build that uv said it must build. Everything else
    may only come as a wheel, unless the policy allows every build.
    """
    command = [
        uv_binary(),
        "pip",
        "compile",
        "pyproject.toml",
        "--format",
        "pylock.toml",
        "--output-file",
        f"pylock.{request.target.id}.toml",
        "--python-version",
        request.target.python_version,
        "--python-platform",
        request.target.platform.uv_platform(request.glibc),
        # An explicit interpreter skips uv's discovery, which costs seconds per
        # call when the target's Python is not installed here.
        "--python",
        sys.executable,
        "--no-header",
        "--quiet",
    ]
    if request.constraints:
        command += ["--constraint", "constraints.txt"]
    if request.exclude_newer:
        command += ["--exclude-newer", request.exclude_newer]
        # The PyTorch indexes publish no upload times, nor do many private ones:
        # routed packages are exempt (their offer at lock time is recorded instead).
        for route in request.plan.routes():
            for name in sorted(route.packages):
                command += ["--exclude-newer-package", f"{name}=false"]
    if request.upgrade:
        command.append("--upgrade")
    for package in request.upgrade_packages:
        command += ["--upgrade-package", package]
    if not request.builds.everything:
        # pip's semantics, which uv follows: --no-binary NAME lifts --only-binary :all:
        # for NAME alone (and takes its wheels out, which uv only asks for when the
        # version it needs has none).
        command += ["--only-binary", ":all:"]
        for name in builds:
            command += ["--no-binary", name]
    return command


def sync_build_flags(locked: Iterable[str], builds: BuildPolicy) -> list[str]:
    """``uv pip sync`` flags that let only the allowed packages of a lock build."""
    if builds.everything:
        return []
    refused = sorted({name for name in locked if not builds.allows(name)})
    if not builds.allowed:
        return ["--only-binary", ":all:"]
    return [flag for name in refused for flag in ("--only-binary", name)]


def render_preferences(pins: Iterable[Pin]) -> str:
    """A pylock document of name and version only, for uv to read as preferences."""
    import tomli_w

    return tomli_w.dumps(
        {
            "lock-version": "1.0",
            "created-by": "lockd",
            "packages": [{"name": pin.name, "version": pin.version} for pin in pins],
        }
    )


_WHEELS_REQUIRED = re.compile(r"Wheels are required for `([A-Za-z0-9._-]+)` because building")


def build_refusal(
    request: ResolveRequest, refused: Iterable[str], client: IndexClient | None = None
) -> ResolutionError:
    """Why packages that only come as sdists cannot be locked for the target.

    Their index is asked for every file's Requires-Python first: when none that
    the user's specifier admits supports the target's Python, that is the cause
    (``--allow-build`` would not help); otherwise it is the build policy.
    """
    from ..indexes import IndexClient, link_version

    wanted = _direct_specifiers(request.requirements)
    own = client is None
    client = client or IndexClient()
    try:
        for name in sorted(refused):
            try:
                links = client.project_links(request.plan.index_url(name), name, missing_ok=True)
            except PackageIndexError:
                continue  # the build refusal below still says what to do
            releases = [(v, link.requires_python) for link in links if (v := link_version(link))]
            python = request.target.python_version
            conflict = python_conflict(
                request.target.id, python, (name, wanted.get(name, "")), releases
            )
            if conflict is not None:
                return conflict
    finally:
        if own:
            client.close()
    return refusal(request.target.id, refused)


def _direct_specifiers(requirements: Iterable[str]) -> dict[str, str]:
    """Canonical name -> the specifiers the user's requirements give it (``>=2.3,<3``)."""
    out: dict[str, SpecifierSet] = {}
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        key = canonicalize_name(req.name)
        out[key] = out.get(key, SpecifierSet()) & req.specifier
    return {name: str(spec) for name, spec in out.items()}


def wheels_required(stderr: str) -> set[str]:
    """The packages uv refused because they would have to be built from source."""
    return {canonicalize_name(name) for name in _WHEELS_REQUIRED.findall(stderr)}


def project_toml(request: ResolveRequest, promoted: list[str]) -> str:
    """The throw-away project: requirements, routed indexes (no credentials), sources."""
    import tomli_w

    doc: dict[str, object] = {
        "project": {
            "name": PROJECT_NAME,
            "version": "0",
            "dependencies": [*request.requirements, *promoted],
        }
    }
    routes = request.plan.routes()
    if routes:
        doc["tool"] = {
            "uv": {
                "index": [
                    {"name": route.name, "url": route.public_url, "explicit": True}
                    for route in routes
                ],
                "sources": {
                    name: {"index": route.name}
                    for route in routes
                    for name in sorted(route.packages)
                },
            }
        }
    return tomli_w.dumps(doc)


def index_environment(plan: IndexPlan) -> dict[str, str]:
    """The default index and every routed index's credentials, for uv's environment."""
    env = {"UV_DEFAULT_INDEX": plan.default}
    for route in plan.routes():
        found = userinfo(route.url)
        if found is not None:
            user_var, password_var = credential_variables(route.name)
            env[user_var] = found[0]
            if found[1] is not None:
                env[password_var] = found[1]
    return env


@cache
def _uv_version() -> str:
    proc = subprocess.run([uv_binary(), "--version"], capture_output=True, text=True, check=True)
    return proc.stdout.split()[1]


_UNREACHABLE = (
    "Connection refused",
    "dns error",
    "error sending request",
    "timed out",
    "tcp connect",
)
_DECORATION = re.compile(r"[×╰─▶│├]+")


def condense_uv_error(stderr: str, request: ResolveRequest) -> ResolutionError:
    """uv's report as one paragraph; unreachable indexes become ``PackageIndexError``."""
    text = redact(stderr)
    lines = [_DECORATION.sub("", line).strip() for line in text.splitlines()]
    lines = [
        line.removeprefix("error:").strip()
        for line in lines
        if line and not line.startswith("hint:")
    ]
    hints = [
        _in_user_words(line.split("hint:", 1)[1]).strip()
        for line in text.splitlines()
        if "hint:" in line
    ]
    target = request.target.id
    fetch = re.search(r"Failed to fetch: `?([^`\s]+?)`?\s*$", text, re.MULTILINE) or re.search(
        r"url \(([^)\s]+)\)", text
    )
    if fetch and any(marker in text for marker in _UNREACHABLE):
        url = fetch.group(1)
        reason = (lines[-1] if lines else "no answer").removeprefix("cause:").strip()
        return _index_error(target, url, reason)
    if fetch and ("404 Not Found" in text or "status code 404" in text):
        url = fetch.group(1)
        return ResolutionError(
            f"Target {target}: the index answered 404 for {url}.",
            target=target,
            hint="Check the index URL (and, for PyTorch indexes, that the variant exists).",
        )
    message = _in_user_words(" ".join(lines)).replace(" cause: ", ": ")
    if len(message) > 900:
        message = message[:900].rsplit(" ", 1)[0] + " …"
    return ResolutionError(
        f"Target {target} could not be resolved: {message}",
        target=target,
        hint=" ".join(hints) if hints else None,
    )


def _in_user_words(text: str) -> str:
    """uv's text about the throw-away project, as about the user's requirements."""
    text = re.sub(rf"\b{PROJECT_NAME} depends on\b", "you require", text)
    text = re.sub(rf"\b{PROJECT_NAME}(==0)?\b", "your requirements", text)
    return re.sub(r"\s+", " ", text)


def _index_error(target: str, url: str, reason: str) -> ResolutionError:
    err = ResolutionError(
        f"Target {target}: the index at {url} cannot be reached ({reason}).",
        target=target,
        hint="Check the URL, your network or proxy, "
        "or point --index / --pytorch-index at a mirror.",
    )
    err.__cause__ = PackageIndexError(err.message)
    return err

"""Compatibility backend: ``pip-compile`` (pip-tools), for the host target only.

pip cannot resolve for another platform or Python, and it has no explicit
indexes: where the resolution needs a routed package (a PyTorch-family one, or
one of an ``[[index]]``), every routed index is given as an extra index, and
lockd's verification then rejects any package pip took from the wrong one;
inputs that need none are resolved against the default index alone.
pip-compile reports hashes, not files, so each hash is matched to a file on the
indexes.
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from functools import cache
from importlib.metadata import version as dist_version

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag, sys_tags
from packaging.utils import (
    InvalidSdistFilename,
    canonicalize_name,
    parse_sdist_filename,
)
from packaging.version import Version

from ..errors import LockdError, ResolutionError, UsageError
from ..indexes import IndexClient, IndexLink, link_version, wheel_fits
from ..processes import Deadline, run_child
from ..settings import deadline
from ..targets import Target, host_platform, host_python
from ..urls import redact
from .interface import Resolution, ResolvedFile, ResolvedPackage, Resolver, ResolveRequest
from .uv import build_refusal, hermetic_env

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>\S+)")
_HASH = re.compile(r"--hash=sha256:(?P<digest>[0-9a-f]{64})")


class PipToolsResolver(Resolver):
    name = "pip-tools"
    honours_exclude_newer = False

    def version(self) -> str:
        return dist_version("pip-tools")

    def check(self, target: Target) -> None:
        host = host_platform()
        if host is None or target.platform != host or target.python != host_python():
            here = (
                f"{host.name if host else 'this machine'} / Python {'{}.{}'.format(*host_python())}"
            )
            raise UsageError(
                f"The pip-tools resolver can only lock the host target ({here}), not {target.id}.",
                hint="Use --resolver uv (the default) for other platforms and Python versions, "
                "or restrict --platform/--python to the host.",
            )

    def resolve(self, request: ResolveRequest) -> Resolution:
        workdir = request.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "requirements.in").write_text("\n".join(request.requirements) + "\n")
        if request.constraints:
            (workdir / "constraints.txt").write_text("\n".join(request.constraints) + "\n")
        env = hermetic_env()
        env["PIP_CONFIG_FILE"] = "/dev/null"
        # In the environment, not on the command line (ps): they may carry credentials.
        env["PIP_INDEX_URL"] = request.plan.default
        routes = request.plan.routes()
        client = IndexClient()
        limit = Deadline(deadline("LOCKD_UV_DEADLINE"), "pip-compile", request.target.id)
        try:
            # pip has no per-package indexes: a routed index is an extra index for every
            # package, and pip may take any of them from it (which verification refuses).
            # So it is given only where the resolution needs a routed package: at once when
            # one is asked for by name, else after a first resolution that pulled one in.
            extra = bool(routes) and _names_routed(request)
            while True:
                if extra:
                    env["PIP_EXTRA_INDEX_URL"] = " ".join(route.url for route in routes)
                try:
                    pins = _pip_compile(request, env, limit, client)
                except ResolutionError as exc:
                    missing = {canonicalize_name(n) for n in _NOT_FOUND.findall(str(exc))}
                    if extra or not any(request.plan.is_routed(n) for n in missing):
                        raise
                    extra = True  # a routed package only its index has: again, with it
                    continue
                if extra or not any(request.plan.is_routed(name) for name, _, _ in pins):
                    break
                extra = True  # a routed package arrived transitively: resolve with its index
            packages = tuple(
                _locate(name, ver, hashes, request, client) for name, ver, hashes in pins
            )
        finally:
            client.close()
        return Resolution(request.target, packages)


def _names_routed(request: ResolveRequest) -> bool:
    """Whether an input line names a routed package (or cannot be read to tell)."""
    for line in request.requirements:
        try:
            name = Requirement(line).name
        except InvalidRequirement:
            return True  # a URL, an editable, …: give pip every index, as before
        if request.plan.is_routed(name):
            return True
    return False


def _pip_compile(
    request: ResolveRequest, env: dict[str, str], limit: Deadline, client: IndexClient
) -> list[tuple[str, str, set[str]]]:
    """One pip-compile resolution (again with the sdists it needs where they are allowed):
    the pins with their hashes."""
    workdir = request.workdir
    # pip-compile, like uv, keeps the pins of an existing output file that still fit.
    output = workdir / "requirements.txt"
    if request.preferences and not request.upgrade:
        output.write_text("".join(f"{pin.name}=={pin.version}\n" for pin in request.preferences))
    else:
        output.unlink(missing_ok=True)  # a first pass's output is no preference
    builds: set[str] = set()  # allowed packages that pip can only get as sdists
    while True:
        proc = run_child(
            compile_command(request, sorted(builds)), cwd=workdir, env=env, deadline=limit
        )
        if proc.returncode == 0:
            return parse_pinned(output.read_text())
        needed = _sdist_only(proc.stderr, request, client) - builds
        if not needed:
            reason = " ".join(redact(proc.stderr).split())[-900:]
            raise ResolutionError(
                f"Target {request.target.id}: pip-compile failed: {reason}",
                target=request.target.id,
            )
        refused = {name for name in needed if not request.builds.allows(name)}
        if refused:
            raise build_refusal(request, refused, client)
        builds |= needed


def compile_command(request: ResolveRequest, builds: list[str]) -> list[str]:
    """The ``pip-compile`` command line of one target (run in its work directory)."""
    command = [
        sys.executable,
        "-m",
        "piptools",
        "compile",
        "--quiet",
        "--generate-hashes",
        "--no-header",
        "--no-annotate",
        "--no-emit-index-url",
        "--no-emit-options",
        "--output-file",
        "requirements.txt",
    ]
    if request.constraints:
        command += ["--constraint", "constraints.txt"]
    if request.cache_dir is not None:
        command += ["--cache-dir", str(request.cache_dir / "pip-tools")]
    if request.upgrade:
        command.append("--upgrade")
    for package in request.upgrade_packages:
        command += ["--upgrade-package", package]
    if not request.builds.everything:
        # pip's format control: --no-binary NAME lifts --only-binary :all: for NAME.
        command += [
            "--pip-args",
            " ".join(["--only-binary=:all:", *(f"--no-binary={n}" for n in builds)]),
        ]
    command.append("requirements.in")
    return command


_NOT_FOUND = re.compile(
    r"(?:No matching distribution found for|Could not find a version that matches) "
    r"([A-Za-z0-9][A-Za-z0-9._-]*)"
)


def _sdist_only(stderr: str, request: ResolveRequest, client: IndexClient) -> set[str]:
    """Packages pip found nothing for that their index offers as sdists only (for the host)."""
    if request.builds.everything:
        return set()
    tags = _host_tags()
    out: set[str] = set()
    for raw in set(_NOT_FOUND.findall(stderr)):
        name = canonicalize_name(raw)
        try:
            links = client.project_links(request.plan.index_url(name), name)
        except LockdError:
            continue  # not there at all: pip's own message says so
        if any(_is_sdist(link) for link in links) and not any(
            wheel_fits(link.filename, tags) for link in links
        ):
            out.add(name)
    return out


def parse_pinned(text: str) -> list[tuple[str, str, set[str]]]:
    """``name==version`` with its ``--hash`` values, from a pip-compile output."""
    out: list[tuple[str, str, set[str]]] = []
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.split("#", 1)[0].strip()
        match = _PIN.match(line)
        if match:
            out.append(
                (canonicalize_name(match["name"]), match["version"], set(_HASH.findall(line)))
            )
    return out


def _locate(
    name: str, version: str, hashes: set[str], request: ResolveRequest, client: IndexClient
) -> ResolvedPackage:
    """The files behind pip-compile's hashes that the host can install."""
    plan = request.plan
    # The index the package must come from first (with its credentials), then the others.
    first = plan.index_url(name)
    indexes = [first, *(url for url in plan.urls() if url != first)]
    tags = _host_tags()
    wanted = Version(version)
    for index in indexes:
        links = [
            # A file listed without #sha256= is hashed here, as pip-compile did.
            replace(link, sha256=client.sha256(link.url))
            if link.sha256 is None and link_version(link) == wanted
            else link
            for link in client.project_links(index, name)
        ]
        links = [link for link in links if link.sha256 in hashes]
        wheels = [link for link in links if wheel_fits(link.filename, tags)]
        chosen = wheels or [link for link in links if _is_sdist(link)]
        if chosen:
            return ResolvedPackage(
                name,
                version,
                tuple(
                    ResolvedFile(
                        link.url,
                        link.filename,
                        link.sha256,
                        link.upload_time,
                        kind="wheel" if link.filename.endswith(".whl") else "sdist",
                    )
                    for link in chosen
                ),
            )
    raise ResolutionError(
        f"Target {request.target.id}: pip-compile chose {name}=={version}, but no file with "
        "its hashes is listed on the configured indexes.",
        target=request.target.id,
    )


@cache
def _host_tags() -> frozenset[Tag]:
    return frozenset(sys_tags())


def _is_sdist(link: IndexLink) -> bool:
    try:
        parse_sdist_filename(link.filename)
    except InvalidSdistFilename:
        return False
    return True

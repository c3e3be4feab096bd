"""Registry credentials and ``WWW-Authenticate`` challenges.

Credentials come, first match wins, from ``LOCKD_REGISTRY_USERNAME`` and
``LOCKD_REGISTRY_PASSWORD`` (for the registry ``LOCKD_REGISTRY_HOST``), then
Docker's configuration (``$DOCKER_CONFIG/config.json``, default
``~/.docker/config.json``): a ``credHelpers`` entry, an ``auths`` entry, the
``credsStore``. They are looked up only when a registry asks, and no repr,
message or output ever shows the secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lockd.settings import env_default

from ._reference import DOCKER_HUB

# Docker keeps Docker Hub's credentials under its v1 index URL.
_HUB_KEYS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_HUB_HELPER_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user name and secret for one registry, and where they came from."""

    username: str
    password: str = field(repr=False)
    source: str  # "LOCKD_REGISTRY_USERNAME", "/root/.docker/config.json", …

    def basic(self) -> str:
        """The value of an ``Authorization: Basic`` header."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: ``Bearer`` or ``Basic`` and its parameters."""

    scheme: str  # lowercase
    params: Mapping[str, str]


_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?')


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``Bearer realm="…",service="…",scope="…"``; ``None`` when unreadable."""
    match = re.match(r"\s*([A-Za-z]+)\s*", header)
    if not match:
        return None
    params: dict[str, str] = {}
    pos = match.end()
    while pos < len(header):
        param = _PARAM.match(header, pos)
        if not param or param.end() == pos:
            break
        quoted, bare = param[2], param[3]
        params[param[1].lower()] = (
            re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare or ""
        )
        pos = param.end()
    return Challenge(match[1].lower(), params)


class CredentialStore:
    """Finds credentials for a registry host, lazily, once per host."""

    def __init__(
        self, environ: Mapping[str, str] | None = None, *, config_dir: Path | None = None
    ) -> None:
        env = dict(os.environ if environ is None else environ)
        self._env = env
        # DOCKER_CONFIG is Docker's own variable, honoured as docker does.
        default_dir = Path(env.get("DOCKER_CONFIG") or Path.home() / ".docker")
        self._config_path = (config_dir or default_dir).expanduser() / "config.json"
        self._cache: dict[str, Credentials | None] = {}

    def __repr__(self) -> str:
        return f"CredentialStore(config={str(self._config_path)!r})"

    def lookup(self, registry: str) -> Credentials | None:
        """Credentials for ``registry`` (``docker.io`` for Docker Hub), or ``None``."""
        key = _normalise(registry)
        if key not in self._cache:
            self._cache[key] = self._find(key)
        return self._cache[key]

    def _find(self, registry: str) -> Credentials | None:
        username = env_default("LOCKD_REGISTRY_USERNAME", self._env)
        password = env_default("LOCKD_REGISTRY_PASSWORD", self._env)
        host = _normalise(env_default("LOCKD_REGISTRY_HOST", self._env) or DOCKER_HUB)
        if username and password and host == registry:
            return Credentials(username, password, "LOCKD_REGISTRY_USERNAME/PASSWORD")
        config = self._read_config()
        source = str(self._config_path)
        helpers = config.get("credHelpers")
        if isinstance(helpers, dict):
            for name, helper in helpers.items():
                if _normalise(name) == registry and isinstance(helper, str):
                    return _from_helper(helper, registry)
        auths = config.get("auths")
        if isinstance(auths, dict):
            for name, entry in auths.items():
                if _normalise(name) == registry and isinstance(entry, dict):
                    found = _from_auth_entry(entry, source)
                    if found:
                        return found
        store = config.get("credsStore")
        return _from_helper(store, registry) if isinstance(store, str) and store else None

    def _read_config(self) -> dict[str, Any]:
        try:
            data = json.loads(self._config_path.read_bytes())
        except (OSError, ValueError):
            return {}  # an unreadable config is the same as none: anonymous access
        return data if isinstance(data, dict) else {}


def _normalise(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``https://h:5000/x`` -> ``h:5000``."""
    host = re.sub(r"^[a-z]+://", "", key.strip().lower()).split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_KEYS else host


def _from_auth_entry(entry: Mapping[str, Any], source: str) -> Credentials | None:
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            username, sep, password = base64.b64decode(auth).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return Credentials(username, password, source) if sep and username else None
    user, secret = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(secret, str) and user:
        return Credentials(user, secret, source)
    return None  # identitytoken (OAuth refresh) logins are not supported


def _from_helper(helper: str, registry: str) -> Credentials | None:
    """Ask ``docker-credential-<helper> get``, as docker does; ``None`` when it has nothing."""
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        return None
    server = _HUB_HELPER_KEY if registry == DOCKER_HUB else registry
    try:
        done = subprocess.run(
            [program, "get"], input=server, capture_output=True, text=True, timeout=30, check=False
        )
        answer = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    if not isinstance(answer, dict):
        return None
    username, secret = answer.get("Username"), answer.get("Secret")
    # "<token>" marks an identity token, which needs an OAuth exchange lockd does not do.
    if isinstance(username, str) and isinstance(secret, str) and username and username != "<token>":
        return Credentials(username, secret, f"docker-credential-{helper}")
    return None

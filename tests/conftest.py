"""Shared fixtures: the local index world, hermetic environments, the lockd CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.postgres import Postgres
from tests.support.pyindex import IndexServer
from tests.support.registry import Pusher, Registry
from tests.support.world import serve_world

ROOT = Path(__file__).resolve().parent.parent


def hermetic_env(tmp: Path, **extra: str) -> dict[str, str]:
    """No inherited pip/uv configuration; a private lockd home and uv cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "LOCKD_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        UV_NO_CONFIG="1",
        LOCKD_HOME=str(tmp / "lockd-home"),
        NO_COLOR="1",
        COLUMNS="200",
    )
    env.update(extra)
    return env


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_lockd(*args: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> Run:
    """The real ``lockd`` CLI in a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "lockd", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Debian's docker-registry (distribution 2.8) on a free 127.0.0.1 port, for the session."""
    from tests.support.registry import run_registry

    with run_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="session")
def pusher(registry: Registry) -> Iterator[Pusher]:
    """Pushes images built in code through the OCI push API."""
    from tests.support.registry import Pusher

    push = Pusher(registry.url)
    yield push
    push.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """Debian's PostgreSQL on a free 127.0.0.1 port, for the session (initdb in a temp dir)."""
    from tests.support.postgres import run_postgres

    with run_postgres() as running:
        yield running


BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend: an SQLite file, a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lockd.db'}"
        return
    server: Postgres = request.getfixturevalue("postgres")
    with server.database() as url:
        yield url


@pytest.fixture(scope="session")
def world() -> Iterator[IndexServer]:
    with serve_world() as server:
        yield server


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture
def lockd_env(tmp_path: Path, world: IndexServer, uv_cache: Path) -> dict[str, str]:
    """The environment ``lockd`` runs in: hermetic, against the local world."""
    return hermetic_env(
        tmp_path,
        UV_CACHE_DIR=str(uv_cache),
        UV_HTTP_RETRIES="0",
        LOCKD_INDEX_URL=f"{world.url}/simple",
        LOCKD_PYTORCH_INDEX=f"{world.url}/whl",
    )


@pytest.fixture
def lockd(tmp_path: Path, lockd_env: dict[str, str]):  # type: ignore[no-untyped-def]
    """Run the real ``lockd`` CLI in a subprocess against the local world."""

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Run:
        return run_lockd(*args, cwd=cwd or tmp_path, env={**lockd_env, **(env or {})})

    return run


def lockd_against(lockd: Callable[..., Run], server: IndexServer) -> Callable[..., Run]:
    """``lockd`` with ``server``'s ``/simple`` as default index and ``/whl`` as PyTorch base."""
    base = {"LOCKD_INDEX_URL": f"{server.url}/simple", "LOCKD_PYTORCH_INDEX": f"{server.url}/whl"}

    def run(*args: str, env: dict[str, str] | None = None) -> Run:
        return lockd(*args, env={**base, **(env or {})})

    return run

"""A real PostgreSQL server on 127.0.0.1, started from Debian's ``postgresql`` package.

``run_postgres`` runs ``initdb`` into a temporary directory owned by the
``postgres`` user (``initdb`` and ``postgres`` refuse to run as root, so they
run as that user through ``setpriv`` when the tests run as root), starts
``postgres`` on a free loopback port with its socket in the same directory
and trust authentication, waits until it accepts connections (polling, with a
deadline), and stops it afterwards (fast shutdown). ``Postgres.database()``
creates a fresh database per test.

The server runs in a time zone far from UTC on purpose: lockd stores times
without a zone and must not let the session's zone shift them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.registry import free_port

READY_DEADLINE_S = 60.0
SERVER_TIME_ZONE = "Pacific/Kiritimati"  # UTC+14: any shifted timestamp shows


def postgres_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` (Debian's layout)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        # Not a skip: CI installs it (scripts/test), and a silent skip would hide the
        # PostgreSQL half of every backend test.
        raise RuntimeError(
            "PostgreSQL is not installed; run `apt-get install postgresql` (Debian's "
            "package; scripts/test installs it)."
        )
    return found[-1].parent


@dataclass
class Postgres:
    port: int
    socket_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(self.url(driver="postgresql"), autocommit=True) as conn:
            conn.execute(sql.encode())

    @contextmanager
    def database(self) -> Iterator[str]:
        """A fresh, empty database for one test; dropped afterwards."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.admin(f"CREATE DATABASE {name}")
        try:
            yield self.url(name)
        finally:
            self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _as_postgres() -> list[str]:
    """The prefix that runs a command as the ``postgres`` user (nothing when not root)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups"]


# A throw-away server for tests: durability buys nothing there.
TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@contextmanager
def run_postgres(settings: Mapping[str, str] = TEST_SETTINGS) -> Iterator[Postgres]:
    """initdb + postgres in a fresh temporary directory; stopped and removed on exit.

    ``settings`` are passed as ``-c name=value`` (the benchmark keeps durability on).
    """
    bindir = postgres_bindir()
    # Not under pytest's tmp_path: the postgres user cannot traverse root's 0700 base.
    workdir = Path(tempfile.mkdtemp(prefix="lockd-pg-"))
    try:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(workdir, user.pw_uid, user.pw_gid)
        data, log = workdir / "data", workdir / "postgres.log"
        subprocess.run(
            [
                *_as_postgres(),
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        port = free_port()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    *_as_postgres(),
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-k",
                    str(workdir),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "max_connections=400",
                    "-c",
                    f"TimeZone={SERVER_TIME_ZONE}",
                    *(arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Postgres(port, workdir, process, log)
        try:
            _wait_ready(server)
            yield server
        finally:
            process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_ready(server: Postgres) -> None:
    import psycopg

    deadline = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"postgres exited ({server.process.returncode}):\n"
                + server.log.read_text(errors="replace")
            )
        try:
            with psycopg.connect(server.url(driver="postgresql"), connect_timeout=1):
                return
        except psycopg.OperationalError:
            time.sleep(0.05)  # polling interval, not a wait for readiness
    raise RuntimeError(
        f"postgres did not accept connections within {READY_DEADLINE_S} s:\n"
        + server.log.read_text(errors="replace")
    )

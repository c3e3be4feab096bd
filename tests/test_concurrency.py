"""Many writers at once, as real processes, on SQLite and on a real PostgreSQL.

Every success is recorded exactly once, every failure is one clear message,
and ``lockd audit verify`` finds every chain intact (tests/support/writers.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lockd.store.migrate import SCHEMA_HEAD
from tests.conftest import Run, run_lockd
from tests.support.postgres import Postgres
from tests.support.pyindex import IndexServer
from tests.support.serve import create_token, running_server
from tests.support.writers import (
    Launch,
    assert_all_recorded_once,
    claim_lockset,
    compile_writer,
    drift_writer,
    recorded_hashes,
    run_together,
    serve_writer,
)

SHARED_TARGET = "linux-x86_64-py311-cpu"  # what compile_writer locks


@pytest.fixture
def env(lockd_env: dict[str, str]) -> dict[str, str]:
    return lockd_env


@pytest.mark.slow
def test_sixteen_writers_at_once(db_url: str, env: dict[str, str], tmp_path: Path) -> None:
    """6 compiles of distinct projects, 5 drift runs of one project and 5 snapshots of that
    project posted to `lockd serve --workers 2`, all at once: the CLI's and the server's
    processes append to one drift chain."""
    shared = compile_writer(tmp_path / "shared", env, db_url)(0)
    setup = run_lockd(*shared.argv, "--project", "shared", cwd=shared.cwd, env=env)
    assert setup.returncode == 0, setup.output
    token = create_token(db_url, "fleet", "ingest", tmp_path)
    compiles = compile_writer(tmp_path / "compiles", env, db_url)
    drifts = drift_writer(tmp_path, env, db_url, "shared")
    with running_server(db_url, tmp_path, "--workers", "2", env=env) as server:
        posts = serve_writer(
            tmp_path, env, server=server.url, token=token, project="shared", target=SHARED_TARGET
        )
        launches = [
            *(compiles(i) for i in range(6)),
            *(launch for i in range(5) for launch in (drifts(i), posts(i))),
        ]

        outcomes = run_together(launches)

    failures = assert_all_recorded_once(
        outcomes, db_url, env=env, cwd=tmp_path, before=claim_lockset(setup)
    )
    assert failures == [], [f.describe() for f in failures]
    assert len(recorded_hashes(db_url)) == 1 + 16
    assert sorted(o.launch.kind for o in outcomes).count("serve") == 5


@pytest.mark.slow
def test_db_upgrade_from_many_processes_at_once(
    db_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    """8 `lockd db upgrade` on a fresh database: one migrates, the others find it current."""
    launches = [
        Launch("upgrade", ("db", "upgrade", "--db", db_url), tmp_path, env, lambda _run: set())
        for _ in range(8)
    ]
    outcomes = run_together(launches)
    assert [o.run.returncode for o in outcomes] == [0] * 8, [o.describe() for o in outcomes]
    said = sorted(o.run.stdout.strip() for o in outcomes)
    migrated = f"database at revision {SCHEMA_HEAD}"
    assert migrated in said  # someone migrated
    assert set(said) <= {migrated, f"{migrated} (already current)"}
    assert_all_recorded_once(outcomes, db_url, env=env, cwd=tmp_path)


def test_two_checkouts_compiling_one_project(
    postgres: Postgres, env: dict[str, str], tmp_path: Path, world: IndexServer
) -> None:
    """The second of two overlapping compiles of one project is refused, cleanly.

    Checkout B starts first and is held at the index (its `idna` page) once it has
    read the project's chain head; checkout A compiles and records meanwhile; then B
    is let go and must be refused: exit 3, one message, nothing recorded, no lock file.
    """
    with postgres.database() as url:
        a, b = tmp_path / "branch-a", tmp_path / "branch-b"
        for checkout, requirements in ((a, "numpy\n"), (b, "numpy\nidna\n")):
            checkout.mkdir()
            (checkout / "requirements.in").write_text(requirements)
        argv = ["compile", "--project", "vision", "--platform", "linux-x86_64"]
        argv += ["--python", "3.11", "--cuda", "cpu", "--db", url, "--format", "json"]
        held = world.hold("/simple/idna/")
        # B's uv has a cache of its own, so that it asks the index (and waits there).
        b_env = {**env, "UV_CACHE_DIR": str(tmp_path / "b-cache"), "UV_HTTP_TIMEOUT": "180"}
        b_proc = subprocess.Popen(
            [sys.executable, "-m", "lockd", *argv],
            cwd=b,
            env=b_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_until(lambda: "/simple/idna/" in world.requests, "B to reach the index")
            _wait_until(lambda: _head_was_read(url), "B to read the chain head")
            first = run_lockd(*argv, cwd=a, env=env)
            assert first.returncode == 0, first.output
        finally:
            held.set()
            world.holds.pop("/simple/idna/")
            out, err = b_proc.communicate(timeout=300)
        second = Run(b_proc.returncode, out, err)
        winner = json.loads(first.stdout)["lockset"]
        assert second.returncode == 3, second.output
        assert "Traceback" not in second.output
        refused = re.fullmatch(
            rf"error: Another compile recorded lockset {winner[:12]} for project vision "
            r"\(by \S+ on \S+\) after this one started from an empty history; lockset "
            r"([0-9a-f]{12}) was not recorded and no lock file was changed\. Run `lockd "
            r"compile` again to chain a new lockset after it\. Checkouts whose locks should "
            r"keep separate histories \(two branches\) need separate project names "
            r"\(--project, or project = in lockd\.toml\)\.",
            " ".join(second.stderr.split()),
        )
        assert refused, second.stderr
        assert list((b / "locks").iterdir()) == []  # staged files removed, none moved in
        assert recorded_hashes(url) == [winner]
        verify = run_lockd("audit", "verify", "--db", url, cwd=tmp_path, env=env)
        assert verify.returncode == 0, verify.output

        again = run_lockd(*argv, cwd=b, env=env)
        assert again.returncode == 0, again.output
        manifest = json.loads((b / "locks" / "lockd.json").read_text())
        assert manifest["parent"] == winner


def _head_was_read(url: str) -> bool:
    """Someone has read the locksets table (only B's chain-head query does, in a new database).

    PostgreSQL counts the scans of each table; a backend reports them when it goes idle.
    """
    import psycopg

    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        row = conn.execute(
            "SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
            "WHERE relname = 'locksets'"
        ).fetchone()
    return bool(row and row[0])


def _wait_until(condition: object, what: str, deadline_s: float = 120) -> None:
    assert callable(condition)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)  # polling interval
    raise AssertionError(f"timed out waiting for {what}")

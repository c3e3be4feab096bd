"""A database or output directory lockd cannot use: one paragraph, a contract exit code.

Through the real CLI: damaged and foreign database files, drivers that are not
installed or do not exist, ``locks/`` that is a file, ``lockd.json`` that is a
directory, and an output directory lockd cannot write (checked before resolving).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lockd.lockfiles.files import prepare_output_directory
from lockd.lockfiles.names import is_lockd_file
from tests.conftest import Run, hermetic_env
from tests.support.pyindex import IndexServer

MATRIX = ["--platform", "linux-x86_64", "--python", "3.11", "--cuda", "cpu"]


def assert_one_paragraph(run: Run, code: int) -> None:
    assert run.returncode == code, run.output
    assert "Traceback" not in run.output
    assert run.stderr.startswith("error:"), run.stderr
    assert run.stderr.count("\n") == 1, run.stderr


def compiled_database(lockd, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    db = tmp_path / "lockd.db"
    (tmp_path / "requirements.in").write_text("filelock\n")
    assert lockd("compile", *MATRIX, "--db", f"sqlite:///{db}").returncode == 0
    with sqlite3.connect(db) as conn:  # fold the WAL in, so the file alone is the database
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


@pytest.mark.parametrize("damage", ["not-sqlite", "truncated", "garbage-pages"])
def test_a_damaged_database_is_one_paragraph(lockd, tmp_path: Path, damage: str) -> None:
    db = compiled_database(lockd, tmp_path)
    data = db.read_bytes()
    if damage == "not-sqlite":
        db.write_text("this is not a database\n" * 100)
    elif damage == "truncated":
        db.write_bytes(data[:5000])
    else:
        db.write_bytes(data[:4096] + os.urandom(len(data) - 4096))

    for args in (["history"], ["audit", "verify"], ["compile", *MATRIX, "--refresh"]):
        run = lockd(*args, "--db", f"sqlite:///{db}")
        assert_one_paragraph(run, 3)
        assert str(db) in run.stderr
        assert "damaged or not a lockd database" in run.stderr


def test_a_missing_driver_names_the_extra_to_install(tmp_path: Path) -> None:
    """psycopg is a dev dependency: the CLI runs with its import blocked, as without the extra."""
    url = "postgresql://alice:s3cret@127.0.0.1:9/lockd"
    code = (
        "import sys; sys.modules['psycopg'] = None; "
        f"sys.argv = ['lockd', 'history', '--db', {url!r}]; "
        "from lockd.cli import main; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=hermetic_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    run = Run(proc.returncode, proc.stdout, proc.stderr)
    assert_one_paragraph(run, 2)
    assert " ".join(run.stderr.split()) == (
        "error: The database URL postgresql://127.0.0.1:9/lockd needs the Python module "
        "'psycopg' (postgresql's driver), which is not installed where lockd runs. Install "
        "lockd with its postgres extra: pip install 'lockd[postgres]'."
    )
    assert "s3cret" not in run.stderr


def test_a_driver_sqlalchemy_does_not_know_is_a_usage_error(lockd) -> None:
    run = lockd("history", "--db", "postgresql+nosuchdriver://127.0.0.1:9/lockd")
    assert_one_paragraph(run, 2)
    assert "Unknown database driver 'postgresql+nosuchdriver'" in run.stderr


def test_locks_that_is_a_file_is_refused_before_resolving(
    lockd, tmp_path: Path, world: IndexServer
) -> None:
    (tmp_path / "requirements.in").write_text("filelock\n")
    (tmp_path / "locks").write_text("not a directory\n")
    asked = len(world.requests)
    run = lockd("compile", *MATRIX)
    assert_one_paragraph(run, 2)
    assert "locks is a file, not a directory" in run.stderr
    assert len(world.requests) == asked  # nothing was resolved
    assert lockd("history", "--format", "json").stdout.strip() == "[]"


def test_a_manifest_that_is_a_directory_is_refused_before_recording(
    lockd, tmp_path: Path, world: IndexServer
) -> None:
    (tmp_path / "requirements.in").write_text("filelock\n")
    (tmp_path / "locks" / "lockd.json").mkdir(parents=True)
    asked = len(world.requests)
    run = lockd("compile", *MATRIX)
    assert_one_paragraph(run, 2)
    assert "lockd.json is a directory" in run.stderr
    assert len(world.requests) == asked
    assert lockd("history", "--format", "json").stdout.strip() == "[]"


def test_a_lock_file_that_is_a_directory_is_refused_before_recording(lockd, tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("filelock\n")
    (tmp_path / "locks" / "pylock.linux-x86_64-py311-cpu.toml").mkdir(parents=True)
    run = lockd("compile", *MATRIX)
    assert_one_paragraph(run, 2)
    assert "pylock.linux-x86_64-py311-cpu.toml is a directory" in run.stderr
    assert lockd("history", "--format", "json").stdout.strip() == "[]"
    assert not (tmp_path / "locks" / "lockd.json").exists()


def test_an_unwritable_output_directory_is_refused_before_resolving(
    lockd, tmp_path: Path, world: IndexServer
) -> None:
    (tmp_path / "requirements.in").write_text("filelock\n")
    out = _unwritable_directory(tmp_path)
    asked = len(world.requests)
    run = lockd("compile", *MATRIX, "--out", str(out))
    assert_one_paragraph(run, 2)
    assert f"Cannot write into {out}" in run.stderr and "--out" in run.stderr
    assert len(world.requests) == asked
    assert json.loads(lockd("history", "--format", "json").stdout) == []

    # A folder that does not exist yet and cannot be made there (its parent refuses):
    # refused up front too, not with a traceback after resolving.
    missing = out / "locks" / "deeper"
    run = lockd("compile", *MATRIX, "--out", str(missing))
    assert_one_paragraph(run, 2)
    assert f"Cannot write into {missing}" in run.stderr
    assert len(world.requests) == asked
    # a folder that can be made is not left behind by the check
    fresh = tmp_path / "new" / "locks"
    prepare_output_directory(fresh, is_lockd_file)
    assert not (tmp_path / "new").exists()


def _unwritable_directory(tmp_path: Path) -> Path:
    """A directory this process cannot create files in (root ignores mode bits: sysfs)."""
    if os.geteuid() != 0:
        out = tmp_path / "read-only"
        out.mkdir()
        out.chmod(0o555)
        return out
    out = Path("/sys/kernel")
    try:
        (out / "lockd-probe").touch()
    except OSError:
        return out
    pytest.skip("no directory here refuses root")


@pytest.mark.parametrize(
    "command", [("snapshot", "--no-system"), ("audit",), ("drift", "summary", "--format", "junit")]
)
def test_an_output_file_that_names_a_directory_is_a_usage_error(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """``-o out/`` (a trailing slash, or a directory that exists) is refused before any work;
    it used to write a file named ``out``."""
    existing = tmp_path / "reports"
    existing.mkdir()
    for given in (f"{tmp_path / 'new'}/", str(existing)):
        proc = subprocess.run(
            [sys.executable, "-m", "lockd", *command, "-o", given],
            cwd=tmp_path, env=hermetic_env(tmp_path), capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert "names a directory" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "new").exists() and list(existing.iterdir()) == []

"""Killed and interrupted runs: no resolver outlives lockd, no debris that matters.

A compile is stopped while uv waits on an index that trickles its answer: with
``kill -9`` (uv dies with lockd; the next run removes the scratch directory and
the staged temporaries, and nothing else) and with Ctrl-C (the message, exit
130, uv stopped at once). Scratch files never hold the index credentials.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import hermetic_env, run_lockd
from tests.support.pyindex import IndexServer
from tests.support.world import serve_world

MATRIX = ["--platform", "linux-x86_64", "--python", "3.11", "--cuda", "cpu"]
TARGET = "linux-x86_64-py311-cpu"
SECRET = "s3cr3t-token"
SLOW_PAGE = "/simple/idna/"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture(scope="module")
def slow_world() -> Iterator[IndexServer]:
    """A world of its own: its trickled page must not slow other tests down."""
    with serve_world() as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, slow_world: IndexServer, uv_cache: Path) -> dict[str, str]:
    host = slow_world.url.removeprefix("http://")
    return hermetic_env(
        tmp_path,
        UV_CACHE_DIR=str(uv_cache),
        UV_HTTP_RETRIES="0",
        LOCKD_INDEX_URL=f"http://alice:{SECRET}@{host}/simple",
        LOCKD_PYTORCH_INDEX=f"http://bob:{SECRET}@{host}/whl",
    )


def start_slow_compile(
    tmp_path: Path, env: dict[str, str], world: IndexServer
) -> tuple[subprocess.Popen[str], list[int]]:
    """A compile whose uv waits on the trickled page; returns lockd and its uv processes."""
    (tmp_path / "requirements.in").write_text("filelock\n")
    run = run_lockd("compile", *MATRIX, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.output
    (tmp_path / "requirements.in").write_text("filelock\nidna\n")
    world.trickle.add(SLOW_PAGE)
    asked = world.requests.count(SLOW_PAGE)
    lockd = subprocess.Popen(
        [sys.executable, "-m", "lockd", "compile", *MATRIX],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while world.requests.count(SLOW_PAGE) == asked or not _children(lockd.pid):
        assert lockd.poll() is None, lockd.communicate()
        assert time.monotonic() < deadline, "uv never asked for the slow page"
        time.sleep(0.05)
    return lockd, _children(lockd.pid)


def test_kill_9_leaves_no_uv_and_the_next_run_cleans_up(
    tmp_path: Path, env: dict[str, str], slow_world: IndexServer
) -> None:
    locks = tmp_path / "locks"
    try:
        lockd, uv = start_slow_compile(tmp_path, env, slow_world)
        # The credentials reach uv through its environment...
        assert any(SECRET in _environ(pid) for pid in uv)
        # ...and a staged temporary of a run killed while writing (the names lockd gives).
        staged = locks / f".pylock.{TARGET}.toml.0a1b2c3d.tmp"
        staged.write_text("half a lock")
        foreign = [locks / ".notes.0a1b2c3d.tmp", locks / "keep.tmp", tmp_path / ".x.0a1b2c3d.tmp"]
        for path in foreign:
            path.write_text("not lockd's")

        lockd.kill()
        lockd.communicate()
        _wait_until_gone(uv)
    finally:
        slow_world.trickle.discard(SLOW_PAGE)

    scratch = tmp_path / "lockd-home" / "tmp"
    left = [p for p in scratch.iterdir() if p.name.startswith("lockd-compile-")]
    assert left, "the killed run's scratch directory is the debris this test is about"
    files = [p for p in left[0].rglob("*") if p.is_file()]
    assert any(p.name == "pyproject.toml" for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path

    run = run_lockd("compile", *MATRIX, cwd=tmp_path, env=env)

    assert run.returncode == 0, run.output
    assert not [p for p in scratch.iterdir() if p.name.startswith("lockd-")]
    assert not staged.exists()
    assert all(path.read_text() == "not lockd's" for path in foreign)


def test_ctrl_c_prints_its_message_and_stops_uv_at_once(
    tmp_path: Path, env: dict[str, str], slow_world: IndexServer
) -> None:
    try:
        lockd, uv = start_slow_compile(tmp_path, env, slow_world)
        lockd.send_signal(signal.SIGINT)
        try:
            _, stderr = lockd.communicate(timeout=15)  # the trickled page takes a minute
        except subprocess.TimeoutExpired:
            lockd.kill()
            pytest.fail("lockd kept waiting for uv after Ctrl-C")
        _wait_until_gone(uv)
    finally:
        slow_world.trickle.discard(SLOW_PAGE)
    assert lockd.returncode == 130
    assert "Traceback" not in stderr
    assert "Interrupted" in stderr
    assert not [p for p in (tmp_path / "lockd-home" / "tmp").iterdir() if p.is_dir()]


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (uv, started by lockd)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _environ(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "environ").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _wait_until_gone(pids: list[int]) -> None:
    """Every process has exited (a zombie waiting for init to reap it has)."""
    deadline = time.monotonic() + 10
    while True:
        alive = []
        for pid in pids:
            try:
                state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state not in ("Z", "X"):
                alive.append(pid)
        if not alive:
            return
        assert time.monotonic() < deadline, f"still running: {alive}"
        time.sleep(0.05)


def test_a_scratch_directory_in_use_is_never_swept(tmp_path: Path) -> None:
    from lockd.scratch import scratch_dir

    root = tmp_path / "tmp"
    root.mkdir()
    dead = root / "lockd-compile-0a1b2c3d"
    (dead / "nested").mkdir(parents=True)
    (root / "lockd-notes").mkdir()  # not a name lockd gives
    (root / "lockd-creep-0a1b2c3d.txt").write_text("a file, not a scratch directory")
    with scratch_dir("compile", tmp_path) as live:
        assert not dead.exists()  # no run was alive: debris
        dead.mkdir()
        with scratch_dir("rebuild", tmp_path) as other:
            assert live.is_dir() and dead.is_dir()  # a run is alive: nothing is swept
            assert other.parent == root and other.name.startswith("lockd-rebuild-")
        assert not other.exists()
    assert not live.exists()
    assert sorted(p.name for p in root.iterdir()) == [
        ".lock",
        "lockd-compile-0a1b2c3d",
        "lockd-creep-0a1b2c3d.txt",
        "lockd-notes",
    ]

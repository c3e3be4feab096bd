"""What keeps lockd's hot paths short (issue 14), checked for behaviour, never timed:
the no-op's look at the database without SQLAlchemy, the CLI's coercion without pydantic."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import lockd
from lockd.app.promotions import Promotions, scouts_first
from lockd.store import Store
from lockd.store.head import UNKNOWN, latest_hash
from tests.conftest import Run, hermetic_env, lockd_against, run_lockd
from tests.support.pyindex import IndexServer, serve
from tests.support.wheels import WheelSpec as W
from tests.test_store import _lockset


def test_latest_hash_reads_what_the_store_recorded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'with space' / 'lockd.db'}"
    assert latest_hash(url, "p") == UNKNOWN  # no database yet: the store creates it
    store = Store(url)
    try:
        assert latest_hash(url, "p") is None
        first = _lockset("p", "k1")
        store.record_lockset(first)
        second = _lockset("p", "k2", parent=first.hash)
        store.record_lockset(second)
        store.record_lockset(_lockset("other", "k3"))
        assert latest_hash(url, "p") == store.latest("p").hash == second.hash  # type: ignore[union-attr]
        assert latest_hash(url, "nobody") is None
    finally:
        store.close()


def test_latest_hash_leaves_what_it_cannot_read_to_the_store(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()  # a SQLite file without lockd's tables
    for url in (
        f"sqlite:///{garbage}",
        f"sqlite:///{empty}",
        f"sqlite:///{tmp_path / 'x.db'}?mode=ro",
        "sqlite:///:memory:",
        "postgresql+psycopg://localhost/lockd",
    ):
        assert latest_hash(url, "p") == UNKNOWN, url
    assert garbage.read_bytes() == b"not a database at all" * 100  # opened read-only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db", "garbage.db"]


def test_plain_parameters_keep_typer_s_messages(tmp_path: Path) -> None:
    """The plain coercion (lockd/cli/_params.py) says what typer's pydantic adapter says,
    without its "Value error, " prefix."""
    env = hermetic_env(tmp_path)
    choice = run_lockd("compile", "--check", "--format", "yaml", cwd=tmp_path, env=env)
    assert choice.returncode == 2
    assert "Invalid value for '--format': 'yaml' is not one of 'table', 'json'." in choice.stderr
    resolver = run_lockd("compile", "--check", "--resolver", "pip", cwd=tmp_path, env=env)
    assert resolver.returncode == 2 and "'pip' is not one of 'uv', 'pip-tools'" in resolver.stderr
    bounded = run_lockd("why", "numpy", "--limit", "0", cwd=tmp_path, env=env)  # typer's adapter
    assert bounded.returncode == 2 and "--limit" in bounded.stderr
    for args in (["--port", "99999"], ["--log-level", "verbose"]):
        serve = run_lockd("serve", *args, cwd=tmp_path, env=env)
        assert serve.returncode == 2 and "Traceback" not in serve.output, serve.output
        assert "Invalid value for" in serve.stderr
    version = run_lockd("--version", cwd=tmp_path, env=env)
    assert version.returncode == 0 and version.stdout.strip() == lockd.__version__


MATRIX = ("--platform", "linux-x86_64", "--python", "3.11", "--python", "3.12")


def _torch_pages(world: IndexServer, since: int, variant: str) -> int:
    """How often uv fetched torch's page of ``variant``: once per uv run of a target."""
    return sum(
        1
        for path, agent in list(zip(world.requests, world.agents, strict=True))[since:]
        if path.rstrip("/") == f"/whl/{variant}/torch" and agent.startswith("uv/")
    )


def test_matrix_learns_promotions_once_and_locks_the_same_bytes(
    lockd: Callable[..., Run], tmp_path: Path, world: IndexServer
) -> None:
    """The followers of a routing plan declare triton from their first uv run, and every
    lock is byte for byte what the target compiled alone (no follower: the old path) is."""
    (tmp_path / "requirements.in").write_text("torch==2.6.0\nnumpy\nrequests\n")
    since = len(world.requests)
    matrix = lockd("compile", "--cuda", "cu124", "--cuda", "cpu", *MATRIX)
    assert matrix.returncode == 0, matrix.output
    # cu124: the scout resolves twice (triton arrives transitively), its follower once
    assert _torch_pages(world, since, "cu124") == 3
    assert _torch_pages(world, since, "cpu") == 2
    locks = json.loads((tmp_path / "locks" / "lockd.json").read_text())["locks"]
    for lock in locks:
        target = lock["target"]
        python = "3.11" if "py311" in target else "3.12"
        cuda = target.rsplit("-", 1)[1]
        out = f"alone-{target}"
        alone = lockd("compile", "--cuda", cuda, "--platform", "linux-x86_64",
                      "--python", python, "--out", out)  # fmt: skip
        assert alone.returncode == 0, alone.output
        (single,) = json.loads((tmp_path / out / "lockd.json").read_text())["locks"]
        assert single == lock
        for name in lock["files"]:
            assert (tmp_path / out / name).read_bytes() == (tmp_path / "locks" / name).read_bytes()


@pytest.mark.parametrize("triton_for_312", [True, False])
def test_a_follower_drops_promotions_its_lock_does_not_need(
    lockd: Callable[..., Run], tmp_path: Path, triton_for_312: bool
) -> None:
    """torch for Python 3.11 requires triton, for 3.12 it does not: the 3.12 target,
    told by the 3.11 scout to declare triton, resolves again without it, whether
    triton would be needless in its lock or cannot be installed on 3.12 at all."""
    linux = "manylinux_2_28_x86_64"
    with serve() as server:
        pypi = server.pypi("simple")
        pypi.add(W("filelock", "3.16.1"))
        cu124 = server.pytorch("cu124")
        for py in ("cp311", "cp312") if triton_for_312 else ("cp311",):
            pypi.add(W("triton", "3.2.0", f"{py}-{py}-{linux}"))
            cu124.add(W("triton", "3.2.0", f"{py}-{py}-{linux}"), upload_time=None)
        triton = 'triton==3.2.0 ; platform_system == "Linux"'
        cu124.add(
            W("torch", "2.6.0+cu124", f"cp311-cp311-{linux}", ("filelock", triton)),
            upload_time=None,
        )
        cu124.add(
            W("torch", "2.6.0+cu124", f"cp312-cp312-{linux}", ("filelock",)), upload_time=None
        )
        (tmp_path / "requirements.in").write_text("torch==2.6.0\n")
        run = lockd_against(lockd, server)
        result = run("compile", "--cuda", "cu124", *MATRIX, "--format", "json")
    assert result.returncode == 0, result.output
    packages = {
        lock["target"]: {a["name"]: a["index"] for a in lock["artifacts"]}
        for lock in json.loads((tmp_path / "locks" / "lockd.json").read_text())["locks"]
    }
    assert packages["linux-x86_64-py311-cu124"]["triton"] == f"{server.url}/whl/cu124"
    assert sorted(packages["linux-x86_64-py312-cu124"]) == ["filelock", "torch"]


def test_promotions_are_shared_per_key_and_plans_without_routes_never_wait() -> None:
    promotions = Promotions()
    assert promotions.hints(None) == (frozenset(), False)  # nothing routed: no scout, no wait
    assert promotions.hints("cu124") == (frozenset(), True)
    promotions.learned("cu124", frozenset({"triton"}))
    promotions.learned("cu124", frozenset())  # the scout's finally: the first report counts
    assert promotions.hints("cu124") == (frozenset({"triton"}), False)
    keys = ["cpu", "cu124", None, "cpu", None, "cu124"]
    assert scouts_first(keys) == [0, 1, 2, 4, 3, 5]


def test_lazy_package_faces_export_every_name() -> None:
    """lockd.store and lockd.images import on first use: every name of ``__all__`` must
    have its module in ``_MODULES`` (a name added to one and not the other fails here)."""
    import lockd.images
    import lockd.store

    for package in (lockd.store, lockd.images):
        assert set(package._MODULES) == set(package.__all__), package.__name__
        for name in package.__all__:
            assert getattr(package, name) is not None, (package.__name__, name)


def test_exit_skips_the_collector_s_last_walk_over_every_object(tmp_path: Path) -> None:
    """``main`` freezes the heap at exit: the interpreter's final collections then have
    nothing to walk. A handler registered before ``main`` runs after its own."""
    probe = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
        "from lockd.cli import main\n"
        "sys.argv = ['lockd', 'version']\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=hermetic_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "frozen True"


def test_compile_pauses_the_collector_while_it_works_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compile runs without the cyclic collector; a caller in the same process
    (this test) gets it back, also when the compile fails."""
    import gc

    from typer.testing import CliRunner

    import lockd.app.compile
    from lockd.cli import app
    from lockd.errors import ResolutionError

    seen: list[bool] = []

    def compile_lockset(*args: object, **kwargs: object) -> None:
        seen.append(gc.isenabled())
        raise ResolutionError("no resolution in this test")

    monkeypatch.setattr(lockd.app.compile, "compile_lockset", compile_lockset)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "requirements.in").write_text("numpy\n")
    assert gc.isenabled()
    result = CliRunner().invoke(app, ["compile", "--platform", "linux-x86_64", "--python", "3.11"],
                                env=hermetic_env(tmp_path))  # fmt: skip
    assert isinstance(result.exception, ResolutionError)
    assert seen == [False]
    assert gc.isenabled()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority: Linux")
def test_the_store_opens_in_a_thread_that_gives_way_to_uv(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compile's background thread (the store's imports and opening, beside the uv
    runs) runs at a lower priority; the thread that started it keeps its own."""
    import os
    import threading

    import lockd.store
    from lockd.app import compile as compile_app

    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen: list[int] = []

    class Opened:
        def __init__(self, url: str) -> None:
            seen.append(niceness())

        def latest(self, project: str) -> None:
            return None

    monkeypatch.setattr(lockd.store, "Store", Opened)
    before = niceness()
    compile_app._in_background(compile_app._open_store, "sqlite:///unused.db", "p").result()
    assert seen == [min(19, before + 10)]
    assert niceness() == before

"""The graph's metadata is read while uv resolves, from the wheels uv's log says it picked.

Only the final resolution reaches the graph: a version uv picked and backtracked
away from is read early and then ignored, and an early read that failed is read
again at the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lockd.resolvers.interface import Candidate
from lockd.resolvers.uv_log import PickWatcher, without_log
from tests.conftest import Run
from tests.support.pyindex import IndexServer, serve
from tests.support.wheels import WheelSpec as W

LockdRunner = Callable[..., Run]
TARGET = ("--cuda", "cpu", "--platform", "linux-x86_64", "--python", "3.11")
FILES = "http://127.0.0.1:8080/packages"


def watched(lines: list[str]) -> list[Candidate]:
    told: list[Candidate] = []
    watch = PickWatcher(told.append)
    for line in lines:
        watch(line)
    return told


def test_a_pick_is_told_once_when_both_its_selection_and_its_url_were_logged() -> None:
    lines = [
        # the URL first (uv reads ahead), then the selection
        f"DEBUG No cache entry for: {FILES}/b-1.0-py3-none-any.whl.metadata",
        f"DEBUG Sending fresh GET request for: {FILES}/b-1.0-py3-none-any.whl.metadata",
        "DEBUG Selecting: B==1.0 [compatible] (b-1.0-py3-none-any.whl)",
        # the selection first; a local version's '+' percent-encoded in the URL
        "DEBUG Selecting: torch==2.6.0+cu124 [compatible] "
        "(torch-2.6.0+cu124-cp311-cp311-linux_x86_64.whl)",
        "DEBUG Sending fresh HEAD request for: "
        "https://user:****@example.org/whl/torch-2.6.0%2Bcu124-cp311-cp311-linux_x86_64.whl",
        # selected again after a fork: told once
        "DEBUG Selecting: b==1.0 [compatible] (b-1.0-py3-none-any.whl)",
        # an sdist, a page, uv's own words and a selection without a URL: nothing
        "DEBUG Selecting: s==1.0 [compatible] (s-1.0.tar.gz)",
        f"DEBUG No cache entry for: {FILES}/s-1.0.tar.gz",
        "DEBUG Sending fresh GET request for: https://pypi.org/simple/b/",
        f"error: {FILES}/c-1.0-py3-none-any.whl answered 404",
        "DEBUG Selecting: c==1.0 [compatible] (c-1.0-py3-none-any.whl)",
    ]
    assert watched(lines) == [
        Candidate("b", "1.0", f"{FILES}/b-1.0-py3-none-any.whl"),
        Candidate(
            "torch",
            "2.6.0+cu124",
            "https://example.org/whl/torch-2.6.0%2Bcu124-cp311-cp311-linux_x86_64.whl",
        ),
    ]


def test_uv_s_own_lines_stay_and_the_log_lines_go() -> None:
    stderr = (
        "DEBUG Selecting: b==1.0 [compatible] (b-1.0-py3-none-any.whl)\n"
        "error: No solution found when resolving dependencies\n"
        "\x1b[2mDEBUG\x1b[0m Adding transitive dependency for b==1.0: c>=1\n"
        "  cause: Because only numpy>=1.3.0 is available and you require numpy<1.0, ...\n"
        "WARN not a debug line of ours but a log line all the same\n"
    )
    assert without_log(stderr) == (
        "error: No solution found when resolving dependencies\n"
        "  cause: Because only numpy>=1.3.0 is available and you require numpy<1.0, ...\n"
    )


def lockd_reads(server: IndexServer, fragment: str) -> list[str]:
    """Requests lockd's own client (not uv) made for paths containing ``fragment``."""
    return [
        path
        for path, agent in zip(server.requests, server.agents, strict=True)
        if fragment in path and agent.startswith("python-httpx")
    ]


def against(lockd: LockdRunner, server: IndexServer, tmp_path: Path) -> LockdRunner:
    """lockd on ``server``, with a cold uv cache of its own (uv logs what it fetches)."""
    env = {
        "LOCKD_INDEX_URL": f"{server.url}/simple",
        "LOCKD_PYTORCH_INDEX": f"{server.url}/whl",
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
    }
    return lambda *args: lockd(*args, env=env)


def compile_holding(
    lockd: LockdRunner, server: IndexServer, tmp_path: Path, page: str, until: str
) -> tuple[Run, bool]:
    """Compile while ``page`` is held: uv cannot finish before it is answered, which it
    is once lockd asked for the path ``until`` (or 20 s passed: uv gives up at 30 s).
    Returns the run and whether lockd asked for it while uv waited."""
    held = server.hold(page)
    with ThreadPoolExecutor(max_workers=1) as pool:
        compiling = pool.submit(
            against(lockd, server, tmp_path), "compile", "requirements.in", *TARGET
        )
        deadline = time.monotonic() + 20
        try:
            while until not in lockd_reads(server, until) and time.monotonic() < deadline:
                time.sleep(0.02)  # polling the server's log, with a deadline
            read_early = until in lockd_reads(server, until)
        finally:
            held.set()
        return compiling.result(), read_early


def test_metadata_is_read_while_uv_still_resolves(lockd: LockdRunner, tmp_path: Path) -> None:
    with serve() as server:
        index = server.pypi("simple")
        index.add(W("alpha", "1.0", requires=("beta",)))
        index.add(W("beta", "1.0"))
        # uv cannot finish before beta's page is answered: by then lockd must have read
        # alpha's metadata already, from uv's log.
        (tmp_path / "requirements.in").write_text("alpha\n")
        result, read_early = compile_holding(
            lockd,
            server,
            tmp_path,
            "/simple/beta/",
            "/packages/simple/alpha-1.0-py3-none-any.whl.metadata",
        )
        assert result.returncode == 0, result.output
        assert read_early
        assert len(lockd_reads(server, "alpha-1.0")) == 1  # read once, early, not again


def test_only_the_final_resolution_reaches_the_graph(lockd: LockdRunner, tmp_path: Path) -> None:
    with serve() as server:
        index = server.pypi("simple")
        # uv picks a 2.0 (which wants c 1.0) and c 1.0, then b's c==2.0 makes it backtrack.
        index.add(W("a", "2.0", requires=("c==1.0",)))
        index.add(W("a", "1.0", requires=("d",)))
        index.add(W("b", "1.0", requires=("c==2.0",)))
        for version in ("1.0", "2.0"):
            index.add(W("c", version))
        index.add(W("d", "1.0"))
        refused: list[str] = []

        def refuse(path: str, agent: str) -> bool:
            """lockd's early reads of the abandoned picks fail, and d's first reads."""
            if not agent.startswith("python-httpx"):
                return False
            if "a-2.0" in path or "c-1.0" in path:
                return True
            if "d-1.0" in path and len(refused) < 2:  # the .metadata, then the byte range
                refused.append(path)
                return True
            return False

        server.refuse = refuse
        (tmp_path / "requirements.in").write_text("a\nb\n")
        result = against(lockd, server, tmp_path)("compile", "requirements.in", *TARGET)
        assert result.returncode == 0, result.output
        # the test did what it meant to: the abandoned pick and d were read early
        assert lockd_reads(server, "a-2.0") and len(refused) == 2
        lock = json.loads((tmp_path / "locks" / "lockd.json").read_text())["locks"][0]
        assert {(a["name"], a["version"]) for a in lock["artifacts"]} == {
            ("a", "1.0"),
            ("b", "1.0"),
            ("c", "2.0"),
            ("d", "1.0"),
        }
        edges = {(e["from"], e["requirement"]) for e in lock["graph"]["edges"]}
        assert edges == {("a", "d"), ("b", "c==2.0")}
        assert lock["graph"]["unknown"] == []


def test_a_file_read_at_the_end_skips_the_404_on_a_host_without_pep658_files(
    lockd: LockdRunner, tmp_path: Path
) -> None:
    with serve() as server:
        index = server.pypi("simple")
        # A mirror without PEP 658 files (uv reads the wheels by ranges too).
        # gamma has two wheels: uv picks py311's (read early: a 404, then the wheel's
        # tail), the lock lists py310's first, read at the end: its tail at once.
        for tag in ("py310-none-any", "py311-none-any"):
            index.add(W("gamma", "1.0", tag=tag), serve_metadata=False)
        index.add(W("zeta", "1.0"), serve_metadata=False)
        (tmp_path / "requirements.in").write_text("gamma\nzeta\n")
        early = "/packages/simple/gamma-1.0-py311-none-any.whl"
        # zeta's page waits until lockd asked for gamma's tail: the 404 came before it
        result, read_early = compile_holding(lockd, server, tmp_path, "/simple/zeta/", early)
        assert result.returncode == 0, result.output
        assert read_early
        assert lockd_reads(server, "gamma-1.0-py311") == [f"{early}.metadata", early]
        last = "/packages/simple/gamma-1.0-py310-none-any.whl"
        assert lockd_reads(server, "gamma-1.0-py310") == [last]

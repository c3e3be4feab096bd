"""`lockd audit` streams: records read a batch at a time in one snapshot, sections written one
at a time, the output file staged and renamed into place (issue 14's 10,000-lockset row)."""

from __future__ import annotations

import io
import json
import multiprocessing
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from lockd.app import audit
from lockd.app.audit import AuditRequest, write_report
from lockd.app.audit_render import WorkerRenderer
from lockd.errors import LockdError
from lockd.lockfiles.files import write_atomic_streamed
from lockd.store import Store
from lockd.store.verify import ChainReport, load
from tests.conftest import hermetic_env
from tests.test_audit import Seed, build_seed, lockset, run_lockd

FORMATS = ("markdown", "html", "json")


class Recording(io.BytesIO):
    """An output that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes.append(bytes(data))
        return super().write(data)


def report(url: str, fmt: str, processes: int = 1) -> str:
    out = Recording()
    write_report(AuditRequest(url, processes=processes), fmt, out)
    # the moment it was generated is the only thing two runs may differ in
    return re.sub(
        r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ(?=\W*(by|\"|·|</title>))", "NOW", out.getvalue().decode()
    )


@pytest.fixture
def seeded(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Seed:
    monkeypatch.setenv("LOCKD_HOME", str(tmp_path / "home"))  # the spool file's scratch dir
    seed = build_seed(tmp_path / "unused.db", db_url)
    store = Store(db_url)
    try:  # a second lockset of web, so that the two projects' rows interleave
        store.record_lockset(lockset("web", "2.6.0", "2026-04-01T00:00:00Z", seed.web))
    finally:
        store.close()
    return seed


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_report_read_a_lockset_at_a_time_is_the_same(
    seeded: Seed, db_url: str, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = report(db_url, fmt)
    monkeypatch.setattr(load, "BATCH", 1)
    assert report(db_url, fmt) == whole
    # rendered by a second process while this one reads and checks (from the first lockset)
    monkeypatch.setattr(audit, "WORKER_FROM", 0)
    assert report(db_url, fmt, processes=2) == whole
    assert not multiprocessing.active_children()
    if fmt == "json":
        doc = json.loads(whole)
        ml = next(p for p in doc["projects"] if p["name"] == "ml-model")
        assert [e["hash"] for e in ml["locksets"]] == list(reversed(seeded.ml))
        assert doc["chain"]["verified"] is True and doc["summary"]["locksets"] == 5


def test_each_lockset_section_is_written_on_its_own(seeded: Seed, db_url: str) -> None:
    for fmt, heading in (("markdown", "#### Lockset "), ("html", '<details class="lockset"')):
        out = Recording()
        write_report(AuditRequest(db_url), fmt, out)
        assert out.getvalue().decode().count(heading) == 5
        sections = [w.decode().count(heading) for w in out.writes]
        assert max(sections) == 1, (fmt, sections)  # never the whole report in one piece
        assert sum(sections) == 5


def test_a_reader_sees_one_snapshot_and_never_blocks_a_writer(seeded: Seed, db_url: str) -> None:
    reader_store, writer = Store(db_url), Store(db_url)
    try:
        with reader_store.reading_records(batch=1) as reader:
            records = reader.locksets()
            first = next(records)
            # SQLite used to begin every transaction with the write lock (BEGIN IMMEDIATE):
            # a compile would then wait for the whole report, and fail after 30 s.
            writer.record_lockset(lockset("new", "2.7.0", "2026-05-01T00:00:00Z", None))
            rest = list(records)
        assert [first.hash, *(r.hash for r in rest)][:3] == [seeded.ml[0], seeded.web, seeded.ml[1]]
        assert len(rest) + 1 == 5  # the lockset appended meanwhile is not in this snapshot
    finally:
        reader_store.close()
        writer.close()


def test_reading_ahead_stops_with_its_reader(seeded: Seed, db_url: str) -> None:
    store = Store(db_url)
    try:
        with store.reading_records(batch=1) as reader:
            records = reader.locksets()
            next(records)
            records.close()  # the consumer stops early (an error, Ctrl-C)
            assert reader.orphans().orphan_locks == ()  # the connection is free again
    finally:
        store.close()
    assert not [t for t in threading.enumerate() if t.name == "lockd-read-ahead"]


def test_a_failed_report_leaves_the_output_file_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "audit.md"
    out.write_text("the previous report\n")
    stale = tmp_path / ".audit.md.0a1b2c3d.tmp"  # left by a run killed with kill -9
    stale.write_text("half a report")

    def fail_halfway(handle: io.BufferedWriter) -> None:
        handle.write(b"# lockd audit report\n" * 1000)
        raise LockdError("the database went away")

    with pytest.raises(LockdError):
        write_atomic_streamed(out, fail_halfway)
    assert out.read_text() == "the previous report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.md"]  # no temporary left
    assert write_atomic_streamed(out, lambda handle: handle.write(b"new\n")) == 4
    assert out.read_text() == "new\n"


def test_the_latest_lockset_is_read_alone(seeded: Seed, db_url: str) -> None:
    """`audit --format cyclonedx` (and compile) ask for the head: one row, not the project's
    every document (ORM results are buffered: 400 MB for 10,000 locksets)."""
    store = Store(db_url)
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    sa.event.listen(store.engine, "before_cursor_execute", listener)
    try:
        latest = store.latest("ml-model")
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", listener)
        store.close()
    assert latest is not None and latest.hash == seeded.ml[2]
    (query,) = [s for s in statements if "FROM locksets" in s]
    assert "LIMIT" in query.upper(), query


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_report_of_an_empty_database(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCKD_HOME", str(tmp_path / "home"))
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(url).close()
    text = report(url, fmt)
    if fmt == "json":
        doc = json.loads(text)
        assert doc["projects"] == [] and doc["summary"]["locksets"] == 0
    else:
        assert "lockd audit report" in text and "Project " not in text


def test_a_killed_report_never_leaves_a_half_written_file(tmp_path: Path) -> None:
    """kill -9 while `lockd audit -o` runs: no report at all (its staged temporary is the next
    run's to remove), never a half-written one."""
    url = f"sqlite:///{tmp_path / 'lockd.db'}"
    store = Store(url)
    try:
        parent = None
        for n in range(120):
            item = lockset("big", f"2.{n}.0", f"2026-01-01T{n % 24:02d}:{n % 60:02d}:00Z", parent)
            store.record_lockset(item)
            parent = item.hash
    finally:
        store.close()
    out = tmp_path / "out" / "audit.md"
    out.parent.mkdir()
    args = [sys.executable, "-m", "lockd", "audit", "--db", url, "-o", str(out)]
    env = hermetic_env(tmp_path)
    child = subprocess.Popen(args, cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(out.parent.glob(".audit.md.*.tmp")):  # staged: the report is under way
        assert child.poll() is None, "the run ended before it staged its file"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    child.kill()
    child.wait()
    assert not out.exists()
    rerun = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["audit.md"]  # the debris is gone
    assert out.read_text().count("#### Lockset ") == 120


def test_a_rendering_process_that_dies_is_an_error_not_a_hang(tmp_path: Path) -> None:
    renderer = WorkerRenderer(None, (None, None), "markdown", tmp_path)
    try:
        (child,) = [c for c in multiprocessing.active_children() if c.name == "lockd-audit-render"]
        child.kill()
        child.join()
        with pytest.raises(LockdError, match="Rendering the audit report failed"):
            renderer.finish(ChainReport(()), "2026-01-01T00:00:00Z", io.BytesIO())
    finally:
        renderer.close()
    assert not multiprocessing.active_children()


def test_a_report_of_a_database_that_is_not_there_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    for fmt in ("markdown", "cyclonedx"):
        run = run_lockd(tmp_path, "audit", "--db", f"sqlite:///{missing}", "--format", fmt)
        assert run.returncode == 2, run.output
        assert f"No lockd database at {missing}" in run.stderr
        assert "Traceback" not in run.output
    assert not missing.exists()  # reading never creates it

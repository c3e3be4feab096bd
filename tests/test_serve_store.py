"""What `lockd serve` keeps in the database and the pure pieces around it.

Migration 0007 from a 0006 schema built in code (SQLite and PostgreSQL) (its reports indexed), the
per-target index and daily counts, deployments and their baselines, stale
deployments, tokens, the rate limiter, Authorization parsing, durations,
server settings and posted documents.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from lockd.app.fleet import Fleet, Ingestion, parse_posted
from lockd.app.tokens import NewToken, allows, create, hash_token
from lockd.drift import CheckError, DriftReport, Finding, target_statuses
from lockd.errors import ConfigError, FormatError, ServerError, UsageError
from lockd.lockset import canonical_json
from lockd.server.auth import presented_token
from lockd.server.limits import RateLimiter
from lockd.settings import ServerSettings
from lockd.snapshot._probe import outcome
from lockd.store import DeploymentQuery, Posted, ReportQuery, Store
from lockd.times import parse_duration
from tests.support.serve import TARGET, fleet_lockset, lock_files, snapshot_doc

OTHER = "linux-x86_64-py311-cpu"


def test_target_statuses() -> None:
    body = DriftReport(
        "p",
        "l",
        "2026-11-01T00:00:00Z",
        (Finding("missing", TARGET, "numpy", "1", None),),
        errors=(CheckError(OTHER, "creep", "index down"),),
        checks=(f"rebuild:{TARGET}", f"creep:{OTHER}", "images", "image:python:3.11", "live:x"),
    ).body()
    assert target_statuses(body) == {TARGET: "drift", OTHER: "error", "x": "clean"}
    moved = DriftReport(
        "p", "l", "t", (Finding("image-moved", None, "python:3.11", "a", "b"),), checks=("live:x",)
    )
    assert target_statuses(moved.body()) == {"x": "drift"}  # a project-wide finding


def test_upgrade_from_0006_indexes_the_recorded_reports(db_url: str) -> None:
    from lockd.store.migrate import current_revision, head_revision, upgrade

    url = db_url
    old = Store(url, migrate=False)
    upgrade(old.engine, "0006")
    reports = [
        DriftReport("p", "l", "2026-11-01T03:00:00Z", (), checks=(f"rebuild:{TARGET}",)),
        DriftReport(
            "p",
            "l",
            "2026-11-01T04:00:00Z",
            (Finding("cpu-wheel", TARGET, "torch", "a", "b"),),
            checks=(f"rebuild:{TARGET}", f"artifacts:{OTHER}"),
        ),
    ]
    # Written the way 0006's schema was (no report index, no deployments then), in UTC
    # (PostgreSQL's columns are zoned from 0006 on; its test server's zone is far from UTC).
    utc = "+00" if old.engine.dialect.name == "postgresql" else ""
    with old.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO projects (id, name, created_at) VALUES (1, 'p', '2026-01-01')")
        )
        for n, report in enumerate(reports, 1):
            conn.execute(
                text(
                    "INSERT INTO drift_reports (id, hash, parent_hash, project_id, lockset_hash, "
                    "status, checked_at, finding_count, document) VALUES (:id, :hash, NULL, 1, "
                    "'l', :status, :checked, :count, :document)"
                ),
                {
                    "id": n,
                    "hash": report.hash,
                    "status": report.status,
                    "checked": report.checked_at.replace("T", " ").rstrip("Z") + ".000000" + utc,
                    "count": len(report.findings),
                    "document": canonical_json(report.body()),
                },
            )
    assert "deployments" not in inspect(old.engine).get_table_names()
    old.close()

    store = Store(url)  # opening upgrades to head
    assert current_revision(store.engine) == head_revision()
    assert {"tokens", "deployments", "lock_files"} <= set(inspect(store.engine).get_table_names())
    drifted = store.drift_report_summaries(ReportQuery(target=TARGET, status="drift"))
    assert [r.hash for r in drifted] == [reports[1].hash]
    assert [r.hash for r in store.drift_report_summaries(ReportQuery(target=OTHER))] == [
        reports[1].hash
    ]
    (project,) = store.project_overviews("2026-10-01")
    assert project.days[TARGET]["2026-11-01"] == ("drift", 1, 1, 0)
    assert project.days[OTHER]["2026-11-01"] == ("clean", 1, 0, 0)
    store.close()


def _store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    lockset, files = lock_files(fleet_lockset("vision"))
    store.record_lockset(lockset, files)
    return store


def test_ingestion_moves_the_deployment_and_its_baseline(tmp_path: Path) -> None:
    store = _store(tmp_path)
    fleet = Fleet(store, stale_after=timedelta(hours=1))
    where = Ingestion("vision", TARGET, "d1")
    first = fleet.ingest(where, json.dumps(snapshot_doc()).encode())
    assert first.status == "clean"
    _, baseline = store.ingestion_state("vision", Posted("d1", TARGET))
    assert baseline is not None
    drifted = fleet.ingest(where, json.dumps(snapshot_doc(cpu_torch=True)).encode())
    assert drifted.parent == first.hash
    # a drifted report leaves the baseline where the last clean one put it
    assert store.ingestion_state("vision", Posted("d1", TARGET))[1] == baseline
    (deployment,) = fleet.deployments(DeploymentQuery())
    assert (deployment.status, deployment.finding_kinds) == ("drift", ("cpu-wheel",))
    assert deployment.first_seen <= deployment.last_seen
    # stale: not seen for longer than stale_after (shown as stale, its report kept)
    later = Fleet(store, stale_after=timedelta(seconds=0))
    (stale,) = later.deployments(DeploymentQuery(status="stale"))
    assert (stale.status, stale.reported_status) == ("stale", "drift")
    assert later.overview().counts == {"clean": 0, "drift": 0, "error": 0, "stale": 1}
    assert later.deployments(DeploymentQuery(status="drift")) == []
    store.close()


def _altered(record: str = "x" * 64, driver: str = "550.54.14") -> bytes:
    """``snapshot_doc()`` whose numpy RECORD digest is ``record`` (a wheel swapped in place)."""
    doc = snapshot_doc(driver=driver)
    for dist in doc["dists"]:
        if dist["name"] == "numpy":
            dist["record_sha256"] = record
    return json.dumps(doc).encode()


def _kinds(report: DriftReport) -> list[tuple[str, str | None]]:
    return [(f.kind, f.package) for f in report.findings]


def test_local_checks_and_deployments_keep_their_own_baselines(tmp_path: Path) -> None:
    """A deployment's clean post is never the baseline of a local check (a rebuild from the
    lock's hashes is the truth); a deployment with no clean post yet is held to the local
    check's dists, not to its system."""
    store = _store(tmp_path)
    fleet = Fleet(store, stale_after=timedelta(hours=1))
    (lockset,) = store.history("vision")
    # No clean local check yet: the first post has nothing to be held to.
    assert fleet.ingest(Ingestion("vision", TARGET, "prod"), _altered()).status == "clean"
    assert store.baseline_snapshot("vision", TARGET) is None
    assert store.baseline_snapshot_ref("vision", TARGET) is None

    local = DriftReport(
        "vision",
        lockset.hash,
        "2026-11-30T10:00:00Z",
        (),
        checks=(f"rebuild:{TARGET}",),
        snapshots={TARGET: snapshot_doc()},
    )
    store.record_drift(local)
    baseline = store.baseline_snapshot("vision", TARGET)
    assert baseline is not None
    numpy = next(d for d in baseline["dists"] if d["name"] == "numpy")
    assert numpy["record_sha256"] == "r" * 64  # the rebuild's, not prod's altered one
    # A server reads a target's local baseline again once a minute: a new one sees it now.
    fleet = Fleet(store, stale_after=timedelta(hours=1))
    # A deployment's later clean post does not move the local baseline either.
    assert fleet.ingest(Ingestion("vision", TARGET, "prod"), _altered()).status == "clean"
    assert store.baseline_snapshot("vision", TARGET) == baseline

    # A new deployment's first post with altered files: held to the local check's dists.
    first = fleet.ingest(Ingestion("vision", TARGET, "eu-2"), _altered())
    assert _kinds(first) == [("hash-mismatch", "numpy")]
    assert first.findings[0].expected == "r" * 16
    assert store.ingestion_state("vision", Posted("eu-2", TARGET))[1] is None  # not its baseline
    # ... but not to its system: another driver on another machine is not "changed".
    other = fleet.ingest(Ingestion("vision", TARGET, "us-3"), _altered("r" * 64, driver="535.1"))
    assert other.status == "clean", _kinds(other)
    # Its own clean snapshot is its baseline from then on (the driver moving is a change).
    moved = fleet.ingest(Ingestion("vision", TARGET, "us-3"), _altered("r" * 64, driver="560.1"))
    assert _kinds(moved) == [("system-changed", "nvidia-driver")]
    store.close()


def test_ingestion_refuses_bad_references_and_names(tmp_path: Path) -> None:
    store = _store(tmp_path)
    fleet = Fleet(store)
    body = json.dumps(snapshot_doc()).encode()
    with pytest.raises(UsageError, match="too short"):
        fleet.ingest(Ingestion("vision", TARGET, "d", lockset="ab"), body)
    with pytest.raises(UsageError, match="printable"):
        fleet.ingest(Ingestion("vision", TARGET, "a\x00b"), body)
    store.close()


def test_posted_documents() -> None:
    assert parse_posted(json.dumps(snapshot_doc()).encode()).dist("torch") is not None
    probe = {
        "probe": 1,
        "python": snapshot_doc()["python"],
        "dists": snapshot_doc()["dists"],
        "torch": None,
    }
    from_probe = parse_posted(json.dumps(probe).encode())
    assert from_probe.system_info is None and from_probe.lockd_version == "probe/1"
    assert from_probe.torch_flavour is None  # no version.py sent: not classified
    undated = json.dumps({**snapshot_doc(), "taken_at": "yesterday"}).encode()
    for bad in (b"\xff\xfe", b"{", b"[" * 50_000, b'{"probe": 2}', b'{"version": null}', undated):
        with pytest.raises(FormatError):
            parse_posted(bad)


def test_tokens(tmp_path: Path) -> None:
    store = _store(tmp_path)
    made = create(store, NewToken("ci", "ingest", timedelta(days=1)))
    assert made.token.startswith("lockd_") and len(made.token) == len("lockd_") + 43
    info = store.token(hash_token(made.token))
    assert info is not None and info.scope == "ingest"
    now = datetime.now(UTC)
    assert allows(info, "read", now) is None and allows(info, "ingest", now) is None
    assert "needs 'admin'" in str(allows(info, "admin", now))
    assert "expired" in str(allows(info, "read", now + timedelta(days=2)))
    assert allows(store.token(hash_token(made.token + "x")), "read", now) == "unknown token"
    with pytest.raises(UsageError, match="exists already"):
        create(store, NewToken("ci", "read"))
    with pytest.raises(UsageError, match="Unknown scope"):
        create(store, NewToken("other", "root"))
    store.revoke_token("ci")
    assert "revoked" in str(allows(store.token(hash_token(made.token)), "read", now))
    store.close()


def test_rate_limiter_buckets() -> None:
    clock = [0.0]
    limiter = RateLimiter(2.0, clock=lambda: clock[0])  # burst 4
    assert [limiter.check("a") for _ in range(4)] == [0.0] * 4
    assert limiter.check("a") == pytest.approx(0.5)
    assert limiter.check("b") == 0.0  # its own bucket
    clock[0] += 0.5
    assert limiter.check("a") == 0.0
    assert RateLimiter(0).check("a") == 0.0  # off


def test_presented_token() -> None:
    assert presented_token("Bearer lockd_abc") == "lockd_abc"
    assert presented_token("bearer   lockd_abc ") == "lockd_abc"
    basic = base64.b64encode(b"anyone:lockd_abc").decode()
    assert presented_token(f"Basic {basic}") == "lockd_abc"
    for bad in (
        None,
        "",
        "Bearer",
        "Token x",
        "Basic !!!",
        "Basic " + base64.b64encode(b"x").decode(),
    ):
        assert presented_token(bad) is None


def test_durations_and_server_settings() -> None:
    assert parse_duration("90s", "x") == timedelta(seconds=90)
    assert parse_duration("1d12h", "x") == timedelta(hours=36)
    for bad in ("", "soon", "12", "-1h", "0s", "5y", "9" * 5000 + "s"):
        with pytest.raises(UsageError):
            parse_duration(bad, "x")
    settings = ServerSettings.from_env({})
    assert (settings.body_limit, settings.rate_limit) == (16 * 1024 * 1024, 100.0)
    assert settings.stale_after == timedelta(hours=24) and settings.cors_origins == ()
    custom = ServerSettings.from_env(
        {"LOCKD_SERVE_CORS_ORIGINS": "https://a.example, https://b.example"}
    )
    assert custom.cors_origins == ("https://a.example", "https://b.example")
    for name, value in (
        ("LOCKD_SERVE_BODY_LIMIT", "0"),
        ("LOCKD_SERVE_BODY_LIMIT", "lots"),
        ("LOCKD_SERVE_RATE_LIMIT", "-1"),
        ("LOCKD_SERVE_RATE_LIMIT", "nan"),
    ):
        with pytest.raises(ConfigError, match=name):
            ServerSettings.from_env({name: value})


def test_probe_outcome_lines() -> None:
    clean = json.dumps({"status": "clean", "hash": "a" * 64, "findings": []}).encode()
    assert outcome(200, clean) == (0, "drift report aaaaaaaaaaaa: clean")
    drift = json.dumps(
        {"status": "drift", "hash": "b" * 64, "findings": [{"kind": "missing"}]}
    ).encode()
    assert outcome(200, drift) == (1, "drift report bbbbbbbbbbbb: 1 finding(s): missing")
    assert outcome(403, b'{"detail": "Refused: scope"}')[0] == 2
    assert outcome(503, b"oops")[0] == 3
    assert outcome(0, b"connection refused") == (
        3,
        "could not reach the lockd server: connection refused",
    )
    # A hostile server's answer is cut, whatever its shape.
    huge = "<b>" + "x" * 100_000
    for answer in (
        json.dumps({"detail": huge}),
        json.dumps({"status": "drift", "findings": [{"kind": huge}, {"kind": huge + "y"}]}),
        json.dumps({"status": "drift", "findings": huge}),
        "[" * 100_000,
    ):
        status = 200 if "findings" in answer or answer.startswith("[") else 400
        code, line = outcome(status, answer.encode())
        assert code in (1, 2, 3) and len(line) < 400, (code, len(line))


def test_snapshot_post_stops_at_the_deadline_and_never_shows_the_token(tmp_path: Path) -> None:
    """`lockd snapshot --post` speaks through lockd's deadline client: a server that
    trickles its answer is cut off at LOCKD_HTTP_DEADLINE (exit 3, one line)."""
    import time

    from lockd.app.post import PostRequest, post_snapshot
    from lockd.snapshot import Snapshot
    from tests.support.trickle import trickle_server

    snapshot = Snapshot.from_dict(snapshot_doc())
    secret = "lockd_" + "s3cr3t" * 8
    env = {"LOCKD_TOKEN": secret, "LOCKD_HTTP_DEADLINE": "1"}
    for mode in ("headers", "body"):
        with trickle_server(mode) as server:
            started = time.monotonic()
            request = PostRequest(server.url + "/", "vision", TARGET, "d1")
            with pytest.raises(ServerError) as caught:
                post_snapshot(snapshot, request, env)
            elapsed = time.monotonic() - started
        assert caught.value.exit_code == 3
        assert "LOCKD_HTTP_DEADLINE" in caught.value.render()
        assert secret not in caught.value.render()
        assert 0.9 < elapsed < 5, elapsed
    refused = PostRequest("http://127.0.0.1:9/?note=pw", "vision", TARGET, "d1")
    with pytest.raises(ServerError) as caught:
        post_snapshot(snapshot, refused, env)
    line = caught.value.render()
    assert line.startswith("Could not reach the lockd server: ")
    assert "pw" not in line and secret not in line  # (credentials in the URL: refused first)


def _group_commit(bad: int | None) -> tuple[list[list[int]], dict[int, object]]:
    """20 writers, the first one slow: what was committed together, and what each got."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from lockd.app.fleet import GroupCommit

    batches: list[list[int]] = []
    gate = threading.Event()

    def write(items: list[int]) -> list[int]:
        if items == [0]:
            gate.wait(10)  # the first commit is slow: the others queue up behind it
        if bad in items:
            raise ValueError("bad item")
        batches.append(items)
        return [i * 10 for i in items]

    commits = GroupCommit(write)
    with ThreadPoolExecutor(max_workers=20) as pool:
        first = pool.submit(commits.submit, 0)
        rest = [pool.submit(commits.submit, i) for i in range(1, 20)]
        while len(commits._pending) < 19:  # every other writer is waiting
            threading.Event().wait(0.01)
        gate.set()
        assert first.result() == 0
        return batches, {i: f.exception() or f.result() for i, f in enumerate(rest, 1)}


def test_a_batch_appends_to_several_chains_through_the_chain_lock(db_url: str) -> None:
    """record_drifts (the server's group commit) goes through chain.append_many: reports of
    one project in a batch chain one after the other, batches that lock the same projects
    in opposite orders from two threads both commit (locks are taken sorted), no chain
    forks."""
    from concurrent.futures import ThreadPoolExecutor

    store = Store(db_url)
    locksets = {name: fleet_lockset(name) for name in ("p", "q")}
    for lockset in locksets.values():
        store.record_lockset(lockset)

    def report(project: str, n: int) -> tuple[DriftReport, Posted | None]:
        checked = f"2026-11-01T00:{n // 60:02d}:{n % 60:02d}Z"
        hash_ = locksets[project].hash
        return DriftReport(project, hash_, checked, (), checks=(f"live:{TARGET}",)), None

    first = store.record_drifts([report("p", 0), report("q", 1), report("p", 2)])
    assert first[0].report.parent is None and first[1].report.parent is None
    assert first[2].report.parent == first[0].report.hash
    batches = [
        [report("p", 10 + 4 * i), report("q", 11 + 4 * i)]
        if i % 2
        else [report("q", 12 + 4 * i), report("p", 13 + 4 * i)]
        for i in range(8)
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(store.record_drifts, batches, timeout=120))
    assert sum(len(r) for r in results) == 16
    chains = store.verify_chains()
    assert chains.ok, chains.problems
    assert len(store.drift_reports("p")) == 2 + 8 and len(store.drift_reports("q")) == 1 + 8
    store.close()


def test_group_commit_batches_and_isolates_failures() -> None:
    batches, results = _group_commit(None)
    assert batches == [[0], list(range(1, 20))]  # the queued writes: one commit
    assert results == {i: i * 10 for i in range(1, 20)}
    batches, results = _group_commit(13)
    assert isinstance(results.pop(13), ValueError)  # only the bad item fails
    assert results == {i: i * 10 for i in range(1, 20) if i != 13}
    assert batches[1:] == [[i] for i in range(1, 20) if i != 13]  # retried one by one


@pytest.mark.parametrize("write", ["upsert", "update_or_insert"])
def test_counter_upserts(tmp_path: Path, write: str) -> None:
    """ON CONFLICT (SQLite, PostgreSQL) and the portable fallback count alike."""
    from lockd.store import fleet
    from lockd.store.tables import DriftDayRow

    table = DriftDayRow.__table__  # type: ignore[attr-defined]
    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store, store.engine.begin() as conn:
        conn.execute(text("INSERT INTO projects (id, name, created_at) VALUES (1, 'p', '2026')"))
        keys = {"project_id": 1, "target": TARGET, "day": "2026-11-30"}
        how = fleet.Upsert(tuple(keys), ("last_status", "last_report_id"), ("clean", "drift"))
        for n, status in enumerate(("clean", "drift", "clean"), 1):
            latest = {"last_status": status, "last_report_id": n}
            fresh = {"clean": 0, "drift": 0, "error": 0, status: 1, **latest}
            getattr(fleet, write)(conn, table, keys | fresh, how)
        row = conn.execute(text("SELECT clean, drift, error, last_status FROM drift_days")).one()
    assert tuple(row) == (2, 1, 0, "clean")


def test_a_worker_tunes_its_garbage_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from lockd.server.app import GC_THRESHOLD, from_environment

    monkeypatch.setenv("LOCKD_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    before = gc.get_threshold()
    try:
        app = from_environment()
        assert gc.get_threshold() == GC_THRESHOLD
        assert gc.get_freeze_count() > 0  # what the process holds from now on is not scanned
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    app.state.store.close()


def test_posted_snapshots_are_checked_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import lockd.app.fleet as fleet_module

    store = _store(tmp_path)
    fleet = Fleet(store)
    body = json.dumps(snapshot_doc()).encode()
    entered = [threading.Event(), threading.Event()]
    release = threading.Event()
    read = fleet_module.decode_posted

    def parse(data: bytes) -> tuple[object, bool]:
        entered[entered[0].is_set()].set()
        release.wait(timeout=60)
        return read(data)

    monkeypatch.setattr(fleet_module, "decode_posted", parse)
    threads = [
        threading.Thread(target=fleet.ingest, args=(Ingestion("vision", TARGET, f"d{n}"), body))
        for n in range(2)
    ]
    for thread in threads:
        thread.start()
    assert entered[0].wait(timeout=60)
    assert not entered[1].wait(timeout=0.5)  # the second waits while the first is read
    release.set()
    for thread in threads:
        thread.join(timeout=60)
    assert entered[1].is_set()
    assert len(fleet.deployments(DeploymentQuery())) == 2
    store.close()


def _counted(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[object]:
    """``owner.name`` still called, each call's argument noted in the list returned."""
    calls: list[object] = []
    called = getattr(owner, name)

    def counting(argument: object) -> object:
        calls.append(argument)
        return called(argument)

    monkeypatch.setattr(owner, name, counting)
    return calls


def test_a_content_posted_again_is_read_once_and_recorded_under_its_own_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lockd.app.fleet as fleet_module

    store = _store(tmp_path)
    fleet = Fleet(store)
    reads = _counted(monkeypatch, fleet_module, "read_posted")
    first = fleet.ingest(Ingestion("vision", TARGET, "d1"), json.dumps(snapshot_doc()).encode())
    # the same content, other keys' order, posted later by another deployment
    later = {**dict(reversed(snapshot_doc().items())), "taken_at": "2026-11-30T12:00:00Z"}
    second = fleet.ingest(Ingestion("vision", TARGET, "d2"), json.dumps(later).encode())
    assert len(reads) == 1
    assert (first.status, second.status) == ("clean", "clean")
    _, snapshots = store.drift_report(second.hash)
    assert [s["taken_at"] for s in snapshots] == ["2026-11-30T12:00:00Z"]
    baselines = [store.ingestion_state("vision", Posted(d, TARGET))[1] for d in ("d1", "d2")]
    stored = [store.snapshot(b.id) for b in baselines if b is not None]
    assert len(stored) == 2 and stored[0][1] == stored[1][1]  # one content, by its hash
    assert stored[1][0]["taken_at"] == "2026-11-30T12:00:00Z"
    # a known content under a taken_at that is not a time is refused as before
    for bad_time in ("yesterday", 5, None):
        undated = json.dumps({**snapshot_doc(), "taken_at": bad_time}).encode()
        with pytest.raises(FormatError, match="taken_at"):
            fleet.ingest(Ingestion("vision", TARGET, "d3"), undated)
    store.close()


def test_findings_are_reused_only_for_the_same_lock_content_and_baseline(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    fleet = Fleet(store)
    clean = json.dumps(snapshot_doc()).encode()
    moved = json.dumps(snapshot_doc(extra_dists=("surprise",), driver="560.1")).encode()
    fleet.ingest(Ingestion("vision", TARGET, "with-baseline"), clean)
    against_baseline = fleet.ingest(Ingestion("vision", TARGET, "with-baseline"), moved)
    without = fleet.ingest(Ingestion("vision", TARGET, "new"), moved)
    again = fleet.ingest(Ingestion("vision", TARGET, "new"), moved)
    # what the CLI's comparison finds for each, from scratch
    lockset = store.latest("vision")
    assert lockset is not None and (lock := lockset.lock(TARGET)) is not None
    from lockd.app.drift import live_findings
    from lockd.targets import parse_target_id

    posted, base = parse_posted(moved), parse_posted(clean)
    target = parse_target_id(TARGET)
    assert against_baseline.findings == tuple(live_findings(lock, target, posted, base, None))
    assert without.findings == tuple(live_findings(lock, target, posted, None, None))
    assert against_baseline.findings != without.findings
    assert again.findings == without.findings
    store.close()


def test_each_project_keeps_its_own_deployments_baselines(db_url: str) -> None:
    """Two projects with a deployment of the same name: each post is held to its own
    project's baseline (the ingestion query's subqueries name the outer project row)."""
    store = Store(db_url)
    for project in ("vision", "audio"):
        lockset, files = lock_files(fleet_lockset(project))
        store.record_lockset(lockset, files)
    fleet = Fleet(store)
    vision = json.dumps(snapshot_doc(driver="535.1")).encode()
    audio = json.dumps(snapshot_doc(driver="550.2")).encode()
    assert fleet.ingest(Ingestion("vision", TARGET, "prod"), vision).status == "clean"
    assert fleet.ingest(Ingestion("audio", TARGET, "prod"), audio).status == "clean"
    refs = {p: store.ingestion_state(p, Posted("prod", TARGET))[1] for p in ("vision", "audio")}
    stored = {p: store.snapshot(ref.id) for p, ref in refs.items() if ref is not None}
    assert {p: ref.content for p, ref in refs.items() if ref} == {
        p: found[1] for p, found in stored.items() if found
    }
    assert refs["vision"] != refs["audio"]
    # each deployment posts its own content again: clean, nothing compared across projects
    assert fleet.ingest(Ingestion("audio", TARGET, "prod"), audio).status == "clean"
    assert fleet.ingest(Ingestion("vision", TARGET, "prod"), vision).status == "clean"
    store.close()


def test_a_worker_knows_a_baseline_by_its_content_whoever_recorded_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers of one server: the post that made a content a deployment's baseline was
    recorded by one, the deployment's next post reaches the other. A worker that has read
    that content does not read the baseline from the database again; one that has not
    reads it once, and holds the deployment to it."""
    store = _store(tmp_path)
    loads = _counted(monkeypatch, store, "snapshot")
    first, second = Fleet(store), Fleet(store)
    clean = json.dumps(snapshot_doc()).encode()
    assert first.ingest(Ingestion("vision", TARGET, "d1"), clean).status == "clean"
    assert second.ingest(Ingestion("vision", TARGET, "d2"), clean).status == "clean"
    assert second.ingest(Ingestion("vision", TARGET, "d1"), clean).status == "clean"
    assert loads == []  # d1's baseline was recorded by the first, its content read by both
    # a new content reaches the worker that has never read the deployment's baseline
    moved = json.dumps(snapshot_doc(driver="560.1")).encode()
    third = Fleet(store)
    drifted = third.ingest(Ingestion("vision", TARGET, "d1"), moved)
    (baseline,) = [store.ingestion_state("vision", Posted("d1", TARGET))[1]]
    assert baseline is not None and loads == [baseline.id]
    assert "system-changed" in {f.kind for f in drifted.findings}
    third.ingest(Ingestion("vision", TARGET, "d2"), moved)
    assert loads == [baseline.id]  # d2's baseline has the same content: read once
    store.close()


def test_posted_documents_keyed_by_content_only_when_encoded_exactly() -> None:
    from lockd.app.fleet import decode_posted, posted_key

    document = snapshot_doc()
    key = posted_key(document)
    assert key is not None
    assert posted_key({**document, "taken_at": "2030-01-01T00:00:00Z"}) == key
    assert posted_key({**document, "lockd_version": "9"}) != key
    # NaN and infinities: orjson would write null, the key of another document
    for body in (b'{"version": 1, "a": NaN}', b'{"version": 1, "a": -Infinity}', b"[1e400]"):
        assert decode_posted(body)[1] is False
    assert decode_posted(b'{"version": 1, "a": 1.5, "b": null}') == (
        {"version": 1, "a": 1.5, "b": None},
        True,
    )
    assert posted_key({**document, "lockd_version": 2**64}) is None  # orjson: 64 bits
    assert posted_key({**document, "lockd_version": "\udc80"}) is None  # a lone surrogate
    assert posted_key({"probe": 1}) is None  # the probe's output: timed when read
    assert posted_key([document]) is None


def _posts() -> list[tuple[DriftReport, Posted]]:
    """Posts of two deployments over two days: clean, drifted, failed, clean again."""
    from lockd.store.snapshots import SnapshotRecord, snapshot_content

    clean, moved = snapshot_doc(), snapshot_doc(cpu_torch=True)
    cpu = Finding("cpu-wheel", TARGET, "torch", "cuda", "cpu", detail="CPU torch")
    broken = CheckError(TARGET, "live", "the snapshot could not be compared")
    posts = []
    for n, (deployment, day, document, findings, errors) in enumerate(
        [
            ("d1", "2026-11-01", clean, (), ()),
            ("d2", "2026-11-01", clean, (), ()),
            ("d1", "2026-11-01", moved, (cpu,), ()),
            ("d2", "2026-11-02", clean, (), (broken,)),
            ("d1", "2026-11-02", clean, (), ()),
        ]
    ):
        checked_at, taken_at = f"{day}T10:{n:02d}:00Z", f"{day}T09:{n:02d}:30Z"
        digest, content = snapshot_content(document)
        report = DriftReport(
            "vision", "l" * 64, checked_at, findings, errors, checks=(f"live:{TARGET}",)
        )
        snapshot = SnapshotRecord(TARGET, taken_at, digest, content)
        posts.append((report, Posted(deployment, TARGET, snapshot)))
    return posts


def test_a_post_recorded_in_one_statement_writes_the_rows_of_the_general_path(
    postgres: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a deployment's post is recorded by one statement (store/posted.py); the
    same posts recorded statement by statement leave every table the same."""
    from sqlalchemy import event

    from lockd.store import drift_reports

    tables = (
        "drift_reports",
        "snapshots",
        "snapshot_documents",
        "drift_report_targets",
        "drift_days",
        "deployments",
    )
    contents = []
    for one in (True, False):
        if not one:
            monkeypatch.setattr(drift_reports, "one_statement", lambda *_: False)
        with postgres.database() as url:  # type: ignore[attr-defined]
            store = Store(url)
            statements: list[str] = []

            def executed(*args: Any, statements: list[str] = statements) -> None:
                statements.append(args[2])

            event.listen(store.engine, "before_cursor_execute", executed)
            recorded = [store.record_drifts([post])[0] for post in _posts()]
            store.record_drifts(_posts()[:2])  # a batch: two posts in one transaction
            inserts = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "WITH"))]
            if one:  # per post: its content (if new) and one statement for the rest
                assert sum(s.startswith("WITH") for s in inserts) == 7
                assert all(
                    s.startswith("WITH") or "INTO snapshot_documents" in s or "INTO projects" in s
                    for s in inserts
                )
            with store.engine.connect() as conn:
                contents.append(
                    {
                        table: [
                            tuple(row)
                            for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2"))  # noqa: S608
                        ]
                        for table in tables
                    }
                )
            contents[-1]["recorded"] = [(r.report.hash, dict(r.snapshots)) for r in recorded]
            store.close()
    assert contents[0] == contents[1]
    assert len(contents[0]["deployments"]) == 2 and len(contents[0]["drift_days"]) == 2


def test_the_servers_reads_wait_for_no_writer(tmp_path: Path) -> None:
    """SQLite: the token and ingestion-state reads of every request run in a deferred
    transaction, so a writer holding the file's write lock (the other worker's group
    commit) does not hold them up (they took the write lock themselves before)."""
    import sqlite3
    import threading

    store = _store(tmp_path)
    token = create(store, NewToken("reader", "ingest")).token
    writer = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the write lock, held
    answers: list[object] = []
    reads = threading.Thread(
        target=lambda: answers.extend(
            [
                store.token(hash_token(token)),
                store.ingestion_state("vision", Posted("d1", TARGET)),
            ]
        )
    )
    try:
        reads.start()
        reads.join(timeout=10)  # a deadline: the busy handler would wait 30 s
        assert not reads.is_alive()
    finally:
        writer.execute("ROLLBACK")
        reads.join(timeout=60)
        writer.close()
    info, state = answers
    assert info is not None and info.name == "reader"  # type: ignore[attr-defined]
    assert state == (store.latest("vision").hash, None)  # type: ignore[union-attr]
    store.close()


def test_the_servers_reads_open_no_transaction_on_postgresql(postgres: object) -> None:
    """PostgreSQL: the token and ingestion-state reads run in autocommit (no BEGIN and no
    ROLLBACK round trip each)."""
    from sqlalchemy import event

    with postgres.database() as url:  # type: ignore[attr-defined]
        store = Store(url)
        lockset, files = lock_files(fleet_lockset("vision"))
        store.record_lockset(lockset, files)
        token = create(store, NewToken("reader", "ingest")).token
        seen: list[tuple[str, bool]] = []

        def executed(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            autocommit = conn.connection.dbapi_connection.autocommit
            seen.append((statement.split(maxsplit=1)[0], autocommit))

        event.listen(store.engine, "before_cursor_execute", executed)
        assert store.token(hash_token(token)) is not None
        assert store.ingestion_state("vision", Posted("d1", TARGET))[0] == lockset.hash
        assert seen == [("SELECT", True), ("SELECT", True)]
        store.close()


def test_a_server_keeps_its_postgresql_connections_open_between_uses(postgres: object) -> None:
    """Eight request threads reading at once, twice: the second time every connection is
    one of the first time's (SQLAlchemy's default pool closed all but five on return, so
    each burst started PostgreSQL backends anew)."""
    import threading

    with postgres.database() as url:  # type: ignore[attr-defined]
        store = Store(url)
        backends: set[int] = set()

        def burst() -> set[int]:
            held = threading.Barrier(8)
            pids: list[int] = []

            def read() -> None:
                with store.engine.connect() as conn:
                    pids.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
                    held.wait(timeout=60)  # all eight connections checked out at once

            threads = [threading.Thread(target=read) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            return set(pids)

        backends |= burst()
        assert burst() <= backends
        store.close()


def test_a_post_url_with_credentials_is_refused_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """httpx (and urllib) would send the URL's user:password as Basic auth instead of the
    bearer token: the server's 401 would then blame the token."""
    from lockd.app.post import PostRequest, check_post_request
    from lockd.errors import UsageError
    from lockd.snapshot import _probe

    request = PostRequest("https://ci:s3cret@lockd.example/", "vision", TARGET, "d1")
    with pytest.raises(UsageError, match="carries credentials") as refused:
        check_post_request(request, {"LOCKD_TOKEN": "lockd_token"})
    assert "s3cret" not in refused.value.render()
    monkeypatch.setenv("LOCKD_TOKEN", "lockd_token")
    monkeypatch.setattr(_probe, "post", lambda *a: pytest.fail("posted"))
    args = ["--post", "http://ci:s3cret@127.0.0.1:1/", "--project", "vision"]
    assert _probe._main([*args, "--target", TARGET, "--deployment", "d1"]) == 2
    assert "carries credentials" in capsys.readouterr().err
    monkeypatch.setattr(_probe, "post", lambda *a: (0, b"refused"))  # an @ in the query: fine
    args = ["--post", "http://127.0.0.1:1/?note=a@b", "--project", "vision"]
    assert _probe._main([*args, "--target", TARGET, "--deployment", "d1"]) == 3

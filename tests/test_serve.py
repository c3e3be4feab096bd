"""`lockd serve` end to end: the real server (uvicorn in a subprocess) on 127.0.0.1.

One server per module for the API, ingestion and token tests (starting one
costs a couple of seconds of a scarce CPU); the restart and rate-limit tests
start their own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from lockd.app.tokens import hash_token
from lockd.drift import DriftReport
from lockd.store import Store
from tests.conftest import run_lockd
from tests.support.serve import (
    ROOT,
    TARGET,
    Server,
    create_token,
    fleet_lockset,
    lock_files,
    running_server,
    server_env,
    snapshot_doc,
    stop,
)

PROBE = ROOT / "lockd" / "snapshot" / "_probe.py"


@dataclass
class Fleet:
    server: Server
    db: str
    tmp: Path
    ingest: str
    read: str
    admin: str
    expired: str
    locksets: tuple[str, str]  # vision's, oldest first

    def post(
        self, body: bytes | dict[str, object], token: str | None = None, **query: str
    ) -> httpx.Response:
        params = {"project": "vision", "target": TARGET, "deployment": "prod-eu-1", **query}
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        with self.server.client(token if token is not None else self.ingest) as client:
            return client.post("/api/v1/snapshots", params=params, content=content)

    def get(self, path: str, token: str | None = None, **params: str) -> httpx.Response:
        with self.server.client(token if token is not None else self.read) as client:
            return client.get(path, params=params)


def seed(db: str) -> tuple[str, str]:
    store = Store(db)
    try:
        first, files = lock_files(fleet_lockset("vision", numpy="2.0.0"))
        store.record_lockset(first, files)
        second, files = lock_files(fleet_lockset("vision", parent=first.hash))
        store.record_lockset(second, files)
    finally:
        store.close()
    return first.hash, second.hash


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("serve")
    db = f"sqlite:///{tmp / 'lockd.db'}"
    locksets = seed(db)
    tokens = {
        scope: create_token(db, f"t-{scope}", scope, tmp) for scope in ("ingest", "read", "admin")
    }
    expired = "lockd_expired-token-for-the-test"
    store = Store(db)
    store.add_token("t-old", "admin", hash_token(expired), datetime.now(UTC) - timedelta(days=1))
    store.close()
    with running_server(db, tmp) as server:
        yield Fleet(
            server, db, tmp, tokens["ingest"], tokens["read"], tokens["admin"], expired, locksets
        )


# -- ingestion --------------------------------------------------------------------------------


def test_clean_snapshot_is_recorded_and_answered_with_the_drift_report(fleet: Fleet) -> None:
    answer = fleet.post(snapshot_doc(), deployment="clean-1")
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["status"] == "clean" and report["findings"] == []
    assert report["format"] == "lockd.drift/1"
    assert report["lockset"] == fleet.locksets[1]  # the project's newest
    assert report["checks"] == [f"live:{TARGET}"]
    # stored in the chain, with the snapshot and the deployment that sent it
    stored = fleet.get(f"/api/v1/drift-reports/{report['hash']}").json()
    assert stored["status"] == "clean" and stored["parent"] == report["parent"]
    assert [(s["target"], s["deployment"]) for s in stored["snapshots"]] == [(TARGET, "clean-1")]
    listed = fleet.get("/api/v1/deployments", project="vision").json()["deployments"]
    mine = next(d for d in listed if d["deployment"] == "clean-1")
    assert (mine["status"], mine["lockset"], mine["finding_kinds"]) == (
        "clean",
        fleet.locksets[1],
        [],
    )
    assert mine["last_report"] == report["hash"]


def test_drifted_snapshot_reports_the_cpu_torch(fleet: Fleet) -> None:
    answer = fleet.post(snapshot_doc(cpu_torch=True, extra_dists=("leftpad",)), deployment="gpu-7")
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["status"] == "drift"
    assert {(f["kind"], f["package"]) for f in report["findings"]} == {
        ("cpu-wheel", "torch"),
        ("unexpected", "leftpad"),
    }
    listed = fleet.get("/api/v1/deployments", status="drift").json()["deployments"]
    mine = next(d for d in listed if d["deployment"] == "gpu-7")
    assert mine["finding_kinds"] == ["cpu-wheel", "unexpected"] and mine["finding_count"] == 2
    by_status = fleet.get("/api/v1/drift-reports", project="vision", target=TARGET, status="drift")
    assert report["hash"] in [r["hash"] for r in by_status.json()]


def test_a_deployment_is_compared_with_its_own_last_clean_snapshot(fleet: Fleet) -> None:
    assert fleet.post(snapshot_doc(), deployment="drv").json()["status"] == "clean"
    # another deployment on another driver is not "changed"
    assert fleet.post(snapshot_doc(driver="535.1"), deployment="other").json()["status"] == "clean"
    moved = fleet.post(snapshot_doc(driver="560.1"), deployment="drv").json()
    assert [(f["kind"], f["package"], f["expected"], f["actual"]) for f in moved["findings"]] == [
        ("system-changed", "nvidia-driver", "550.54.14", "560.1")
    ]


def test_a_named_lockset_is_used_instead_of_the_newest(fleet: Fleet) -> None:
    report = fleet.post(snapshot_doc(), deployment="pinned", lockset=fleet.locksets[0][:10]).json()
    assert report["lockset"] == fleet.locksets[0]
    assert [(f["kind"], f["package"], f["expected"]) for f in report["findings"]] == [
        ("version-changed", "numpy", "2.0.0")
    ]
    assert fleet.post(snapshot_doc(), deployment="pinned").json()["status"] == "clean"


def test_the_stdlib_probe_posts_from_a_plain_python(fleet: Fleet) -> None:
    """`python3 -I _probe.py --post`: no lockd importable, only the stdlib."""
    env = {**server_env(fleet.tmp), "LOCKD_TOKEN": fleet.ingest}
    proc = subprocess.run(
        [sys.executable, "-I", str(PROBE), "--post", fleet.server.url, "--project", "vision",
         "--target", TARGET, "--deployment", "plain-python"],
        capture_output=True, text=True, env=env, cwd=fleet.tmp, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # this test runner's venv is not the lock
    report = json.loads(proc.stdout)
    assert report["status"] == "drift"
    assert "drift report" in proc.stderr and fleet.ingest not in proc.stderr + proc.stdout
    stored = fleet.get(f"/api/v1/drift-reports/{report['hash']}").json()
    assert stored["snapshots"][0]["deployment"] == "plain-python"
    # what the probe prints with --json is accepted as a body too (curl --data-binary @-)
    printed = subprocess.run(
        [sys.executable, "-I", str(PROBE), "--json"], capture_output=True, check=True, timeout=120
    ).stdout
    assert fleet.post(printed, deployment="curl").status_code == 200


def test_lockd_snapshot_post(fleet: Fleet) -> None:
    env = {**server_env(fleet.tmp), "LOCKD_TOKEN": fleet.ingest}
    args = ["--post", fleet.server.url, "--project", "vision", "--target", TARGET]
    run = subprocess.run(
        [sys.executable, "-m", "lockd", "snapshot", "--no-system", *args, "--deployment", "cli"],
        capture_output=True, text=True, env=env, cwd=fleet.tmp, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert json.loads(run.stdout)["status"] == "drift"
    missing = subprocess.run(
        [sys.executable, "-m", "lockd", "snapshot", *args, "--deployment", "cli"],
        capture_output=True, text=True, env=server_env(fleet.tmp), cwd=fleet.tmp, timeout=120,
        check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "LOCKD_TOKEN" in missing.stderr and "Traceback" not in missing.stderr
    # a server's refusal is an error like any other: the `error:` prefix, exit 2, no output
    wrong = subprocess.run(
        [sys.executable, "-m", "lockd", "snapshot", "--no-system", *args, "--deployment", "cli"],
        capture_output=True, text=True, env={**env, "LOCKD_TOKEN": "lockd_" + "x" * 43},
        cwd=fleet.tmp, timeout=300, check=False,
    )  # fmt: skip
    assert wrong.returncode == 2, wrong.stderr
    assert wrong.stdout == ""
    assert wrong.stderr.startswith("error: The lockd server answered 401: "), wrong.stderr
    assert "LOCKD_TOKEN" in wrong.stderr and "x" * 43 not in wrong.stderr


# -- refusals -----------------------------------------------------------------------------------


def test_tokens_and_scopes(fleet: Fleet) -> None:
    body = snapshot_doc()
    anonymous = fleet.post(body, token="")
    assert anonymous.status_code == 401 and "Bearer" in anonymous.headers["www-authenticate"]
    wrong = "lockd_" + "x" * 43
    refused = fleet.post(body, token=wrong)
    assert refused.status_code == 401 and wrong not in refused.text
    expired = fleet.post(body, token=fleet.expired)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    assert fleet.expired not in expired.text
    reader = fleet.post(body, token=fleet.read)
    assert reader.status_code == 403 and "scope 'read'" in reader.json()["detail"]
    assert fleet.get("/api/v1/projects", token="").status_code == 401
    assert fleet.get("/api/v1/projects", token=fleet.ingest).status_code == 200  # scopes nest
    assert fleet.get("/", token="").status_code == 401
    # the Basic scheme (a browser's) carries the token as the password
    with httpx.Client(base_url=fleet.server.url, auth=("me", fleet.read)) as browser:
        assert browser.get("/").status_code == 200
    # revoked while the server runs: refused at the next request
    victim = create_token(fleet.db, "short-lived", "ingest", fleet.tmp)
    assert fleet.post(body, token=victim, deployment="rev").status_code == 200
    revoke = subprocess.run(
        [sys.executable, "-m", "lockd", "tokens", "revoke", "short-lived", "--db", fleet.db],
        capture_output=True, text=True, env=server_env(fleet.tmp), timeout=120, check=False,
    )  # fmt: skip
    assert revoke.returncode == 0, revoke.stderr
    gone = fleet.post(body, token=victim, deployment="rev")
    assert gone.status_code == 401 and "revoked" in gone.json()["detail"]
    # a token pasted into any query parameter is masked by its prefix too
    assert fleet.get("/api/v1/projects", x=fleet.read).status_code == 200
    assert fleet.get("/api/v1/projects", **{fleet.read: ""}).status_code == 200  # a bare key
    # nothing of any token in the log
    log = fleet.server.log_text()
    for secret in (wrong, fleet.expired, victim, fleet.ingest, fleet.read):
        assert secret not in log
    assert '"token": "t-ingest"' in log  # the name is logged, not the token


def test_token_list_never_shows_tokens(fleet: Fleet) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "lockd", "tokens", "list", "--db", fleet.db, "--format", "json"],
        capture_output=True, text=True, env=server_env(fleet.tmp), timeout=120, check=True,
    )  # fmt: skip
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["t-read"]["scope"] == "read" and rows["t-read"]["state"] == "active"
    assert rows["t-old"]["state"] == "expired"
    assert fleet.read not in listed.stdout
    with Store(fleet.db) as store:
        hashes = {info.name for info in store.tokens()}
    assert {"t-read", "t-ingest", "t-admin"} <= hashes
    digest = hashlib.sha256(fleet.read.encode()).hexdigest()
    raw = Path(fleet.db.removeprefix("sqlite:///")).read_bytes()
    assert fleet.read.encode() not in raw and digest.encode() in raw


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"not json at all", 400, "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (
            json.dumps({"version": "lockd.snapshot/9"}).encode(),
            400,
            "format version lockd.snapshot/9",
        ),
        (json.dumps({"version": "SECRET-ish text"}).encode(), 400, "not a snapshot format version"),
        (json.dumps({"version": "lockd.snapshot/1", "dists": 3}).encode(), 400, "malformed"),
        (json.dumps({"probe": 1, "python": {}}).encode(), 400, "stdlib probe"),
        (json.dumps([1, 2]).encode(), 400, "not a lockd snapshot"),
    ],
)
def test_garbage_bodies_are_refused_and_the_server_stays_up(
    fleet: Fleet, body: bytes, status: int, words: str
) -> None:
    answer = fleet.post(body, deployment="garbage")
    assert answer.status_code == status, answer.text
    assert words in answer.json()["detail"]
    assert "SECRET" not in answer.text  # a posted field's value is never repeated
    assert fleet.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ({"project": "nope"}, 404, "has no lockset"),
        ({"target": "linux-x86_64-py312-cpu"}, 404, "has no target"),
        ({"target": "not-a-target"}, 400, "Unknown target"),
        ({"deployment": "x" * 500}, 400, "1 to 200 printable characters"),
        ({"deployment": "tab\there"}, 400, "printable"),
        ({"deployment": "line\u2028separator"}, 400, "printable"),  # what compile refuses too
    ],
)
def test_bad_names_are_refused(
    fleet: Fleet, query: dict[str, str], status: int, words: str
) -> None:
    answer = fleet.post(snapshot_doc(), **query)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["detail"]


HOSTILE = "<script>alert(1)</script>" + "x" * 20_000


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/locksets/" + HOSTILE, {}),
        ("/api/v1/drift-reports/" + HOSTILE, {}),
        ("/api/v1/drift-reports", {"since": HOSTILE}),
        ("/api/v1/audit", {"since": HOSTILE}),
        ("/api/v1/locksets", {"offset": "9" * 40}),
        ("/projects/" + HOSTILE, {}),
        ("/reports/" + HOSTILE, {}),
    ],
)
def test_hostile_request_values_are_refused_without_being_echoed(
    fleet: Fleet, path: str, params: dict[str, str]
) -> None:
    """Whatever a caller puts in a path or query comes back cut short, if at all: never
    whole (a 20 KB name), never as markup in a page, never a 500."""
    with fleet.server.client(fleet.read) as client:
        answer = client.get(path, params=params)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    assert "x" * 200 not in answer.text
    if answer.headers["content-type"].startswith("text/html"):
        assert "<script>" not in answer.text and "&lt;script&gt;" in answer.text
    assert fleet.get("/healthz").status_code == 200


def test_missing_parameters_are_named_not_echoed(fleet: Fleet) -> None:
    with fleet.server.client(fleet.ingest) as client:
        answer = client.post("/api/v1/snapshots", params={"project": "vision"}, content=b"{}")
    assert answer.status_code == 400
    assert "target" in answer.json()["detail"] and "deployment" in answer.json()["detail"]


def _raw_post(server: Server, token: str, head: bytes, chunks: list[bytes]) -> bytes:
    """A hand-written request on a socket: what a client that keeps sending does."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(
            b"POST /api/v1/snapshots?project=vision&target=" + TARGET.encode()
            + b"&deployment=big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
            + b"\r\nContent-Type: application/json\r\n" + head + b"\r\n"
        )  # fmt: skip
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the rest: as it should
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return answer


def _length(answer: bytes) -> int:
    """The Content-Length an answer's head announces (0 until the head is complete)."""
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    return next(
        (
            int(line.split(":", 1)[1])
            for line in head.splitlines()
            if line.startswith("content-length:")
        ),
        0,
    )


def test_oversized_bodies_get_413_and_the_server_stays_up(fleet: Fleet) -> None:
    limit = 16 * 1024 * 1024
    declared = _raw_post(
        fleet.server, fleet.ingest, f"Content-Length: {limit + 1}\r\n".encode(), [b"{" * 65536]
    )
    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
    # chunked, no length announced: refused while it streams in, not after
    chunk = b"x" * (1024 * 1024)
    frames = [b"%x\r\n" % len(chunk) + chunk + b"\r\n"] * 17 + [b"0\r\n\r\n"]
    streamed = _raw_post(fleet.server, fleet.ingest, b"Transfer-Encoding: chunked\r\n", frames)
    assert streamed.startswith(b"HTTP/1.1 413"), streamed[:200]
    # Both in the one error shape of the API.
    for answer in (declared, streamed):
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"content-type: application/json" in head.lower(), head
        assert json.loads(body) == {
            "detail": f"The request body is larger than this server's limit of {limit} bytes "
            "(LOCKD_SERVE_BODY_LIMIT)."
        }
    assert fleet.get("/healthz").status_code == 200
    assert fleet.post(snapshot_doc(), deployment="after-413").status_code == 200


# -- reading ----------------------------------------------------------------------------------


def test_locksets_files_diff_sbom_and_audit(fleet: Fleet) -> None:
    first, second = fleet.locksets
    listed = fleet.get("/api/v1/locksets", project="vision").json()
    assert [s["hash"] for s in listed] == [second, first]
    shown = fleet.get(f"/api/v1/locksets/{second[:8]}").json()
    assert shown["hash"] == second and shown["parent"] == first
    diff = fleet.get(f"/api/v1/locksets/{second}/diff").json()
    assert diff["targets"][TARGET]["upgraded"] == [
        {"name": "numpy", "from": "2.0.0", "to": "2.1.0"}
    ]
    assert fleet.get(f"/api/v1/locksets/{first}/diff").json() is None  # the first of its chain
    name = f"pylock.{TARGET}.toml"
    download = fleet.get(f"/api/v1/locksets/{second}/files/{name}")
    assert download.status_code == 200 and download.text == f"# {name} of vision\n"
    assert download.headers["content-disposition"] == f'attachment; filename="{name}"'
    manifest = fleet.get(f"/api/v1/locksets/{second}/files/lockd.json").json()
    assert manifest["hash"] == second
    for hostile in ("..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "lockd.db"):
        assert fleet.get(f"/api/v1/locksets/{second}/files/{hostile}").status_code == 404
    sbom = fleet.get(f"/api/v1/locksets/{second}/sbom").json()
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.6"
    for fmt, marker in (("markdown", "# "), ("html", "<!DOCTYPE html>"), ("json", '{"')):
        audit = fleet.get("/api/v1/audit", project="vision", format=fmt)
        assert audit.status_code == 200 and audit.text.startswith(marker), fmt
    cdx = fleet.get("/api/v1/audit", project="vision", format="cyclonedx").json()
    assert cdx["bomFormat"] == "CycloneDX"
    assert fleet.get("/api/v1/images", project="vision").json() == []
    assert fleet.get("/api/v1/locksets/ffff0000").status_code == 404


def test_errors_name_neither_the_database_nor_a_cli_command(fleet: Fleet) -> None:
    """A read token learns nothing of where the server keeps its database, and is not told
    to run commands it cannot run; the CLI keeps its messages."""
    second = fleet.locksets[1]
    answers = [
        fleet.get(f"/api/v1/locksets/{second[:10]}/diff", against="nope"),
        fleet.get("/api/v1/locksets/ffff0000"),
        fleet.post(snapshot_doc(), project="nope"),
    ]
    path = str(fleet.tmp / "lockd.db")
    for answer in answers:
        assert answer.status_code == 404, answer.text
        detail = answer.json()["detail"]
        assert "sqlite" not in detail and path not in detail and "`lockd" not in detail, detail
    assert answers[0].json()["detail"] == "No lockset 'nope' in this server's database."
    page = fleet.get("/locksets/nope")  # the dashboard's error page says the same
    assert page.status_code == 404 and path not in page.text and "`lockd" not in page.text
    cli = run_lockd("diff", second[:10], "nope", cwd=fleet.tmp, env={
        **server_env(fleet.tmp), "LOCKD_DATABASE_URL": fleet.db})  # fmt: skip
    assert cli.returncode != 0 and path in cli.stderr and "`lockd history`" in cli.stderr


def test_a_stored_lock_file_that_was_altered_is_not_served(fleet: Fleet, tmp_path: Path) -> None:
    from sqlalchemy import text

    db = f"sqlite:///{tmp_path / 'altered.db'}"
    _, second = seed(db)
    with Store(db) as store, store.engine.begin() as conn:
        conn.execute(text("UPDATE lock_files SET content = 'evil' WHERE name LIKE 'pylock%'"))
    from lockd.app.record import lock_file
    from lockd.errors import StoreError

    with Store(db) as store, pytest.raises(StoreError, match="does not match"):
        lock_file(store, store.get(second), f"pylock.{TARGET}.toml")


def test_drift_report_filters(fleet: Fleet) -> None:
    fleet.post(snapshot_doc(), deployment="filters")
    everything = fleet.get("/api/v1/drift-reports", project="vision", limit="1000").json()
    assert everything and all(r["project"] == "vision" for r in everything)
    clean = fleet.get("/api/v1/drift-reports", status="clean").json()
    assert clean and {r["status"] for r in clean} == {"clean"}
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert fleet.get("/api/v1/drift-reports", since=future).json() == []
    assert fleet.get("/api/v1/drift-reports", since="1h").json()
    assert fleet.get("/api/v1/drift-reports", target="linux-aarch64-py311-cpu").json() == []
    refused = fleet.get("/api/v1/drift-reports", since="soon")
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith("Query parameter since 'soon' is not a date")
    assert "--since" not in refused.json()["detail"] and "since=7d" in refused.json()["detail"]
    assert fleet.get("/api/v1/drift-reports", since="0h").status_code == 400  # as --since 0h
    assert fleet.get("/api/v1/audit", since="7d", format="json").status_code == 200
    until = fleet.get("/api/v1/audit", until="later")
    assert until.status_code == 400 and "Query parameter until 'later'" in until.json()["detail"]
    for path in ("/api/v1/drift-reports", "/api/v1/deployments"):
        weird = fleet.get(path, status="weird")  # a bad parameter is a 400, whichever check
        assert weird.status_code == 400 and "status" in weird.json()["detail"]
    page = fleet.get("/deployments", status="weird")  # the dashboard's page says so too
    assert page.status_code == 400 and "Unknown status" in page.text


def test_probes_metrics_docs_and_cors(fleet: Fleet) -> None:
    fleet.post(snapshot_doc(cpu_torch=True), deployment="metrics")
    assert fleet.get("/readyz", token="").json() == {"status": "ready"}
    assert fleet.get("/metrics", token="").status_code == 401
    metrics = fleet.get("/metrics").text
    assert 'lockd_snapshots_ingested_total{status="drift"}' in metrics
    assert 'lockd_findings_total{kind="cpu-wheel"}' in metrics
    assert 'lockd_deployments{status="drift"}' in metrics
    assert (
        'lockd_http_request_duration_seconds_bucket{le="0.25",method="POST",route="/api/v1/snapshots",status="200"}'
        in metrics
    )
    assert fleet.get("/docs", token="").status_code == 200
    paths = fleet.get("/openapi.json", token="").json()["paths"]
    assert "/api/v1/snapshots" in paths and "/api/v1/deployments" in paths
    names = {
        p["name"] for ops in paths.values() for op in ops.values() for p in op.get("parameters", [])
    }
    assert not names & {"path", "file", "filename", "dir", "directory"}  # no server file paths
    # CORS is off by default: no Access-Control-Allow-Origin, preflights are not answered
    with fleet.server.client(fleet.read) as client:
        cross = client.get("/api/v1/projects", headers={"Origin": "https://evil.example"})
        preflight = client.options(
            "/api/v1/projects",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
    assert "access-control-allow-origin" not in cross.headers
    assert "access-control-allow-origin" not in preflight.headers
    assert fleet.get("/probe.py", token="").text.startswith('"""Stdlib-only probe')


def test_access_log_is_json_lines(fleet: Fleet) -> None:
    fleet.get("/api/v1/projects", secret_token="hunter2")
    lines = [
        json.loads(line) for line in fleet.server.log_text().splitlines() if line.startswith("{")
    ]
    access = [line for line in lines if line["logger"] == "lockd.access"]
    assert access and all(
        {"method", "path", "status", "duration_ms"} <= set(a["http"]) for a in access
    )
    assert "hunter2" not in fleet.server.log_text()


# -- rate limit, restart ------------------------------------------------------------------------


def test_rate_limit_per_token(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'rl.db'}"
    seed(db)
    fast, slow = (create_token(db, name, "read", tmp_path) for name in ("fast", "slow"))
    env = server_env(tmp_path, LOCKD_SERVE_RATE_LIMIT="0.5")  # burst 1, then one per 2 s
    with running_server(db, tmp_path, env=env) as server, server.client(fast) as client:
        assert client.get("/api/v1/projects").status_code == 200
        limited = client.get("/api/v1/projects")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        with server.client(slow) as other:  # another token has its own bucket
            assert other.get("/api/v1/projects").status_code == 200


def test_restart_keeps_everything(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'restart.db'}"
    seed(db)
    # a database without a token (a mistyped --db makes a new one): said at start
    with running_server(db, tmp_path) as tokenless:
        assert "holds no active token" in tokenless.log_text()
    token = create_token(db, "ci", "admin", tmp_path)
    params = {"project": "vision", "target": TARGET, "deployment": "keeps"}
    with running_server(db, tmp_path) as server, server.client(token) as client:
        posted = client.post("/api/v1/snapshots", params=params, json=snapshot_doc()).json()
        before = client.get("/api/v1/deployments").json()["deployments"]
        code = stop(server)
    # SIGTERM: uvicorn's graceful shutdown, which then exits by the signal it caught
    assert code in (0, -15)
    assert "Application shutdown complete" in server.log_text()
    assert "holds no active token" not in server.log_text()
    with running_server(db, tmp_path) as again, again.client(token) as client:
        assert client.get("/api/v1/deployments").json()["deployments"] == before
        assert client.get(f"/api/v1/drift-reports/{posted['hash']}").json()["status"] == "clean"
        second = client.post("/api/v1/snapshots", params=params, json=snapshot_doc()).json()
        assert second["parent"] == posted["hash"]  # the chain goes on


def test_several_workers_share_the_database_and_the_metrics(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'workers.db'}"
    seed(db)
    token = create_token(db, "ci", "admin", tmp_path)
    with running_server(db, tmp_path, "--workers", "2", "--public-read") as server:
        posted = set()
        for n in range(6):  # a connection each: the kernel spreads them over the workers
            with server.client(token) as client:
                params = {"project": "vision", "target": TARGET, "deployment": f"w{n % 3}"}
                answer = client.post("/api/v1/snapshots", params=params, json=snapshot_doc())
                assert answer.status_code == 200, answer.text
                posted.add(answer.json()["hash"])
        with server.client() as anonymous:  # --public-read reached the workers
            deployments = anonymous.get("/api/v1/deployments").json()["deployments"]
            metrics = anonymous.get("/metrics").text
        reports = fleet_reports(db)
    assert len(posted) == 6 and {d["deployment"] for d in deployments} == {"w0", "w1", "w2"}
    assert 'lockd_snapshots_ingested_total{status="clean"} 6.0' in metrics  # summed
    assert [r.parent for r in reports][:-1] == [r.hash for r in reports][1:]  # one chain


def test_a_client_keeping_connections_open_reaches_every_worker(tmp_path: Path) -> None:
    """Connections a client opens at once and keeps (a load balancer's keep-alive pool) are
    spread over the workers, even while one is still starting: each worker listens on its
    own socket. On uvicorn's one shared socket a pool opened as the first worker came up
    stayed with that worker for good."""
    db = f"sqlite:///{tmp_path / 'spread.db'}"
    seed(db)
    with running_server(db, tmp_path, "--workers", "2") as server:
        host, port = server.url.removeprefix("http://").split(":")
        pool = [socket.create_connection((host, int(port))) for _ in range(16)]
        try:
            for _ in range(3):  # each connection used again: keep-alive, as a pool does
                assert all(_healthz(conn).startswith(b"HTTP/1.1 200") for conn in pool)
        finally:
            for conn in pool:
                conn.close()
        workers = _workers(server.process.pid)
        listening = {pid: _listening_sockets(pid, int(port)) for pid in workers}
        time.sleep(0.5)  # the access lines are written after the answers
        pids = _access_pids(server)
        # A worker that dies is replaced on its own socket.
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = {pid: _listening_sockets(pid, int(port)) for pid in _workers(server.process.pid)}
            if workers[0] not in now and sorted(map(sorted, now.values())) == sorted(
                map(sorted, listening.values())
            ):
                break
            time.sleep(0.1)  # a poll interval, not a wait for the server
        else:
            raise AssertionError(f"no worker took over socket {listening[workers[0]]}: {now}")
    assert f"lockd serve running on http://{host}:{port} (2 workers" in server.log_text()
    assert len(workers) == 2 and all(len(found) == 1 for found in listening.values()), listening
    assert len(set.union(*listening.values())) == 2, listening  # a socket each
    assert len(pids) == 48, pids
    counts = sorted(Counter(pids).values())
    assert len(counts) == 2 and counts[0] >= 6, counts  # both workers took connections


def _healthz(conn: socket.socket) -> bytes:
    conn.sendall(b"GET /healthz?from=pool HTTP/1.1\r\nHost: lockd\r\n\r\n")
    answer = b""
    while not answer.endswith(b"}"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer


def _access_pids(server: Server) -> list[int]:
    lines = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
    return [
        line["pid"]
        for line in lines
        if line.get("logger") == "lockd.access" and line["http"]["query"] == "from=pool"
    ]


def _workers(parent: int) -> list[int]:
    """The server's worker processes (its children but multiprocessing's resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == parent and b"resource_tracker" not in cmdline:
            found.append(int(stat.parent.name))
    return found


def _listening_sockets(pid: int, port: int) -> set[str]:
    """The inodes of the TCP sockets ``pid`` holds that listen on ``port`` (none once it is
    gone)."""
    try:
        rows = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
        held = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                held.add(fd.readlink().name.removeprefix("socket:[").rstrip("]"))
    except OSError:
        return set()
    listening = {
        fields[9]
        for fields in map(str.split, rows)
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port
    }
    return listening & held


def fleet_reports(db: str) -> list[DriftReport]:
    with Store(db) as store:
        return store.drift_reports("vision")


def test_an_address_in_use_is_one_paragraph_and_a_usage_error(tmp_path: Path) -> None:
    from tests.conftest import hermetic_env, run_lockd

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = run_lockd(
            "serve", "--port", str(port), "--db", f"sqlite:///{tmp_path / 'x.db'}",
            cwd=tmp_path, env=hermetic_env(tmp_path),
        )  # fmt: skip
    assert run.returncode == 2, run.output
    assert f"cannot listen on 127.0.0.1:{port}: something else already listens there" in (
        run.stderr
    )
    assert "Traceback" not in run.output and not (tmp_path / "x.db").exists()


def test_a_second_server_on_the_same_port_is_refused_not_given_half_the_connections() -> None:
    """SO_REUSEPORT lets any process of the same user bind beside a server's sockets, and
    the kernel would split the connections between the two servers (two instances started
    at once, e.g. overlapping restarts): the second sees the first and refuses."""
    import errno

    from lockd.server.workers import bind_listeners

    first = bind_listeners("127.0.0.1", 0, 2, 16)
    try:
        port = first[0].getsockname()[1]
        with pytest.raises(OSError) as refused:  # as another process would
            bind_listeners("127.0.0.1", port, 2, 16)
        assert refused.value.errno == errno.EADDRINUSE
        with socket.create_connection(("127.0.0.1", port)):  # the first still listens
            pass
    finally:
        for listener in first:
            listener.close()


def test_an_address_taken_after_the_check_is_one_paragraph_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers' sockets are bound after the address was checked: taken in between
    (a race), it is the same usage error, with no socket left open."""
    from lockd.errors import UsageError
    from lockd.server import run

    monkeypatch.setattr(run, "_check_address", lambda host, port: None)
    monkeypatch.setenv("LOCKD_HOME", str(tmp_path / "home"))
    for name in ("LOCKD_DATABASE_URL", "LOCKD_SERVE_PUBLIC_READ", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.setenv(name, "")  # serve() sets them for its workers: restored after
        monkeypatch.delenv(name)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        request = run.ServeRequest(f"sqlite:///{tmp_path / 'x.db'}", port=port, workers=2)
        with pytest.raises(UsageError, match=f"cannot listen on 127.0.0.1:{port}"):
            run.serve(request)

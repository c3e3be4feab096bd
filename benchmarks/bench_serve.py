"""Benchmark ``lockd serve``: sustained snapshot ingestion, and the dashboard's first page.

Usage (from the repository root, after ``./scripts/setup``; needs Debian's
``wrk``, no network)::

    .venv/bin/python benchmarks/bench_serve.py [--duration 60] [--connections 8]
        [--dists 300] [--workers 2] [--db URL | --postgres] [--distinct]
        [--skip-dashboard] [--skip-ingest]

Ingestion: a SQLite (or ``--db``) database with one project whose newest
lockset locks ``--dists`` packages for one target; a ``--dists``-dist
snapshot that matches it (with system facts: 250 Debian packages, 400
ld.so cache entries) is posted by ``wrk`` (C, one thread, ``--connections``
keep-alive connections; a Lua script names one of 1,000 deployments per
request and sets ``taken_at`` to the time of the post, as the probe does)
to ``POST /api/v1/snapshots`` of a real ``lockd serve`` on
127.0.0.1 for ``--duration`` seconds. Every request is checked, compared,
recorded (report, snapshot, deployment, index) and answered with the report.
wrk reports throughput and the latency distribution; the server's log tells
the statuses. By default every post has the same content (but for
``taken_at``), as replicas of one deployment post; with ``--distinct`` every
post's content is new (one ld.so cache entry's path carries the request's
number: still clean, but read, compared, encoded and stored afresh). Side by
side: what a user would otherwise run per snapshot, ``lockd drift --snapshot
FILE --no-creep --no-images`` (median of 5).

Dashboard: a database with 100 projects × 100 locksets (10,000) and 1,000
deployments (each with a report); the median and maximum of 20 ``GET /``
after a warm-up, and side by side ``lockd history --format json`` over the
same database.

Besides the server's CPU per snapshot it prints PostgreSQL's (``--postgres``:
every backend, the WAL writer…), wrk's and the whole machine's (everyone's, from
``/proc/stat``): on a shared machine CPU per snapshot is steadier than throughput.
``PYTHONPATH=OTHER_CHECKOUT`` runs another checkout's lockd (server, setup and
CLI) under this script: side-by-side runs of two commits.

Prints a Markdown report; paste it into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Appended, not prepended: PYTHONPATH=OTHER_CHECKOUT runs another checkout's lockd (server
# and setup) under this script, for side-by-side runs of two commits.
sys.path.append(str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from lockd.app.fleet import Fleet, Ingestion  # noqa: E402
from lockd.app.tokens import NewToken, create  # noqa: E402
from lockd.lockset import Artifact, InputFile, Lock, Lockset, Provenance  # noqa: E402
from lockd.store import Store  # noqa: E402

TARGET = "linux-x86_64-py311-cpu"
PYPI = "https://pypi.example/simple"

LUA = """
local template = io.open(os.getenv("BENCH_BODY"), "rb"):read("*a")
local distinct = os.getenv("BENCH_DISTINCT") == "1"
local token = os.getenv("BENCH_TOKEN")
local n = 0
request = function()
  n = n + 1
  local path = "/api/v1/snapshots?project=bench&target=@TARGET@&deployment=d" .. (n % 1000)
  -- taken now, as the probe does: no two posts of a deployment are the same bytes
  local body = template:gsub("@TAKEN_AT@", os.date("!%Y-%m-%dT%H:%M:%SZ"), 1)
  if distinct then body = body:gsub("@CONTENT@", tostring(n), 1) end
  return wrk.format("POST", path, {["Authorization"] = "Bearer " .. token,
                                   ["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("BENCH requests=%d errors_status=%d errors_other=%d "
    .. "p50=%.1f p90=%.1f p99=%.1f max=%.1f duration_s=%.2f\\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, summary.duration / 1e6))
end
""".replace("@TARGET@", TARGET).replace("@TAKEN_AT@", "2026%-11%-30T00:00:00Z")


def lockset(project: str, n: int, parent: str | None, artifacts: int) -> Lockset:
    arts = tuple(
        Artifact(
            f"pkg{i:03d}",
            f"1.{n}.0" if i == 0 else "1.0.0",
            PYPI,
            f"{PYPI}/pkg{i:03d}-1.0.0-py3-none-any.whl",
            f"pkg{i:03d}-1.0.0-py3-none-any.whl",
            f"{i:064x}",
        )
        for i in range(artifacts)
    )
    return Lockset(
        project=project,
        inputs=(InputFile("requirements.in", "c" * 64),),
        requirements=tuple(a.name for a in arts),
        targets=(TARGET,),
        resolver="uv",
        resolver_version="0.13.9",
        indexes={"default": PYPI},
        cutoff="2026-11-01T00:00:00Z",
        input_key=f"{project}-{n}",
        provenance=Provenance("bench", "host", f"2026-11-01T00:{n // 60 % 60:02d}:{n % 60:02d}Z"),
        locks=(Lock(TARGET, arts, flavour="cpu"),),
        parent=parent,
    )


def snapshot(dists: int) -> dict[str, Any]:
    """A snapshot matching ``lockset(…, n=0, …)`` of ``dists`` packages, with system facts."""

    def probe(value: Any) -> dict[str, Any]:
        return {"status": "available", "value": value}

    site = "/opt/venv/lib/python3.11/site-packages"
    return {
        "version": "lockd.snapshot/1",
        "taken_at": "2026-11-30T00:00:00Z",
        "lockd_version": "0.1.0",
        "python": {
            "executable": "/opt/venv/bin/python",
            "version": "3.11.7",
            "implementation": "cpython",
            "implementation_version": "3.11.7",
            "prefix": "/opt/venv",
            "base_prefix": "/usr/local",
            "platform": "linux-x86_64",
            "machine": "x86_64",
            "soabi": "cpython-311-x86_64-linux-gnu",
            "pointer_bits": 64,
            "site_packages": [site],
            "sys_path": ["/usr/local/lib/python311.zip", site],
        },
        "dists": [
            {
                "name": f"pkg{i:03d}",
                "version": "1.0.0",
                "installer": "uv",
                "direct_url": None,
                "record_sha256": f"{i:064x}",
                "location": site,
                "metadata_dir": f"pkg{i:03d}-1.0.0.dist-info",
            }
            for i in range(dists)
        ],
        "shadowed": [],
        "torch": {"status": "unavailable", "reason": "torch is not installed in /opt/venv"},
        "system": probe(
            {
                "os_release": probe({"ID": "debian", "VERSION_ID": "12", "PRETTY_NAME": "Debian"}),
                "glibc": probe("2.36"),
                "dpkg": probe([[f"libpkg{i}", f"{i}.0-1", "amd64"] for i in range(250)]),
                "ld_cache": probe(
                    [
                        [f"lib{i}.so.1", "libc6,x86-64", f"/usr/lib/x86_64-linux-gnu/lib{i}.so.1"]
                        for i in range(400)
                    ]
                ),
                "driver": {"status": "unavailable", "reason": "no NVIDIA driver"},
                "cuda": {"status": "unavailable", "reason": "no toolkit"},
                "libraries": probe(
                    {"roots": [site], "scanned": 1500, "unresolved": [], "system": {}}
                    | {"skipped": []}
                ),
            }
        ),
    }


def cpu_seconds(pid: int, kind: str = "user+system") -> float:
    """User + system (or ``user``, ``system``) CPU time of a process and its descendants,
    live or ended and waited for (Linux /proc)."""
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, seconds)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # its own time and its children's that ended (a database's closed sessions)
            ticks = {
                "user": int(fields[11]) + int(fields[13]),
                "system": int(fields[12]) + int(fields[14]),
            }
            seconds = sum(ticks[k] for k in kind.split("+")) / os.sysconf("SC_CLK_TCK")
            stats[int(entry.name)] = (int(fields[1]), seconds)
    tree, total, grew = {pid}, 0.0, True
    while grew:
        more = {p for p, (parent, _) in stats.items() if parent in tree} - tree
        grew = bool(more)
        tree |= more
    for member in tree:
        total += stats.get(member, (0, 0.0))[1]
    return total


def machine_busy_seconds() -> float:
    """CPU-seconds every CPU of the machine spent not idle since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Running:
    url: str
    pid: int


@contextmanager
def server(db: str, work: Path, env: dict[str, str]) -> Iterator[Running]:
    from tests.support.registry import free_port

    port = free_port()
    log = (work / f"serve-{port}.log").open("wb")
    workers = os.environ.get("BENCH_WORKERS", "1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lockd",
            "serve",
            "--port",
            str(port),
            "--db",
            db,
            "--workers",
            workers,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=work,  # not the checkout: `-m lockd` would import it before PYTHONPATH's
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    else:
        raise SystemExit("lockd serve did not start")
    try:
        yield Running(url, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def ingest(  # noqa: PLR0915 - one measured run, start to end
    args: argparse.Namespace, work: Path, env: dict[str, str], database_pid: int | None = None
) -> list[str]:
    db = args.db or f"sqlite:///{work / 'ingest.db'}"
    with Store(db) as store:
        store.record_lockset(lockset("bench", 0, None, args.dists))
        token = create(store, NewToken(f"bench-{time.time_ns()}", "ingest")).token
    body = work / "snapshot.json"
    document = snapshot(args.dists)
    if args.distinct:  # a path in the ld.so cache that wrk numbers per post
        document["system"]["value"]["ld_cache"]["value"][0][2] += "-@CONTENT@"
    body.write_text(json.dumps(document))
    script = work / "post.lua"
    script.write_text(LUA)
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    lines = [
        f"### Ingestion: {args.dists}-dist snapshots, {args.duration} s, "
        f"{args.connections} connections, {args.workers} server processes "
        f"({db.split(':', 1)[0].split('+')[0]}; "
        + ("every post a new content)" if args.distinct else "the same content posted again)"),
        "",
    ]
    with server(db, work, env) as running:
        url = running.url
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            params = {"project": "bench", "target": TARGET, "deployment": "warm-up"}
            first = client.post("/api/v1/snapshots", params=params, content=body.read_bytes())
            if first.status_code != 200 or first.json()["status"] != "clean":
                raise SystemExit(f"the warm-up snapshot was not clean: {first.text[:500]}")
        cpu_before, load_before = cpu_seconds(running.pid), os.getloadavg()[0]
        system_before = cpu_seconds(running.pid, "system")
        database_before = cpu_seconds(database_pid) if database_pid else 0.0
        wrk_before, busy_before = children_cpu_seconds(), machine_busy_seconds()
        run = subprocess.run(
            [wrk, "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "10s",
             "-s", str(script), url],
            env={
                **os.environ,
                "BENCH_BODY": str(body),
                "BENCH_TOKEN": token,
                "BENCH_DISTINCT": "1" if args.distinct else "0",
            },
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        cpu = cpu_seconds(running.pid) - cpu_before
        system = cpu_seconds(running.pid, "system") - system_before
        busy = machine_busy_seconds() - busy_before
        wrk_cpu = children_cpu_seconds() - wrk_before
        database_cpu = cpu_seconds(database_pid) - database_before if database_pid else 0.0
        load = (load_before + os.getloadavg()[0]) / 2
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            metrics = client.get("/metrics").text
    with Store(db) as store, store.engine.connect() as conn:
        contents = conn.execute(sa.text("SELECT count(*) FROM snapshot_documents")).scalar_one()
        sessions = (
            conn.execute(
                sa.text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            ).scalar_one()
            if database_pid
            else None
        )
    found = re.search(r"BENCH (.*)", run.stdout)
    if found is None:
        raise SystemExit(f"wrk printed no summary:\n{run.stdout}{run.stderr}")
    stats = dict(item.split("=") for item in found.group(1).split())
    requests, seconds = int(stats["requests"]), float(stats["duration_s"])
    clean = sum(
        float(v)
        for v in re.findall(r'lockd_snapshots_ingested_total\{status="clean"\} (\S+)', metrics)
    )
    lines += [
        "| measure | value |",
        "| --- | ---: |",
        f"| snapshots answered | {requests} in {seconds:.1f} s |",
        f"| throughput | **{requests / seconds:.1f} snapshots/s** |",
        f"| latency p50 / p90 / p99 / max | {stats['p50']} / {stats['p90']} / "
        f"**{stats['p99']}** / {stats['max']} ms |",
        f"| non-2xx answers / socket errors | {stats['errors_status']} / {stats['errors_other']} |",
        f"| recorded clean (server's counter, warm-up included) | {clean:.0f} |",
        f"| snapshot body | {body.stat().st_size / 1024:.0f} KiB |",
        f"| snapshot contents stored (warm-up included) | {contents} |",
        f"| server CPU per snapshot (user + system) | {cpu / requests * 1000:.1f} ms "
        f"({system / requests * 1000:.1f} ms system): "
        f"{requests / cpu:.0f} snapshots/s per CPU-second |",
        *(
            [
                f"| PostgreSQL CPU per snapshot (every backend, WAL writer…) | "
                f"{database_cpu / requests * 1000:.1f} ms |"
            ]
            if database_pid
            else []
        ),
        *([f"| PostgreSQL sessions opened (whole run) | {sessions} |"] if sessions else []),
        f"| wrk CPU per snapshot | {wrk_cpu / requests * 1000:.1f} ms |",
        f"| whole machine's busy CPU per snapshot (everyone's) | "
        f"{busy / requests * 1000:.1f} ms ({busy / seconds:.2f} of {os.cpu_count()} CPUs) |",
        f"| machine load average during the run | {load:.1f} (on {os.cpu_count()} CPUs) |",
    ]
    cli = []
    for n in range(5):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "lockd", "drift", "--db", db, "--project", "bench",
             "--target", TARGET, "--snapshot", str(body), "--no-creep", "--no-images",
             "--format", "json"],
            env=env, capture_output=True, check=True, cwd=work,
        )  # fmt: skip
        cli.append(time.perf_counter() - start)
        del n
    lines += [
        "",
        f"Side by side, one `lockd drift --snapshot FILE --no-creep --no-images` per snapshot: "
        f"{statistics.median(cli):.2f} s each (median of 5), "
        f"{1 / statistics.median(cli):.1f} snapshots/s.",
        "",
    ]
    return lines


def dashboard(args: argparse.Namespace, work: Path, env: dict[str, str]) -> list[str]:
    db = f"sqlite:///{work / 'dashboard.db'}"
    started = time.perf_counter()
    with Store(db) as store:
        for p in range(100):
            parent = None
            for n in range(100):
                made = lockset(f"project-{p:03d}", n, parent, 5)
                store.record_lockset(made)
                parent = made.hash
        fleet = Fleet(store)
        body = json.dumps(snapshot(5)).encode()
        for d in range(1000):
            fleet.ingest(Ingestion(f"project-{d % 100:03d}", TARGET, f"deploy-{d}"), body)
    built = time.perf_counter() - started
    with Store(db) as store:
        token = create(store, NewToken("bench-read", "read")).token
    lines = [
        "### Dashboard first page: 100 projects, 10,000 locksets, 1,000 deployments",
        "",
        f"(database built in {built:.0f} s through `Store.record_lockset` and `Fleet.ingest`)",
        "",
    ]
    with (
        server(db, work, env) as running,
        httpx.Client(
            base_url=running.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client,
    ):
        for _ in range(3):
            client.get("/")
        times = []
        cpu_before, load = cpu_seconds(running.pid), os.getloadavg()[0]
        for _ in range(20):
            start = time.perf_counter()
            page = client.get("/")
            times.append(time.perf_counter() - start)
            if page.status_code != 200 or "project-099" not in page.text:
                raise SystemExit(f"the dashboard answered {page.status_code}")
        cpu = (cpu_seconds(running.pid) - cpu_before) / 20
    cli = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "lockd", "history", "--db", db, "--format", "json"],
            env=env, capture_output=True, check=True, cwd=work,
        )  # fmt: skip
        cli.append(time.perf_counter() - start)
    lines += [
        "| what | median | max |",
        "| --- | ---: | ---: |",
        f"| `GET /` (HTML, {len(page.content) // 1024} KiB) "
        f"| **{statistics.median(times) * 1000:.0f} ms** | {max(times) * 1000:.0f} ms |",
        "| `lockd history --format json` (CLI, 10,000 locksets) "
        f"| {statistics.median(cli) * 1000:.0f} ms | {max(cli) * 1000:.0f} ms |",
        "",
        f"Server CPU per `GET /`: {cpu * 1000:.0f} ms (load average {load:.1f} on "
        f"{os.cpu_count()} CPUs when measured).",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--dists", type=int, default=300)
    parser.add_argument("--db", help="ingestion database URL (default: a new SQLite file)")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="ingest into a throw-away PostgreSQL (Debian's, durability on) instead of SQLite",
    )
    parser.add_argument("--skip-dashboard", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument(
        "--distinct",
        action="store_true",
        help="every post a new content (default: the same content, posted again)",
    )
    parser.add_argument("--workers", type=int, default=2, help="lockd serve --workers")
    args = parser.parse_args()
    os.environ["BENCH_WORKERS"] = str(args.workers)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKD_")}
    env["LOCKD_SERVE_RATE_LIMIT"] = "100000"  # one token sends everything here
    lines = [
        "## lockd serve",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {platform.platform()}.",
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="lockd-bench-serve-") as tmp:
        work = Path(tmp)
        env["LOCKD_HOME"] = str(work / "home")
        if not args.skip_ingest and args.postgres:
            from tests.support.postgres import run_postgres

            with run_postgres(settings={}) as postgres, postgres.database() as url:
                args.db = url
                lines += ingest(args, work, env, postgres.process.pid)
        elif not args.skip_ingest:
            lines += ingest(args, work, env)
        if not args.skip_dashboard:
            lines += dashboard(args, work, env)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

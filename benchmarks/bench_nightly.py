"""Benchmark the sharded nightly run: N worker processes against one PostgreSQL.

Usage (from the repository root, after ``./scripts/setup``; needs Debian's
postgresql package, no network)::

    .venv/bin/python benchmarks/bench_nightly.py [--projects 200] [--targets 3]
        [--packages 8] [--latency-ms 50] [--workers 1,2,4] [--rounds 2]

A simulation of a platform team's night: a PyPI-shaped index on 127.0.0.1
answers every request after ``--latency-ms`` (a network round trip);
``--projects`` locksets of ``--targets`` targets, each locking ``--packages``
packages of that index, are recorded in a PostgreSQL database started for the
run (durable settings: fsync on). Each round then runs the whole check list
once per worker count N: N processes of ``lockd drift --all --shard I/N
--no-rebuild --no-creep --no-images`` started together (every check looks up
each locked file on its index, then the report is appended to the project's
chain). A first, unmeasured run records the durations that balance the
shards, as an earlier night would have.

Measured per N (median over the rounds): wall time, checks per minute,
database time per report (server-side execution time of every statement,
from pg_stat_statements, divided by the reports recorded) and how much of it
was spent waiting on the chain locks, and failures (a worker that did not
exit 0, a check that could not run, a check run twice or never: goal none).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lockd.drift import DriftReport  # noqa: E402
from lockd.lockset import Artifact, Lock, Lockset, Provenance  # noqa: E402
from lockd.store import Store  # noqa: E402
from tests.support.postgres import run_postgres  # noqa: E402
from tests.support.pyindex import IndexServer  # noqa: E402
from tests.support.wheels import WheelSpec  # noqa: E402

PLATFORMS = ("linux-x86_64", "linux-aarch64")
PYTHONS = ("py311", "py312")


@dataclass(frozen=True)
class Round:
    workers: int
    wall_s: float
    checks: int
    reports: int
    db_ms_per_report: float
    lock_ms_per_report: float
    cpu_s: float  # user + system time of the workers
    load: float  # the machine's 1-minute load average at the end (others' work included)
    failures: list[str]

    @property
    def per_minute(self) -> float:
        return self.checks / self.wall_s * 60


def build_index(server: IndexServer, packages: int) -> list[Artifact]:
    index = server.pypi("simple")
    artifacts = []
    for i in range(packages):
        entry = index.add(WheelSpec(f"pkg{i:03d}", "1.0.0"))
        artifacts.append(
            Artifact(
                entry.spec.name,
                "1.0.0",
                f"{server.url}/simple",
                f"{server.url}{index.file_path(entry)}",
                entry.spec.filename,
                entry.sha256,
            )
        )
    return artifacts


def targets(count: int) -> list[str]:
    every = [f"{p}-{py}-cpu" for py in PYTHONS for p in PLATFORMS]
    return every[:count]


def record_locksets(url: str, pool: list[Artifact], args: argparse.Namespace) -> int:
    """One lockset per project, each locking a window of the index's packages."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with Store(url) as store:
        for p in range(args.projects):
            chosen = tuple(pool[(p + k) % len(pool)] for k in range(args.packages))
            store.record_lockset(
                Lockset(
                    project=f"project-{p:03d}",
                    inputs=(),
                    requirements=tuple(a.name for a in chosen),
                    targets=tuple(targets(args.targets)),
                    resolver="uv",
                    resolver_version="0.13.9",
                    indexes={"default": pool[0].index, "pytorch": "pypi"},
                    cutoff=now,
                    input_key=f"bench-{p}",
                    provenance=Provenance("bench", platform.node(), now),
                    locks=tuple(Lock(t, chosen, files={}) for t in targets(args.targets)),
                )
            )
    return args.projects * args.targets


def run_workers(url: str, count: int, env: dict[str, str], cwd: Path) -> tuple[float, list[dict]]:  # type: ignore[type-arg]
    command = ["drift", "--all", "--no-rebuild", "--no-creep", "--no-images", "--format", "json"]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "lockd", *command, "--shard", f"{i}/{count}", "--db", url],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(1, count + 1)
    ]
    results = []
    for i, proc in enumerate(procs, 1):
        out, err = proc.communicate(timeout=3600)
        results.append({"shard": i, "code": proc.returncode, "stdout": out, "stderr": err})
    return time.perf_counter() - start, results


def stats(admin: str) -> tuple[float, float]:
    """Milliseconds of server execution since the last reset: all statements, lock waits."""
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(total_exec_time), 0), coalesce(sum(total_exec_time) "
            "FILTER (WHERE query LIKE '%pg_advisory_xact_lock%'), 0) FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    return (float(row[0]), float(row[1])) if row else (0.0, 0.0)


def reset(admin: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


@dataclass(frozen=True)
class Setup:
    url: str  # lockd's URL of the database
    admin: str  # the same database for psycopg (statistics)
    expected: int  # checks in the list
    env: dict[str, str]
    cwd: Path


def measure(setup: Setup, count: int) -> Round:
    reset(setup.admin)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, results = run_workers(setup.url, count, setup.env, setup.cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    total_ms, lock_ms = stats(setup.admin)
    failures, seen, reports = [], [], 0
    for result in results:
        if result["code"] != 0:
            failures.append(
                f"shard {result['shard']} exited {result['code']}: {result['stderr'][-300:]}"
            )
            continue
        data = json.loads(result["stdout"])
        for report in data.get("reports", [data]):
            reports += 1
            seen += [(report["project"], t["target"]) for t in report["timings"]]
            failures += [f"{report['project']}: {e['message'][:200]}" for e in report["errors"]]
    if len(seen) != setup.expected or len(set(seen)) != len(seen):
        failures.append(
            f"{len(seen)} checks run ({len(set(seen))} distinct), {setup.expected} expected"
        )
    return Round(
        count,
        wall,
        len(seen),
        reports,
        total_ms / max(1, reports),
        lock_ms / max(1, reports),
        cpu,
        os.getloadavg()[0],
        failures,
    )


def seed_history(url: str, results: list[dict]) -> None:  # type: ignore[type-arg]
    """The warm-up's durations, recorded as yesterday's night: the shards balance on them."""
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with Store(url) as store:
        for result in results:
            data = json.loads(result["stdout"])
            for report in data.get("reports", [data]):
                old = DriftReport.from_dict(report)
                store.record_drift(
                    DriftReport(old.project, old.lockset, yesterday, (), timings=old.timings)
                )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--targets", type=int, default=3, choices=range(1, 5))
    parser.add_argument("--packages", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]

    server = IndexServer()
    pool = build_index(server, max(40, args.packages))
    server.latency_s = args.latency_ms / 1000
    server.start()
    settings = {
        "shared_preload_libraries": "pg_stat_statements",
        "pg_stat_statements.track": "all",
    }
    with (
        run_postgres(settings) as pg,
        tempfile.TemporaryDirectory() as tmp,
        pg.database() as url,
    ):
        import psycopg

        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        admin = url.replace("+psycopg", "")
        started = time.perf_counter()
        expected = record_locksets(url, pool, args)
        print(f"recorded {args.projects} locksets in {time.perf_counter() - started:.1f} s")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCKD_", "UV_"))}
        env.update(LOCKD_HOME=str(Path(tmp) / "home"), NO_COLOR="1")
        warm_wall, warm = run_workers(url, 1, env, Path(tmp))
        print(f"warm-up (1 worker, no recorded durations): {warm_wall:.1f} s")
        seed_history(url, warm)
        rounds: dict[int, list[Round]] = {n: [] for n in counts}
        for r in range(args.rounds):
            for n in counts:
                result = measure(Setup(url, admin, expected, env, Path(tmp)), n)
                rounds[n].append(result)
                print(
                    f"round {r + 1}, {n} worker(s): {result.wall_s:.1f} s, "
                    f"{result.per_minute:.0f} checks/min, {result.db_ms_per_report:.1f} ms "
                    f"DB/report, {result.cpu_s / result.checks * 1000:.0f} ms CPU/check, "
                    f"load {result.load:.1f}, failures {len(result.failures)}",
                    flush=True,
                )
    server.stop()
    report(args, rounds, expected)


def report(args: argparse.Namespace, rounds: dict[int, list[Round]], expected: int) -> None:
    print()
    print(
        f"{args.projects} projects × {args.targets} targets = {expected} checks, "
        f"{args.packages} locked files each, index latency {args.latency_ms:g} ms, "
        f"LOCKD_CONCURRENCY {os.environ.get('LOCKD_CONCURRENCY', '4')} per worker; "
        f"median of {args.rounds} round(s)."
    )
    print()
    print(
        "| workers | wall s | checks/min | speed-up | CPU ms/check | DB ms/report "
        "| of which lock wait | reports | load | failures |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = None
    for n, results in rounds.items():
        wall = statistics.median(r.wall_s for r in results)
        per_min = expected / wall * 60
        base = base or per_min
        print(
            f"| {n} | {wall:.1f} | {per_min:.0f} | {per_min / base:.2f}× | "
            f"{statistics.median(r.cpu_s / max(1, r.checks) for r in results) * 1000:.0f} | "
            f"{statistics.median(r.db_ms_per_report for r in results):.1f} | "
            f"{statistics.median(r.lock_ms_per_report for r in results):.2f} | "
            f"{statistics.median(r.reports for r in results):.0f} | "
            f"{statistics.median(r.load for r in results):.1f} | "
            f"{sum(len(r.failures) for r in results)} |"
        )
    for n, results in rounds.items():
        for r in results:
            for failure in r.failures[:5]:
                print(f"- {n} worker(s): {failure}")
    print()
    print(
        f"Machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; "
        f"Python {platform.python_version()}; {platform.system()}."
    )


if __name__ == "__main__":
    main()

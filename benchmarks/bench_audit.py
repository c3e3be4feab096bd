"""Benchmark ``lockd audit`` over a large record: 1,000 locksets (or 10,000: issue 14).

Usage (from the repository root, after ``./scripts/setup``; no network)::

    .venv/bin/python benchmarks/bench_audit.py [--locksets 1000] [--targets 3]
        [--artifacts 30] [--rounds 5] [--db PATH] [--cli-only] [--baseline REV]

Builds a SQLite database with one project whose chain holds ``--locksets``
locksets (``--targets`` targets of ``--artifacts`` artifacts each, torch from
a PyTorch variant index, one base image) and one drift report per ten
locksets, recorded through ``Store.record_lockset``/``record_drift`` exactly
as ``lockd compile``/``lockd drift`` record them. An existing ``--db`` of the
right size is reused.

Then times, in-process, medians of ``--rounds``:

* ``markdown`` / ``html`` / ``json``: the audit use case writing the report
  (read the records a batch at a time, check the chains, render), what
  ``lockd audit --format F`` spends;
* ``verify``: ``lockd audit verify`` (read the rows, recompute the chains,
  cross-check every lock and artifact row);
* ``cyclonedx``: the SBOM of the latest lockset (all targets).

and, end to end, the real CLI in a subprocess (interpreter start, imports,
writing the file atomically): ``lockd audit --format F -o FILE`` and
``lockd audit verify``: wall time, CPU time (user + system) and peak RSS. With
``--baseline REV``, lockd at ``REV`` (a temporary git worktree) runs each
command too, alternating with this lockd, and each report it writes is
compared byte for byte with this lockd's (the generation time aside).

Prints a Markdown report; paste it into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_matrix import checkout  # noqa: E402
from lockd.app.audit import (  # noqa: E402
    AuditRequest,
    SbomRequest,
    VerifyRequest,
    sbom,
    verify_chains,
    write_report,
)
from lockd.drift import DriftReport, Finding  # noqa: E402
from lockd.lockset import Artifact, InputFile, Lock, Lockset, Provenance  # noqa: E402
from lockd.store import Store  # noqa: E402

PYPI = "https://pypi.org/simple"
LOCKD = [sys.executable, "-m", "lockd"]
TORCH = "https://download.pytorch.org/whl"
ACCELERATORS = ("cu124", "cu121", "cpu", "cu118", "rocm6.2")
IMAGE = {
    "reference": "nvidia/cuda:12.4.1-runtime-ubuntu22.04",
    "registry": "registry-1.docker.io",
    "repository": "nvidia/cuda",
    "tag": "12.4.1-runtime-ubuntu22.04",
    "index_digest": "sha256:" + "a" * 64,
    "media_type": "application/vnd.oci.image.index.v1+json",
    "platforms": [
        {"os": "linux", "architecture": "amd64", "variant": None, "digest": "sha256:" + "b" * 64},
        {"os": "linux", "architecture": "arm64", "variant": None, "digest": "sha256:" + "c" * 64},
    ],
    "resolved_at": "2026-01-01T00:00:00Z",
}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_lockset(n: int, parent: str | None, targets: int, artifacts: int) -> Lockset:
    """Lockset ``n`` of the chain: realistic names, versions and URLs, distinct hashes."""
    locks = []
    for t in range(targets):
        acc = ACCELERATORS[t % len(ACCELERATORS)]
        target = f"linux-x86_64-py311-{acc}"
        torch_file = f"torch-2.{n % 7}.0+{acc}-cp311-cp311-manylinux_2_28_x86_64.whl"
        arts = [
            Artifact(
                "torch",
                f"2.{n % 7}.0+{acc}",
                f"{TORCH}/{acc}",
                f"{TORCH}/{acc}/{torch_file.replace('+', '%2B')}",
                torch_file,
                _sha(f"{n}{torch_file}"),
            )
        ]
        for a in range(artifacts - 1):
            name = f"package-{a:02d}"
            version = f"{1 + a % 5}.{n % 13}.{a % 3}"
            filename = f"package_{a:02d}-{version}-py3-none-any.whl"
            arts.append(
                Artifact(
                    name,
                    version,
                    PYPI,
                    f"https://files.pythonhosted.org/packages/{a:02x}/{filename}",
                    filename,
                    _sha(f"{n}{filename}"),
                )
            )
        locks.append(Lock(target, tuple(arts), {f"pylock.{target}.toml": _sha(f"{n}{target}")}))
    day = 1 + n % 28
    created = f"2026-{1 + (n // 28) % 12:02d}-{day:02d}T{n % 24:02d}:00:00Z"
    return Lockset(
        project="ml-model",
        inputs=(InputFile("requirements.in", _sha(f"in{n}")),),
        requirements=("torch", "transformers", "numpy"),
        targets=tuple(lock.target for lock in locks),
        resolver="uv",
        resolver_version="0.13.9",
        indexes={"default": PYPI, "pytorch": TORCH},
        cutoff=created,
        input_key=_sha(f"key{n}"),
        provenance=Provenance("ci", "runner-1", created, _sha(f"git{n}")[:40], "0.1.0"),
        locks=tuple(locks),
        images=(IMAGE,),
        parent=parent,
    )


def build_database(url: str, count: int, targets: int, artifacts: int) -> float:
    """Record the chain; returns the seconds it took."""
    store = Store(url)
    started = time.perf_counter()
    try:
        parent = None
        for n in range(count):
            lockset = make_lockset(n, parent, targets, artifacts)
            store.record_lockset(lockset)
            parent = lockset.hash
            if n % 10 == 9:
                findings = (
                    (Finding("version-creep", lockset.targets[0], "package-01", "1.0", "1.1"),)
                    if n % 20 == 19
                    else ()
                )
                store.record_drift(
                    DriftReport("ml-model", parent, lockset.provenance.created_at, findings)
                )
    finally:
        store.close()
    return time.perf_counter() - started


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``command``; its CPU seconds (user + system) and peak resident memory in MB
    (``wait4``'s ``ru_maxrss``)."""
    child = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):  # 1: a broken chain, still a report
        raise subprocess.CalledProcessError(child.returncode, command)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


_MOMENT = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def same_report(a: Path, b: Path) -> bool:
    """Byte for byte, every ISO moment aside (the generation time; a substitution of the
    same length keeps the two files' chunks aligned)."""
    with a.open("rb") as left, b.open("rb") as right:
        while True:
            x, y = left.read(1 << 20), right.read(1 << 20)
            if _MOMENT.sub(b"T", x) != _MOMENT.sub(b"T", y):
                return False
            if not x:
                return True


def median_time(action: Callable[[], object], rounds: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def in_process(url: str, rounds: int) -> list[tuple[str, float, str]]:
    """The use cases and renderers, timed inside this process."""
    rows = []
    for fmt in ("markdown", "html", "json"):

        def report(fmt: str = fmt) -> int:
            with Path(os.devnull).open("wb") as out:
                write_report(AuditRequest(url), fmt, out)
                return out.tell()

        seconds, _ = median_time(report, rounds)
        rows.append((fmt, seconds, ""))
    seconds, chain = median_time(lambda: verify_chains(VerifyRequest(url)), rounds)
    rows.append(("verify", seconds, "intact" if getattr(chain, "ok", False) else "BROKEN"))
    seconds, text = median_time(lambda: sbom(SbomRequest(url)), rounds)
    rows.append(("cyclonedx (latest lockset)", seconds, f"{len(str(text)) / 1e3:.0f} kB"))
    return rows


Row = tuple[str, float, float, float]  # command, median wall seconds, CPU seconds, peak MB


def end_to_end(url: str, tmp: Path, rounds: int, baseline: Path | None) -> tuple[list[Row], str]:
    """The real CLI in a subprocess (interpreter start, imports, atomic file writes):
    median wall seconds, and the CPU time and peak resident memory of the last run; with a
    baseline checkout, its runs alternate with these, and the reports are compared."""
    rows: list[Row] = []
    identical = []
    env = dict(os.environ, PYTHONPATH=str(baseline)) if baseline else None
    commands = [
        (f"lockd audit --format {fmt} -o FILE", ["audit", "--db", url, "--format", fmt, "-o"], fmt)
        for fmt in ("markdown", "html", "json", "cyclonedx")
    ]
    commands.append(("lockd audit verify", ["audit", "verify", "--db", url], ""))
    for label, args, fmt in commands:
        runs: list[tuple[str, dict[str, str] | None, Path]] = [("", None, tmp / f"new.{fmt}")]
        if baseline is not None:
            runs.insert(0, (" (baseline)", env, tmp / f"base.{fmt}"))
        for suffix, run_env, path in runs:
            command = [*LOCKD, *args, *([str(path)] if fmt else [])]
            # cwd: not the repository, so that PYTHONPATH decides which lockd runs
            seconds, (cpu, peak) = median_time(lambda c=command, e=run_env: _run(c, tmp, e), rounds)
            rows.append((label + suffix, seconds, cpu, peak))
        if baseline is not None and fmt and fmt != "cyclonedx":
            same = same_report(tmp / f"base.{fmt}", tmp / f"new.{fmt}")
            identical.append(f"{fmt}: {'byte-identical' if same else 'DIFFERENT'}")
    return rows, ", ".join(identical)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locksets", type=int, default=1000)
    parser.add_argument("--targets", type=int, default=3)
    parser.add_argument("--artifacts", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument(
        "--baseline", default=None, metavar="REV", help="also run lockd at REV and compare"
    )
    parser.add_argument(
        "--cli-only",
        action="store_true",
        help="only the CLI runs (time and peak RSS); no in-process rounds",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = (args.db or Path(tmp) / "audit-bench.db").resolve()  # the CLI runs elsewhere
        url = f"sqlite:///{path}"
        built = None
        store = Store(url)
        try:  # two one-row queries: the CLI's peak RSS counts from this process's size at fork
            exact = bool(store.history("ml-model", limit=1, offset=args.locksets - 1)) and not (
                store.history("ml-model", limit=1, offset=args.locksets)
            )
            empty = not store.history("ml-model", limit=1)
        finally:
            store.close()
        if not exact:
            if not empty:
                sys.exit(f"{path} does not hold {args.locksets} locksets: use another --db")
            built = build_database(url, args.locksets, args.targets, args.artifacts)
        load_before = os.getloadavg()
        rows = [] if args.cli_only else in_process(url, args.rounds)
        with checkout(args.baseline, Path(tmp) / "baseline") as baseline:
            cli_rows, identical = end_to_end(url, Path(tmp), args.rounds, baseline)
        load_after = os.getloadavg()

    artifacts_total = args.locksets * args.targets * args.artifacts
    print(f"## lockd audit over {args.locksets} locksets\n")
    print(
        f"{args.locksets} locksets × {args.targets} targets × {args.artifacts} artifacts "
        f"({artifacts_total:,} artifact rows), {args.locksets // 10} drift reports; "
        f"median of {args.rounds} rounds."
    )
    if built is not None:
        print(f"Recording them through `Store.record_lockset` took {built:.1f} s.")
    print(
        f"\nMachine: {os.cpu_count()} CPUs (`nproc` {len(os.sched_getaffinity(0))}), "
        f"{cpu_model()}; Python {platform.python_version()}; {platform.system()}; load average "
        f"(1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load_before)}, after "
        f"{', '.join(f'{x:.2f}' for x in load_after)}.\n"
    )
    if rows:
        print("In process (use case + renderer, what the CLI spends after start-up):\n")
        print("| step | seconds | output |")
        print("| --- | ---: | --- |")
        for name, seconds, note in rows:
            print(f"| {name} | {seconds:.2f} | {note} |")
    print("\nEnd to end (the CLI in a subprocess, median wall time; CPU time and peak RSS):\n")
    print("| command | seconds | CPU seconds | peak RSS |")
    print("| --- | ---: | ---: | ---: |")
    for name, seconds, cpu, peak in cli_rows:
        print(f"| `{name}` | {seconds:.2f} | {cpu:.2f} | {peak:.0f} MB |")
    if identical:
        print(f"\nReports of this lockd against {args.baseline}'s: {identical}.")
    print(
        "\nCommand: `.venv/bin/python benchmarks/bench_audit.py "
        f"--locksets {args.locksets} --targets {args.targets} --artifacts {args.artifacts} "
        f"--rounds {args.rounds}{' --cli-only' if args.cli_only else ''}"
        f"{f' --baseline {args.baseline}' if args.baseline else ''}`"
    )


if __name__ == "__main__":
    main()

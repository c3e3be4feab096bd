"""Benchmark ``lockd audit`` over a large record: 1,000 locksets (or 10,000: issue 14).

Usage (from the repository root, after ``./scripts/setup``; no network)::

    .venv/bin/python benchmarks/bench_audit.py [--locksets 1000] [--targets 3]
        [--artifacts 30] [--rounds 5] [--db PATH] [--cli-only]

Builds a SQLite database with one project whose chain holds ``--locksets``
locksets (``--targets`` targets of ``--artifacts`` artifacts each, torch from
a PyTorch variant index, one base image) and one drift report per ten
locksets, recorded through ``Store.record_lockset``/``record_drift`` exactly
as ``lockd compile``/``lockd drift`` record them. An existing ``--db`` of the
right size is reused.

Then times, in-process, medians of ``--rounds``:

* ``load``: the audit use case up to the report model (one query per table,
  parse every document, check the hash chains, build the model);
* ``markdown`` / ``html`` / ``json``: load plus rendering, what
  ``lockd audit --format F`` spends;
* ``verify``: ``lockd audit verify`` (load the rows, recompute the chains,
  cross-check every lock and artifact row);
* ``cyclonedx``: the SBOM of the latest lockset (all targets).

and, end to end, the real CLI in a subprocess (interpreter start, imports,
writing the file atomically): ``lockd audit --format F -o FILE`` and
``lockd audit verify``.

Prints a Markdown report; paste it into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lockd.app.audit import (  # noqa: E402
    AuditRequest,
    SbomRequest,
    audit_report,
    render_report,
    sbom,
    verify_chains,
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


def _run(command: list[str]) -> float:
    """Run ``command``; its peak resident memory in MB (``wait4``'s ``ru_maxrss``)."""
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):  # 1: a broken chain, still a report
        raise subprocess.CalledProcessError(child.returncode, command)
    return usage.ru_maxrss / 1024


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
    request = AuditRequest(url)
    load, _ = median_time(lambda: audit_report(request), rounds)
    rows = [("load + model", load, "")]
    for fmt in ("markdown", "html", "json"):
        seconds, text = median_time(
            lambda fmt=fmt: render_report(audit_report(request), fmt), rounds
        )
        rows.append((fmt, seconds, f"{len(str(text)) / 1e6:.1f} MB"))
    seconds, chain = median_time(lambda: verify_chains(url), rounds)
    rows.append(("verify", seconds, "intact" if getattr(chain, "ok", False) else "BROKEN"))
    seconds, text = median_time(lambda: sbom(SbomRequest(url)), rounds)
    rows.append(("cyclonedx (latest lockset)", seconds, f"{len(str(text)) / 1e3:.0f} kB"))
    return rows


def end_to_end(url: str, tmp: Path, rounds: int) -> list[tuple[str, float, float]]:
    """The real CLI in a subprocess (interpreter start, imports, atomic file writes):
    median seconds and the peak resident memory of the last run."""
    rows = []
    for fmt in ("markdown", "html", "json", "cyclonedx"):
        command = [*LOCKD, "audit", "--db", url, "--format", fmt, "-o", str(tmp / f"a.{fmt}")]
        seconds, peak = median_time(lambda c=command: _run(c), rounds)
        rows.append((f"lockd audit --format {fmt} -o FILE", seconds, float(peak)))
    command = [*LOCKD, "audit", "verify", "--db", url]
    seconds, peak = median_time(lambda: _run(command), rounds)
    rows.append(("lockd audit verify", seconds, float(peak)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locksets", type=int, default=1000)
    parser.add_argument("--targets", type=int, default=3)
    parser.add_argument("--artifacts", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument(
        "--cli-only",
        action="store_true",
        help="only the CLI runs (time and peak RSS); no in-process rounds",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "audit-bench.db"
        url = f"sqlite:///{path}"
        built = None
        store = Store(url)
        try:
            have = len(store.history("ml-model"))
        finally:
            store.close()
        if have != args.locksets:
            if have:
                sys.exit(f"{path} holds {have} locksets, not {args.locksets}: use another --db")
            built = build_database(url, args.locksets, args.targets, args.artifacts)
        load_before = os.getloadavg()
        rows = [] if args.cli_only else in_process(url, args.rounds)
        cli_rows = end_to_end(url, Path(tmp), args.rounds)
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
    print("\nEnd to end (the CLI in a subprocess, median wall time, peak RSS):\n")
    print("| command | seconds | peak RSS |")
    print("| --- | ---: | ---: |")
    for name, seconds, peak in cli_rows:
        print(f"| `{name}` | {seconds:.2f} | {peak:.0f} MB |")
    print(
        "\nCommand: `.venv/bin/python benchmarks/bench_audit.py "
        f"--locksets {args.locksets} --targets {args.targets} --artifacts {args.artifacts} "
        f"--rounds {args.rounds}{' --cli-only' if args.cli_only else ''}`"
    )


if __name__ == "__main__":
    main()

"""What recording the dependency graph costs ``lockd compile``: lockd before and after.

Usage (from the repository root, after ``./scripts/setup``; needs PyPI and git)::

    .venv/bin/python benchmarks/bench_graph.py [--rounds 5] [--baseline REV]

The baseline is lockd at ``REV`` (default: the commit before ``lockd/graph``
was added), checked out into a temporary git worktree and run with this
checkout's virtual environment, so both sides use the same uv and libraries.
The requirement set is bench_compile's (torch 2.6.0 from PyPI with its CUDA
wheels, transformers, fastapi, pandas, scikit-learn) for linux-x86_64 × cu124 ×
Python 3.10/3.11/3.12, with a warm uv cache. Two scenarios, alternating rounds,
medians:

1. lockd's metadata cache warm (every recompile after the first): the graph is
   built from files on disk.
2. lockd's metadata cache cold (a fresh ``LOCKD_HOME`` per round, as on a CI
   runner without a cache): every locked wheel's metadata comes from PyPI.

3. (``--sbom``, no network) the all-targets CycloneDX SBOM of a synthetic
   lockset, 12 targets × 150 packages (a third of them with a file per
   target, as binary wheels have), with and without its graph.

Prints a Markdown report; paste it into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_compile import (  # noqa: E402
    PYTHONS,
    REQUIREMENTS,
    clean_env,
    machine,
    median_of,
    timed,
)

PYPI = "https://pypi.org/simple"


def baseline_revision() -> str:
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "lockd/graph/__init__.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not added:
        raise SystemExit("lockd/graph was never added in this history: pass --baseline REV")
    return added[-1] + "^"


def compile_with(source: Path, work: Path, home: Path, cache: Path) -> float:
    matrix = ["--cuda", "cu124", "--platform", "linux-x86_64"]
    for py in PYTHONS:
        matrix += ["--python", py]
    env = clean_env(UV_CACHE_DIR=str(cache), LOCKD_HOME=str(home), PYTHONPATH=str(source))
    command = [sys.executable, "-m", "lockd", "compile", "requirements.in", *matrix]
    return timed([*command, "--pytorch-index", "pypi", "--index", PYPI, "--refresh"], work, env)


def sbom_report(rounds: int) -> list[str]:
    """The all-targets SBOM of a synthetic lockset, with and without its graph."""
    import dataclasses
    import random
    import statistics
    import time

    from lockd.graph import Edge, Graph, Root
    from lockd.lockset import Artifact, Lock, Lockset, Provenance
    from lockd.report.cyclonedx import BomRequest, render_cyclonedx

    packages, targets = 150, 12
    pick = random.Random(1)  # noqa: S311 - the same synthetic graph every run
    edges = [
        Edge(f"p{i}", f"p{j}", f"p{j}")
        for i in range(packages - 1)
        for j in pick.sample(range(i + 1, packages), min(3, packages - i - 1))
    ]
    graph = Graph.of([Root(f"p{i}", f"p{i}", "-r requirements.in") for i in range(5)], edges)
    locks = []
    for t in range(targets):
        artifacts = []
        for i in range(packages):
            sha = f"{i:064x}" if i % 3 else f"{i * 100 + t:064x}"  # every third file per target
            name = f"p{i}-1-py3-none-any.whl"
            artifacts.append(Artifact(f"p{i}", "1", PYPI, f"https://f/{name}", name, sha))
        locks.append(Lock(f"linux-x86_64-py3{t:02d}-cpu", tuple(artifacts), graph=graph))
    with_graph = Lockset(
        project="bench",
        inputs=(),
        requirements=(),
        targets=tuple(lock.target for lock in locks),
        resolver="uv",
        resolver_version="0",
        indexes={"default": PYPI},
        cutoff="2026-01-01T00:00:00Z",
        input_key="k",
        provenance=Provenance("u", "h", "2026-01-01T00:00:00Z"),
        locks=tuple(locks),
    )
    without = dataclasses.replace(
        with_graph, locks=tuple(dataclasses.replace(lock, graph=None) for lock in locks)
    )
    lines = [
        f"All-targets SBOM, {targets} targets × {packages} packages ({len(edges)} edges each), "
        f"median of {rounds}:",
        "",
        "| lockset | components | median |",
        "| --- | ---: | ---: |",
    ]
    for label, lockset in (("without graph", without), ("with graph", with_graph)):
        samples, text = [], ""
        for _ in range(rounds):
            start = time.perf_counter()
            text = render_cyclonedx(BomRequest(lockset, lockset.hash))
            samples.append(time.perf_counter() - start)
        components = text.count('"bom-ref"') - 1  # the root's own
        lines.append(f"| {label} | {components} | {statistics.median(samples):.2f} s |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", default=None)
    parser.add_argument("--sbom", action="store_true", help="only the SBOM scenario")
    args = parser.parse_args()
    if args.sbom:
        print("\n".join([f"Machine: {machine()}", "", *sbom_report(args.rounds)]))
        return
    revision = args.baseline or baseline_revision()

    base = Path(tempfile.mkdtemp(prefix="lockd-bench-graph-"))
    before = base / "before"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(before), revision],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    try:
        sides = {"before (no graph)": before, "after (graph)": ROOT}
        works = {}
        for name, source in sides.items():
            work = base / f"work-{len(works)}"
            work.mkdir()
            (work / "requirements.in").write_text(REQUIREMENTS)
            works[name] = (source, work)
        cache = base / "uv-cache"
        warm_home = {name: base / f"home-{n}" for n, name in enumerate(sides)}
        for name, (source, work) in works.items():  # fill the uv and metadata caches
            compile_with(source, work, warm_home[name], cache)

        def runner(name: str, cold: bool):  # type: ignore[no-untyped-def]
            source, work = works[name]

            def run(i: int) -> float:
                home = base / f"cold-{name[:5]}-{i}" if cold else warm_home[name]
                return compile_with(source, work, home, cache)

            return run

        print("metadata cache warm …", file=sys.stderr)
        warm = median_of(args.rounds, {name: runner(name, False) for name in sides})
        print("metadata cache cold …", file=sys.stderr)
        cold = median_of(args.rounds, {name: runner(name, True) for name in sides})
        fetched = len(list((warm_home["after (graph)"] / "cache" / "metadata").iterdir()))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False)
        shutil.rmtree(base, ignore_errors=True)

    lines = [
        f"Machine: {machine()}",
        f"Baseline: `{revision}`. Wheels whose metadata the graph reads: {fetched} "
        "(for the three targets together).",
        "",
        "| lockd compile, warm uv cache | metadata cache warm | metadata cache cold |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {name} | {warm[name]:.2f} s | {cold[name]:.2f} s |" for name in sides]
    a, b = "after (graph)", "before (no graph)"
    lines += [
        "",
        f"Cost of the graph: **{warm[a] - warm[b]:+.2f} s** with lockd's metadata cache "
        f"warm, **{cold[a] - cold[b]:+.2f} s** cold.",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()

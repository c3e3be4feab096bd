"""Benchmark: lockd's conda matrix solve vs. the same targets solved one at a time with rattler.

Run from the repository root::

    .venv/bin/python benchmarks/bench_conda.py [--rounds 7] [--libs 300]

A channel with a few thousand records is generated in a temporary directory
(``--libs`` library packages x 3 versions x 2 Pythons x 2 subdirs, in
dependency chains, plus the CUDA-shaped pytorch fixture of the tests) and
served on 127.0.0.1. The matrix has four targets: linux-x86_64 x {cu124, cu118,
cpu} and linux-aarch64 x cpu.

* **lockd**: ``solve_conda_matrix`` (one gateway, targets solved concurrently,
  results converted and verified);
* **direct**: ``rattler.solve`` per target, sequentially, with one shared
  gateway and the same specs, virtual packages and constraints, so the
  baseline does the same solving work and gets the same caching.

Each round runs both from a fresh repodata cache ("cold", repodata fetched
over HTTP) and then again on the now-filled cache with a new gateway ("warm").
The order of lockd and direct alternates between rounds; the table shows the
medians. Nothing here reaches the internet.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rattler

from lockd.inputs.environment import CondaEnvironment
from lockd.resolvers.rattler import (
    CondaRequest,
    CondaSolution,
    CondaTarget,
    cuda_constraints,
    make_gateway,
    solve_conda_matrix,
    virtual_packages,
)
from lockd.targets import parse_accelerator, parse_platform
from tests.support.channel import CondaChannel, CondaPkg, pytorch_channel, serve_channels

TARGETS = (
    ("linux-x86_64", "cu124"),
    ("linux-x86_64", "cu118"),
    ("linux-x86_64", "cpu"),
    ("linux-aarch64", "cpu"),
)


def build_channel(libs: int, versions: int) -> CondaChannel:
    """The pytorch fixture plus ``libs`` libraries, each depending on two earlier ones."""
    channel = pytorch_channel()
    for subdir in ("linux-64", "linux-aarch64"):
        for py in ("311", "312"):
            pin = f"python >=3.{py[1:]},<3.{int(py[1:]) + 1}.0a0"
            for i in range(libs):
                deps = [pin] + [f"lib{j:04d} >=1.{i % versions}" for j in {i // 2, i // 3} if j < i]
                for minor in range(versions):
                    channel.add(
                        CondaPkg(
                            f"lib{i:04d}",
                            f"1.{minor}.0",
                            f"py{py}h{i:07x}_0",
                            subdir,
                            depends=(*deps, "numpy >=2"),
                        )
                    )
    return channel


def environment(url: str, libs: int, roots: int) -> CondaEnvironment:
    top = [f"lib{i:04d}" for i in range(libs - roots, libs)]
    return CondaEnvironment("bench", (url,), ("python=3.11", "pytorch", *top))


def run_lockd(request: CondaRequest) -> list[CondaSolution]:
    outcomes = asyncio.run(solve_conda_matrix(request))
    failed = [o for o in outcomes if not isinstance(o, CondaSolution)]
    if failed:
        raise SystemExit(f"the benchmark matrix must solve: {failed}")
    return [o for o in outcomes if isinstance(o, CondaSolution)]


def run_direct(request: CondaRequest) -> list[list[rattler.RepoDataRecord]]:
    async def main() -> list[list[rattler.RepoDataRecord]]:
        gateway = make_gateway(request.cache_dir)
        results = []
        for target in request.targets:
            results.append(await _direct_solve(target, request, gateway))
        return results

    return asyncio.run(main())


async def _direct_solve(
    target: CondaTarget, request: CondaRequest, gateway: rattler.Gateway
) -> list[rattler.RepoDataRecord]:
    virtual = [
        rattler.GenericVirtualPackage(
            rattler.PackageName(v.name), rattler.Version(v.version), rattler.BuildString(v.build)
        )
        for v in virtual_packages(target)
    ]
    return await rattler.solve(
        list(request.environment.channels),
        [rattler.MatchSpec(s, strict=False) for s in request.environment.specs],
        gateway=gateway,
        platforms=[rattler.Subdir(target.subdir), rattler.Subdir("noarch")],
        virtual_packages=virtual,
        constraints=list(cuda_constraints(target)),
        channel_relations="disabled",
    )


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--libs", type=int, default=1000, help="library packages")
    parser.add_argument("--versions", type=int, default=4, help="versions of each library")
    parser.add_argument("--roots", type=int, default=150, help="libraries the env asks for")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lockd-bench-conda-") as tmp:
        root = Path(tmp)
        channel = build_channel(args.libs, args.versions)
        channel.write(root / "chan", archives=False)
        records = len(channel.packages)
        with serve_channels(root) as server:
            env = environment(f"{server.url}/chan", args.libs, args.roots)
            targets = tuple(
                CondaTarget(parse_platform(plat), parse_accelerator(acc)) for plat, acc in TARGETS
            )
            times: dict[str, list[float]] = {
                k: [] for k in ("lockd cold", "direct cold", "lockd warm", "direct warm")
            }
            sizes: dict[str, int] = {}
            for n in range(args.rounds):
                order = ("lockd", "direct") if n % 2 == 0 else ("direct", "lockd")
                for who in order:
                    # A fresh cache per run: "cold" fetches repodata, "warm" reuses it.
                    request = CondaRequest(env, targets, cache_dir=root / f"cache-{who}-{n}")
                    run = run_lockd if who == "lockd" else run_direct
                    times[f"{who} cold"].append(timed(partial(run, request)))
                    times[f"{who} warm"].append(timed(partial(run, request)))
            # Both sides must have solved the same problem to the same answer.
            answers = zip(run_lockd(request), run_direct(request), strict=True)
            for solution, records_ in answers:
                direct = {(r.name.normalized, str(r.build)) for r in records_}
                if {(p.name, p.build) for p in solution.packages} != direct:
                    raise SystemExit(f"{solution.target_id}: lockd and direct disagree")
                sizes[solution.target_id] = len(solution.packages)

    solved = ", ".join(f"{target} {count}" for target, count in sizes.items())
    print(f"{records} records in the channel; packages per solution: {solved}")
    print(f"{args.rounds} rounds, alternating; medians; {os.cpu_count()} CPUs, {cpu_model()}\n")
    print("| run | lockd (concurrent) | direct rattler (sequential) | lockd / direct |")
    print("| --- | ---: | ---: | ---: |")
    for phase in ("cold", "warm"):
        ours = statistics.median(times[f"lockd {phase}"])
        theirs = statistics.median(times[f"direct {phase}"])
        ratio = ours / theirs
        print(f"| {phase} cache | {ours * 1000:.0f} ms | {theirs * 1000:.0f} ms | {ratio:.2f} |")


if __name__ == "__main__":
    main()

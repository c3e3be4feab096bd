"""Benchmark ``lockd drift --rebuild`` against the bare uv commands it wraps.

Usage (from the repository root, after ``./scripts/setup``; no network needed)::

    .venv/bin/python benchmarks/bench_drift.py [--packages 100] [--rounds 7]

A PyPI-shaped index on 127.0.0.1 serves ``--packages`` tiny wheels; lockd
locks them for this machine, then, with a warm uv cache, alternates:

* ``lockd drift --rebuild --no-creep --no-images`` (every locked file checked
  on its index, a fresh venv from the recorded lock with hashes enforced and
  uv's cache revalidated, snapshot, compare, record),
* ``uv venv`` + ``uv pip sync --require-hashes --refresh`` of the same lock
  (what a user would run for the same guarantee), and
* ``uv venv`` + ``uv pip sync --require-hashes`` (trusting the cache: a file
  replaced upstream under the same name is installed from it).

Prints a Markdown table with medians; the goal is a ratio of at most 1.5
against the ``--refresh`` sync.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lockd.resolvers.uv import uv_binary  # noqa: E402
from tests.support.pyindex import IndexServer  # noqa: E402
from tests.support.wheels import WheelSpec  # noqa: E402


def env_for(base: Path, server: IndexServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "LOCKD_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        UV_NO_CONFIG="1",
        UV_CACHE_DIR=str(base / "uv-cache"),
        LOCKD_HOME=str(base / "home"),
        LOCKD_INDEX_URL=f"{server.url}/simple",
    )
    return env


def timed(command: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode not in ok:
        raise SystemExit(
            f"failed: {' '.join(command)}\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
        )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="lockd-bench-drift-"))
    server = IndexServer()
    index = server.pypi("simple")
    names = [f"pkg{i:03d}" for i in range(args.packages)]
    for i, name in enumerate(names):
        # a chain of dependencies, so the resolver does real work
        requires = (f"{names[i + 1]}>=1",) if i + 1 < len(names) and i % 2 == 0 else ()
        index.add(WheelSpec(name, "1.0", requires=requires))
    server.start()
    try:
        project = base / "project"
        project.mkdir()
        (project / "requirements.in").write_text("\n".join(names[::2]) + "\n")
        env = env_for(base, server)
        host = f"{sys.version_info.major}.{sys.version_info.minor}"
        lockd = [sys.executable, "-m", "lockd"]
        timed([*lockd, "compile", "--python", host, "--cuda", "cpu"], project, env)
        target = next((project / "locks").glob("*.requirements.txt"))

        def lockd_drift() -> float:
            return timed([*lockd, "drift", "--rebuild", "--no-creep", "--no-images"], project, env)

        def bare_uv(*flags: str) -> float:
            venv = base / "bare-venv"
            shutil.rmtree(venv, ignore_errors=True)
            start = time.perf_counter()
            timed([uv_binary(), "venv", "-q", "--python", sys.executable, str(venv)], project, env)
            timed(
                [
                    uv_binary(),
                    "pip",
                    "sync",
                    "-q",
                    "--require-hashes",
                    *flags,
                    "--python",
                    str(venv / "bin" / "python"),
                    "--index-url",
                    f"{server.url}/simple",
                    str(target),
                ],
                project,
                env,
            )
            return time.perf_counter() - start

        lockd_drift()  # warm the uv cache
        bare_uv()
        refreshed = "uv venv + uv pip sync --refresh"
        order = [
            ("lockd drift --rebuild", lockd_drift),
            (refreshed, lambda: bare_uv("--refresh")),
            ("uv venv + uv pip sync (trusts the cache)", bare_uv),
        ]
        samples: dict[str, list[float]] = {name: [] for name, _ in order}
        for i in range(args.rounds):
            for name, run in order if i % 2 == 0 else reversed(order):
                samples[name].append(run())
        medians = {name: statistics.median(values) for name, values in samples.items()}
        ratio = medians["lockd drift --rebuild"] / medians[refreshed]
        print(f"{args.packages}-package lock, warm uv cache, {args.rounds} rounds, medians\n")
        print("| command | median |\n| --- | ---: |")
        for name, value in medians.items():
            print(f"| {name} | {value:.2f} s |")
        print(f"\nratio to the --refresh sync: **{ratio:.2f}** (goal ≤ 1.5)")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

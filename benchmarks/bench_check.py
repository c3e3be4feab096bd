"""Benchmark ``lockd compile --check`` (the pre-commit hook) against what else says "stale".

Usage, from the repository root::

    .venv/bin/python -m benchmarks.bench_check [--rounds 15] [--work benchmarks/.work/check]

It serves the tests' PyTorch-shaped world from 127.0.0.1, compiles a 4-target
matrix (linux-x86_64 × py3.11/3.12 × cu124/cpu) once, then times, alternating the
order every round:

* ``lockd compile --check`` (goal: < 0.3 s; it reads the inputs, the manifest and
  the lock files, and resolves nothing);
* the same with a Dockerfile among the inputs (the image parser comes in);
* ``lockd compile`` when nothing changed (the no-op: it also asks the database for
  the latest recorded lockset);
* what a CI job otherwise runs: ``uv pip compile`` of every target again (warm uv
  cache, ``--python`` given so uv does not search for interpreters), whose output
  would then be compared with the lock;
* ``lockd --help`` and ``lockd version``: the CLI's start-up floor, without and
  with typer's processing of a command.

Prints Markdown tables of median, min and max wall times and CPU times (on a
shared machine the second is what a quiet one would wait), and the machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.bench_snapshot import machine, print_samples

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ["--platform", "linux-x86_64", "--python", "3.11", "--python", "3.12"]
ACCELERATORS = ["--cuda", "cu124", "--cuda", "cpu"]
LOCKD = [sys.executable, "-m", "lockd"]
REQUIREMENTS = "torch==2.6.0\nnumpy\nrequests\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work" / "check")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from tests.support.pyindex import IndexServer
    from tests.support.world import build_world

    if args.work.exists():
        shutil.rmtree(args.work)
    server = build_world(IndexServer()).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "LOCKD_"))}
        env.update(
            PIP_CONFIG_FILE=os.devnull,
            UV_NO_CONFIG="1",
            UV_CACHE_DIR=str(args.work / "uv-cache"),
            LOCKD_HOME=str(args.work / "home"),
            LOCKD_INDEX_URL=f"{server.url}/simple",
            LOCKD_PYTORCH_INDEX=f"{server.url}/whl",
            PYTHONPATH=str(ROOT),
        )
        runners = _runners(args.work, server.url, env)
        for run in runners.values():  # warm-up: page cache, byte code, uv cache
            run()
        wall, cpu = _measure(runners, args.rounds)
    finally:
        server.stop()

    print(f"{args.rounds} rounds, alternating order; load average {os.getloadavg()[0]:.1f}\n")
    print(f"Machine: {machine()}\n")
    print("Wall time per run:\n")
    print_samples(wall)
    # On a shared machine the wall time mostly measures the queue for a core; the CPU
    # time the processes used (user + system) is what a quiet machine would wait.
    print("\nCPU time per run (user + system, all processes of the command):\n")
    print_samples(cpu)


def _runners(work: Path, url: str, env: dict[str, str]) -> dict[str, Callable[[], None]]:
    """A compiled project (with and without a Dockerfile), and the commands to time."""
    from lockd.resolvers.uv import uv_binary

    project = work / "project"
    project.mkdir(parents=True)
    (project / "requirements.in").write_text(REQUIREMENTS)
    (project / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
    for extra in ([], ["--dockerfile", "Dockerfile", "--out", "locks-df"]):
        subprocess.run(
            [*LOCKD, "compile", *MATRIX, *ACCELERATORS, *extra],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
        )
    uv_dir = work / "uv"
    uv_dir.mkdir()
    (uv_dir / "requirements.in").write_text(REQUIREMENTS)

    def command(argv: list[str], cwd: Path = project) -> Callable[[], None]:
        def run() -> None:
            proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
            if proc.returncode != 0:
                raise SystemExit(f"{argv}: exit {proc.returncode}\n{proc.stderr.decode()}")

        return run

    # One uv call per target, as a user would check 4 lock files; the variant index
    # as an extra index (what uv offers without lockd's routing).
    uv_calls = [
        command(
            [
                uv_binary(), "pip", "compile", "requirements.in", "--quiet",
                "--python-version", python, "--python", sys.executable,
                "--python-platform", "x86_64-manylinux_2_28",
                "--index-strategy", "unsafe-best-match",
                "--extra-index-url", f"{url}/whl/{variant}", "--default-index", f"{url}/simple",
                "--format", "pylock.toml",
                "-o", f"pylock.{python.replace('.', '')}{variant}.toml",
            ],
            cwd=uv_dir,
        )
        for python in ("3.11", "3.12")
        for variant in ("cu124", "cpu")
    ]  # fmt: skip
    check = [*LOCKD, "compile", *MATRIX, *ACCELERATORS, "--check"]
    return {
        "`lockd compile --check` (4 targets)": command(check),
        "`lockd compile --check --dockerfile Dockerfile`": command(
            [*check, "--dockerfile", "Dockerfile", "--out", "locks-df"]
        ),
        "`lockd compile` when nothing changed (asks the database)": command(
            [*LOCKD, "compile", *MATRIX, *ACCELERATORS]
        ),
        "4 × `uv pip compile` again (warm cache)": lambda: [call() for call in uv_calls] and None,
        "`lockd --help` (start-up floor)": command([*LOCKD, "--help"]),
        # a command that does nothing: start-up plus typer's processing of a command
        "`lockd version`": command([*LOCKD, "version"]),
    }


def _measure(
    runners: dict[str, Callable[[], None]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds of each runner, the order rotating every round."""
    wall: dict[str, list[float]] = {label: [] for label in runners}
    cpu: dict[str, list[float]] = {label: [] for label in runners}
    labels = list(runners)
    for round_ in range(rounds):
        shift = round_ % len(labels)
        for label in labels[shift:] + labels[:shift]:
            before = _children_cpu()
            start = time.perf_counter()
            runners[label]()
            wall[label].append(time.perf_counter() - start)
            cpu[label].append(_children_cpu() - before)
    return wall, cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()

"""Benchmark a 9-target ``lockd compile`` matrix against 9 sequential ``uv pip compile`` calls.

Usage, from the repository root::

    .venv/bin/python -m benchmarks.bench_matrix [--rounds 5] [--latency-ms 20] [--baseline REV]

The package world (``benchmarks/world.py``: PyTorch-shaped ``cpu``/``cu121``/
``cu124`` variant indexes next to a PyPI-shaped default index) is served from
127.0.0.1, every answer delayed by ``--latency-ms`` as a network round trip
would. Each round starts from cold caches (a fresh ``UV_CACHE_DIR``, and for
lockd a fresh ``LOCKD_HOME``: a new database and an empty metadata cache), and
the commands alternate their order from round to round:

* ``lockd compile`` of linux-x86_64 × Python 3.10/3.11/3.12 × cpu/cu121/cu124;
* what a user would otherwise run: one ``uv pip compile --generate-hashes`` per
  target, one after the other, with the variant index as an extra index and
  ``--python`` given (no interpreter discovery);
* the same nine calls started at once on one cache;
* with ``--baseline REV``, lockd at ``REV`` (checked out into a temporary git
  worktree, run with this virtual environment): the same compile before a change.

Prints Markdown tables of wall times (median, min, max), the ratio of lockd to
the sequential uv calls, the load average before and after, and the machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from benchmarks.bench_snapshot import machine

ROOT = Path(__file__).resolve().parent.parent
LOCKD = [sys.executable, "-m", "lockd"]


def clean_env(**extra: str) -> dict[str, str]:
    """No pip, uv or lockd settings of this machine: the benchmark is hermetic."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "LOCKD_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", PYTHONPATH=str(ROOT), **extra)
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}\n{proc.stderr[-3000:]}")


def uv_target(python: str, variant: str, url: str, out: Path) -> list[str]:
    """A user's ``uv pip compile`` for one target (the variant index as an extra index),
    its output in ``out`` (a fresh directory per round: uv reads an output file that
    exists as preferences)."""
    from lockd.resolvers.uv import uv_binary

    return [
        uv_binary(), "pip", "compile", "requirements.in", "--quiet", "--generate-hashes",
        "--python-version", python, "--python", sys.executable,
        "--python-platform", "x86_64-manylinux_2_17",
        "--index-url", f"{url}/simple", "--extra-index-url", f"{url}/whl/{variant}",
        "-o", str(out / f"requirements.{python}.{variant}.txt"),
    ]  # fmt: skip


@contextmanager
def checkout(revision: str | None, where: Path) -> Iterator[Path | None]:
    """lockd at ``revision`` in a temporary git worktree (``None``: no baseline)."""
    if revision is None:
        yield None
        return
    add = ["git", "worktree", "add", "--detach", str(where), revision]
    subprocess.run(add, cwd=ROOT, check=True, capture_output=True)
    try:
        yield where
    finally:
        remove = ["git", "worktree", "remove", "--force", str(where)]
        subprocess.run(remove, cwd=ROOT, check=False)


def alternate(
    runners: dict[str, Callable[[int], None]],
    rounds: int,
    cpu: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Wall seconds of each runner per round, the order rotating every round; with
    ``cpu``, the CPU seconds (user + system) of the processes each run waited for."""
    samples: dict[str, list[float]] = {label: [] for label in runners}
    labels = list(runners)
    for round_ in range(rounds):
        shift = round_ % len(labels)
        for label in labels[shift:] + labels[:shift]:
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            runners[label](round_)
            samples[label].append(time.perf_counter() - start)
            if cpu is not None:
                now = resource.getrusage(resource.RUSAGE_CHILDREN)
                spent = now.ru_utime - used.ru_utime + now.ru_stime - used.ru_stime
                cpu.setdefault(label, []).append(spent)
            print(f"  round {round_ + 1} {label}: {samples[label][-1]:.2f} s", file=sys.stderr)
    return samples


def print_report(
    samples: dict[str, list[float]],
    args: argparse.Namespace,
    loads: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> None:
    load_before, load_after = loads
    reference = statistics.median(samples["9 × `uv pip compile --generate-hashes`, sequential"])
    print(
        f"## 9-target matrix, {args.latency_ms:g} ms per request, cold caches\n\n"
        f"Command: `.venv/bin/python -m benchmarks.bench_matrix --rounds {args.rounds} "
        f"--latency-ms {args.latency_ms:g}"
        f"{f' --baseline {args.baseline}' if args.baseline else ''}`\n\n"
        f"Machine: {machine()}; {load_line(load_before, load_after)}\n"
    )
    print_table(samples, reference, "vs sequential uv")


def load_line(before: tuple[float, ...], after: tuple[float, ...]) -> str:
    return (
        f"load average (1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in before)}, "
        f"after {', '.join(f'{x:.2f}' for x in after)}"
    )


def print_table(
    samples: dict[str, list[float]],
    reference: float,
    ratio: str,
    cpu: dict[str, list[float]] | None = None,
) -> None:
    """Median, min, max of each command, its median over ``reference`` and, with
    ``cpu``, its median CPU seconds."""
    extra = ("| CPU (median) ", "| ---: ") if cpu else ("", "")
    print(f"| command | median | min | max | {ratio} {extra[0]}|")
    print(f"| --- | ---: | ---: | ---: | ---: {extra[1]}|")
    for label, values in samples.items():
        median = statistics.median(values)
        used = f"| {statistics.median(cpu[label]):.2f} s " if cpu else ""
        print(
            f"| {label} | {median:.2f} s | {min(values):.2f} s | {max(values):.2f} s "
            f"| {median / reference:.2f}× {used}|"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work" / "matrix")
    parser.add_argument("--baseline", default=None, metavar="REV", help="also time lockd at REV")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from benchmarks.world import PYTHONS, REQUIREMENTS, VARIANTS, build_matrix_world, targets
    from tests.support.pyindex import IndexServer

    if args.work.exists():
        shutil.rmtree(args.work)
    project = args.work / "project"
    project.mkdir(parents=True)
    (project / "requirements.in").write_text("\n".join(REQUIREMENTS) + "\n")
    server = build_matrix_world(IndexServer()).start()
    server.latency_s = args.latency_ms / 1000
    url = server.url

    def cold(tag: str, round_: int) -> dict[str, str]:
        where = args.work / f"{tag}-{round_}"
        return clean_env(UV_CACHE_DIR=str(where / "uv"), LOCKD_HOME=str(where / "home"))

    def lockd_at(source: Path, tag: str) -> Callable[[int], None]:
        def lockd(round_: int) -> None:
            env = cold(tag, round_)
            env.update(
                LOCKD_INDEX_URL=f"{url}/simple",
                LOCKD_PYTORCH_INDEX=f"{url}/whl",
                PYTHONPATH=str(source),
            )
            run([*LOCKD, "compile", *targets(), "--out", f"locks-{tag}-{round_}"], project, env)

        return lockd

    def uv_calls(tag: str, round_: int) -> list[list[str]]:
        out = args.work / f"{tag}-{round_}" / "out"
        out.mkdir(parents=True)
        return [uv_target(py, variant, url, out) for py in PYTHONS for variant in VARIANTS]

    def uv_sequential(round_: int) -> None:
        env = cold("uv", round_)
        for call in uv_calls("uv", round_):
            run(call, project, env)

    def uv_at_once(round_: int) -> None:
        env = cold("uvp", round_)
        calls = uv_calls("uvp", round_)
        with ThreadPoolExecutor(len(calls)) as pool:
            list(pool.map(lambda call: run(call, project, env), calls))

    runners = {
        "`lockd compile` (9 targets)": lockd_at(ROOT, "lockd"),
        "9 × `uv pip compile --generate-hashes`, sequential": uv_sequential,
        "9 × `uv pip compile --generate-hashes`, at once": uv_at_once,
    }
    load_before = os.getloadavg()
    try:
        with checkout(args.baseline, args.work / "baseline") as baseline:
            if baseline is not None:
                runners[f"`lockd compile` at {args.baseline}"] = lockd_at(baseline, "base")
            for runner in runners.values():  # warm-up: byte code, page cache
                runner(-1)
            samples = alternate(runners, args.rounds)
    finally:
        server.stop()
    load_after = os.getloadavg()

    print_report(samples, args, (load_before, load_after))
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()

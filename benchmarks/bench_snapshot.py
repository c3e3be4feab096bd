"""Benchmark ``lockd snapshot --no-system`` against ``pip freeze`` and ``uv pip freeze``.

Usage, from the repository root::

    .venv/bin/python -m benchmarks.bench_snapshot [--dists 300] [--rounds 15]
                                                  [--work benchmarks/.work/snapshot]

It builds ``--dists`` tiny wheels in code, installs them into a fresh venv with uv
(offline and hermetic: ``--no-index --find-links``, no pip/uv configuration), checks
that every tool lists all of them, then runs each command ``--rounds`` times,
rotating the order every round so no tool always runs on a warm or cold cache, and
prints a Markdown table of the median, min and max wall times, plus the machine.

Every command is timed as a fresh process pointed at the venv from outside
(``--python``), as a user would run it. Two reference rows split lockd's time:
``lockd version`` is the CLI's start-up alone, ``take_snapshot()`` in-process is the
snapshot alone (probe subprocess included).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def hermetic_env() -> dict[str, str]:
    """No inherited pip/uv configuration (this machine's pip.conf adds indexes and constraints)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.pop("VIRTUAL_ENV", None)
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", UV_NO_CONFIG="1")
    env["PYTHONPATH"] = str(ROOT)  # lockd from this checkout, installed or not
    return env


def build_venv(work: Path, count: int, env: dict[str, str]) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.support.wheels import WheelSpec, make_venv

    specs = [
        WheelSpec(
            f"bench-pkg-{i:03d}",
            f"1.{i}.0",
            requires=("bench-pkg-000",) if i else (),
            files={f"bench_pkg_{i:03d}/__init__.py": f"VALUE = {i}\n"},
        )
        for i in range(count)
    ]
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    return make_venv(work / "venv", specs, env=env)


def time_command(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    return time.perf_counter() - start


def machine() -> str:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.machine()}, nproc {os.cpu_count()}, CPU {model}, "
        f"Python {platform.python_version()}"
    )


def versions(env: dict[str, str], uv: str) -> str:
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--version"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    uv_version = subprocess.run(
        [uv, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"pip {pip}, {uv_version}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dists", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work" / "snapshot")
    args = parser.parse_args()

    from uv import find_uv_bin

    sys.path.insert(0, str(ROOT))
    from lockd.snapshot import take_snapshot

    env = hermetic_env()
    uv = find_uv_bin()
    python = build_venv(args.work, args.dists, env)
    site = take_snapshot(python, system=False, environ=env).python.site_packages[0]

    commands: dict[str, list[str]] = {
        "`lockd snapshot --python V --no-system`": [
            sys.executable, "-m", "lockd", "snapshot", "--python", str(python), "--no-system",
        ],
        "`pip --python V freeze`": [sys.executable, "-m", "pip", "--python", str(python), "freeze"],
        "`pip freeze --path SITE`": [sys.executable, "-m", "pip", "freeze", "--path", site],
        "`uv pip freeze --python V`": [uv, "pip", "freeze", "--python", str(python)],
        # What every lockd command pays before it does anything (Python, typer, rich).
        "`lockd version` (CLI start-up only)": [sys.executable, "-m", "lockd", "version"],
    }  # fmt: skip

    # Every tool must see every dist, or the timing compares different work.
    counts = {"take_snapshot": len(take_snapshot(python, system=False, environ=env).dists)}
    for label, argv in commands.items():
        if "freeze" in label:
            out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
            counts[label] = sum(line.startswith("bench-pkg-") for line in out.splitlines())
    if set(counts.values()) != {args.dists}:
        raise SystemExit(f"not every tool sees the {args.dists} dists: {counts}")

    runners: dict[str, Callable[[], float]] = {
        label: (lambda argv=argv: time_command(argv, env)) for label, argv in commands.items()
    }

    def in_process() -> float:
        start = time.perf_counter()
        take_snapshot(python, system=False, environ=env)
        return time.perf_counter() - start

    runners["`take_snapshot(V, system=False)` (in-process)"] = in_process
    for runner in runners.values():  # warm-up: page cache, byte code
        runner()
    samples: dict[str, list[float]] = {label: [] for label in runners}
    labels = list(runners)
    for round_ in range(args.rounds):
        shift = round_ % len(labels)
        for label in labels[shift:] + labels[:shift]:
            samples[label].append(runners[label]())

    print(f"{args.dists} dists, {args.rounds} rounds, alternating order; wall time per run\n")
    print(f"Machine: {machine()}; {versions(env, uv)}\n")
    print_samples(samples)


def print_samples(samples: dict[str, list[float]]) -> None:
    """A Markdown table of each command's median, min and max wall time."""
    print("| command | median | min | max |")
    print("| --- | ---: | ---: | ---: |")
    for label, values in samples.items():
        ms = [v * 1000 for v in values]
        print(f"| {label} | {statistics.median(ms):.0f} ms | {min(ms):.0f} ms | {max(ms):.0f} ms |")


if __name__ == "__main__":
    main()

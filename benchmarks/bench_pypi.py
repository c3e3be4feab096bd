"""Benchmark ``lockd compile`` against plain ``uv pip compile`` on real PyPI, cold caches.

Usage, from the repository root (needs PyPI; exits 0 with a note when offline)::

    .venv/bin/python -m benchmarks.bench_pypi [--rounds 3] [--only matrix|finetune]
        [--relock] [--baseline REV]

Two scenarios of issue 14, each side by side, the order alternating from round
to round, every round with a fresh ``UV_CACHE_DIR`` (and for lockd a fresh
``LOCKD_HOME``: a new database, an empty metadata cache), as on a CI runner,
and a fresh output directory: no previous lock on either side (a first lock).
uv reads an output file that exists as its preferences, which for Python 3.10
of this set saves it ≈ 0.5 s (fewer Requires-Python conflicts to learn from);
with ``--relock`` every round starts from one earlier run's outputs on both
sides instead (lockd with ``--refresh``, which reads its previous lockset as
preferences the same way), as a repository that has locked before:

* ``matrix``: torch 2.6.0 (from PyPI, ``--pytorch-index pypi``), transformers,
  fastapi, pandas, scikit-learn for linux-x86_64 × cu124 × Python
  3.10/3.11/3.12, against three sequential ``uv pip compile --generate-hashes``
  calls given ``--python`` (so uv does not search for interpreters);
* ``finetune``: one target (linux-x86_64, Python 3.11, cu124) of a fine-tuning
  set (torch, transformers, datasets, accelerate, peft, trl, evaluate,
  sentencepiece, bitsandbytes) against one such uv call.

With ``--baseline REV``, lockd at ``REV`` (a temporary git worktree, this
virtual environment) runs side by side too. Prints Markdown tables (median,
min, max, ratio to uv, median CPU seconds of all the processes of a run), the
load average before and after, and the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.bench_matrix import (
    LOCKD,
    alternate,
    checkout,
    clean_env,
    load_line,
    print_table,
    run,
)
from benchmarks.bench_snapshot import machine

ROOT = Path(__file__).resolve().parent.parent
PYPI = "https://pypi.org/simple"
SCENARIOS = {
    "matrix": (
        "torch==2.6.0\ntransformers\nfastapi\npandas\nscikit-learn\n",
        ("3.10", "3.11", "3.12"),
    ),
    "finetune": (
        "torch==2.6.0\ntransformers\ndatasets\naccelerate\npeft\ntrl\nevaluate\n"
        "sentencepiece\nbitsandbytes\n",
        ("3.11",),
    ),
}


def online() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError:
        return False
    return True


def uv_call(python: str, out: Path) -> list[str]:
    """A user's ``uv pip compile`` for one Python, its output in ``out``: uv reads an
    output file that exists as preferences, so a cold round must not find the last
    round's (which made uv's side up to 0.6 s faster per Python before 2026-12-01)."""
    from lockd.resolvers.uv import uv_binary

    return [
        uv_binary(), "pip", "compile", "requirements.in", "--quiet", "--generate-hashes",
        "--python-version", python, "--python", sys.executable,
        "--python-platform", "x86_64-manylinux_2_28", "--index-url", PYPI,
        "-o", str(out / f"requirements.{python}.txt"),
    ]  # fmt: skip


def scenario(
    name: str, rounds: int, work: Path, baseline: tuple[str, Path] | None, relock: bool
) -> None:
    requirements, pythons = SCENARIOS[name]
    project = work / name
    project.mkdir(parents=True)
    (project / "requirements.in").write_text(requirements)
    matrix = ["--platform", "linux-x86_64", "--cuda", "cu124", "--pytorch-index", "pypi"]
    for python in pythons:
        matrix += ["--python", python]
    seeds = work / f"{name}-seeds"

    def cold(tag: str, round_: int) -> tuple[dict[str, str], Path]:
        """A fresh uv cache, LOCKD_HOME and output directory (with ``relock``, holding
        the outputs of one earlier run: what a repository that locked before holds)."""
        where = work / f"{name}-{tag}-{round_}"
        if relock and round_ >= 0:
            shutil.copytree(seeds / tag, where / "out")
        else:
            (where / "out").mkdir(parents=True)
        env = clean_env(UV_CACHE_DIR=str(where / "uv"), LOCKD_HOME=str(where / "home"))
        return env, where / "out"

    def lockd_at(source: Path, tag: str) -> Callable[[int], None]:
        def lockd(round_: int) -> None:
            env, out = cold(tag, round_)
            env.update(LOCKD_INDEX_URL=PYPI, PYTHONPATH=str(source))
            again = ["--refresh"] if relock else []  # unchanged inputs: resolve anyway
            run([*LOCKD, "compile", *matrix, *again, "--out", str(out)], project, env)

        return lockd

    def uv(round_: int) -> None:
        env, out = cold("uv", round_)
        for python in pythons:
            run(uv_call(python, out), project, env)

    lockd_label = f"`lockd compile` ({len(pythons)} target{'s' if len(pythons) > 1 else ''})"
    uv_label = f"{len(pythons)} × `uv pip compile --generate-hashes --python`, sequential"
    runners = {lockd_label: lockd_at(ROOT, "lockd"), uv_label: uv}
    if baseline is not None:
        runners[f"`lockd compile` at {baseline[0]}"] = lockd_at(baseline[1], "base")
    if relock:  # one untimed run of each writes the outputs every round starts from
        for tag, runner in zip(("lockd", "uv", "base"), runners.values(), strict=False):
            runner(-1)
            shutil.move(work / f"{name}-{tag}--1" / "out", seeds / tag)
    load_before = os.getloadavg()
    cpu: dict[str, list[float]] = {}
    samples = alternate(runners, rounds, cpu)
    load_after = os.getloadavg()
    reference = statistics.median(samples[uv_label])
    state = "previous outputs present (re-lock)" if relock else "no previous outputs (first lock)"
    print(f"## {name}: {', '.join(requirements.split())} × Python {', '.join(pythons)}, {state}\n")
    print(
        f"Command: `.venv/bin/python -m benchmarks.bench_pypi --rounds {rounds} --only {name}"
        f"{' --relock' if relock else ''}"
        f"{f' --baseline {baseline[0]}' if baseline else ''}`"
        f"\n\nMachine: {machine()}; {load_line(load_before, load_after)}\n"
    )
    print_table(samples, reference, "vs uv", cpu)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=sorted(SCENARIOS), default=None)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work" / "pypi")
    parser.add_argument("--baseline", default=None, metavar="REV", help="also time lockd at REV")
    parser.add_argument(
        "--relock",
        action="store_true",
        help="every round starts from one earlier run's outputs (lockd: --refresh)",
    )
    args = parser.parse_args()
    if not online():
        print("PyPI is not reachable: benchmarks/bench_pypi.py skipped.")
        return
    sys.path.insert(0, str(ROOT))
    if args.work.exists():
        shutil.rmtree(args.work)
    try:
        with checkout(args.baseline, args.work / "baseline") as source:
            baseline = (args.baseline, source) if source is not None else None
            for name in [args.only] if args.only else list(SCENARIOS):
                scenario(name, args.rounds, args.work, baseline, args.relock)
    finally:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()

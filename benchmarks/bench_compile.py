"""Benchmark ``lockd compile`` against what a user would otherwise run.

Usage (from the repository root, after ``./scripts/setup``; needs PyPI)::

    .venv/bin/python benchmarks/bench_compile.py [--rounds-cold 3] [--rounds-warm 5]
        [--skip-pip-compile]

Scenarios, each run side by side in one process, alternating, medians:

1. cold caches (a fresh ``UV_CACHE_DIR`` per round, as on a CI runner): an ML
   requirement set (torch 2.6.0 from PyPI, transformers, fastapi, pandas,
   scikit-learn) for linux-x86_64 × cu124 × Python 3.10/3.11/3.12. lockd vs
   three sequential plain ``uv pip compile`` calls, vs the same three calls
   started at once on the shared cache (naive concurrency), vs lockd with
   ``LOCKD_CONCURRENCY=1``.
2. warm caches, same matrix: lockd's overhead over the three plain calls.
3. ``lockd --help`` start-up time.
4. ``pip-compile`` for the host target vs lockd (uv) for the same target.
5. the same matrix against the local PyTorch-shaped index of the tests (cu124
   variant index on 127.0.0.1), warm.

Prints a Markdown report; paste it into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lockd.resolvers.uv import uv_binary  # noqa: E402

REQUIREMENTS = "torch==2.6.0\ntransformers\nfastapi\npandas\nscikit-learn\n"
PYTHONS = ("3.10", "3.11", "3.12")
LOCKD = [sys.executable, "-m", "lockd"]
# What lockd passes to uv: an explicit interpreter, so uv does not search for one
# of the target's version (seconds per call when that version is not installed).
NO_DISCOVERY = ["--python", sys.executable]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "LOCKD_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    env.update(extra)
    return env


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(command)}\n{proc.stderr[-2000:]}")
    return elapsed


def uv_calls(
    work: Path,
    env: dict[str, str],
    index: str,
    parallel: bool,
    extra: list[str],
    *,
    pythons: tuple[str, ...] = PYTHONS,
) -> float:
    """One plain ``uv pip compile`` per Python version, in a row or all at once."""

    def one(py: str) -> None:
        out = work / f"uv-{py}.txt"
        timed(
            [
                uv_binary(),
                "pip",
                "compile",
                "requirements.in",
                "--python-version",
                py,
                "--python-platform",
                "x86_64-manylinux_2_28",
                "--generate-hashes",
                "--index-url",
                index,
                "-o",
                str(out),
                "-q",
                *extra,
            ],
            work,
            env,
        )

    start = time.perf_counter()
    if parallel:
        with ThreadPoolExecutor(len(pythons)) as pool:
            list(pool.map(one, pythons))
    else:
        for py in pythons:
            one(py)
    return time.perf_counter() - start


def lockd_compile(work: Path, env: dict[str, str], args: list[str]) -> float:
    matrix = ["--cuda", "cu124", "--platform", "linux-x86_64"]
    for py in PYTHONS:
        matrix += ["--python", py]
    return timed([*LOCKD, "compile", "requirements.in", *matrix, "--refresh", *args], work, env)


def median_of(rounds: int, runners: dict[str, Callable[[int], float]]) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for i in range(rounds):
        order = list(runners.items())
        if i % 2:
            order.reverse()  # alternate so neither side always runs second
        for name, run in order:
            samples[name].append(run(i))
            print(f"  round {i + 1} {name}: {samples[name][-1]:.2f}s", file=sys.stderr)
    return {name: statistics.median(values) for name, values in samples.items()}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.platform()}"
    )


def main() -> None:  # noqa: PLR0915 - one linear script, scenario after scenario
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds-cold", type=int, default=3)
    parser.add_argument("--rounds-warm", type=int, default=5)
    parser.add_argument("--skip-pip-compile", action="store_true")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="lockd-bench-"))
    work = base / "project"
    work.mkdir()
    (work / "requirements.in").write_text(REQUIREMENTS)
    pypi = "https://pypi.org/simple"
    lockd_args = ["--pytorch-index", "pypi", "--index", pypi]
    lines = [f"Machine: {machine()}", ""]

    def fresh_cache(tag: str, i: int) -> dict[str, str]:
        cache = base / f"cache-{tag}-{i}"
        shutil.rmtree(cache, ignore_errors=True)
        return clean_env(UV_CACHE_DIR=str(cache), LOCKD_HOME=str(base / f"home-{tag}-{i}"))

    print("cold caches …", file=sys.stderr)
    cold = median_of(
        args.rounds_cold,
        {
            "lockd compile": lambda i: lockd_compile(work, fresh_cache("lockd", i), lockd_args),
            "lockd, LOCKD_CONCURRENCY=1": lambda i: lockd_compile(
                work, {**fresh_cache("seq", i), "LOCKD_CONCURRENCY": "1"}, lockd_args
            ),
            "3 × uv pip compile, sequential": lambda i: uv_calls(
                work, fresh_cache("uv", i), pypi, False, []
            ),
            "3 × uv pip compile, at once": lambda i: uv_calls(
                work, fresh_cache("uvp", i), pypi, True, []
            ),
            "3 × uv pip compile --python (no discovery), sequential": lambda i: uv_calls(
                work, fresh_cache("uvx", i), pypi, False, NO_DISCOVERY
            ),
            "3 × uv pip compile --python (no discovery), at once": lambda i: uv_calls(
                work, fresh_cache("uvxp", i), pypi, True, NO_DISCOVERY
            ),
        },
    )
    # The strict reference: the plain calls without the interpreter search that
    # lockd avoids, so the ratio measures lockd's scheduling, not uv's discovery.
    ref = cold["3 × uv pip compile --python (no discovery), sequential"]
    lines += [
        "### Cold caches, PyPI, linux-x86_64 × cu124 × py3.10/3.11/3.12",
        "",
        "| command | median wall time | vs. sequential uv --python |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {name} | {value:.2f} s | {value / ref:.2f} |" for name, value in cold.items()]

    print("warm caches …", file=sys.stderr)
    warm_env = clean_env(UV_CACHE_DIR=str(base / "cache-warm"), LOCKD_HOME=str(base / "home-warm"))
    lockd_compile(work, warm_env, lockd_args)
    uv_calls(work, warm_env, pypi, False, [])
    warm = median_of(
        args.rounds_warm,
        {
            "lockd compile": lambda i: lockd_compile(work, warm_env, lockd_args),
            "3 × uv pip compile, sequential": lambda i: uv_calls(work, warm_env, pypi, False, []),
            "3 × uv pip compile --python (no discovery), sequential": lambda i: uv_calls(
                work, warm_env, pypi, False, NO_DISCOVERY
            ),
        },
    )
    overhead = (
        warm["lockd compile"] - warm["3 × uv pip compile --python (no discovery), sequential"]
    )
    lines += [
        "",
        "### Warm caches, same matrix",
        "",
        "| command | median wall time |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {value:.2f} s |" for name, value in warm.items()]
    lines += [
        "",
        f"lockd overhead over the plain uv calls without discovery: **{overhead:+.2f} s**",
    ]

    helps = [
        timed([str(ROOT / ".venv" / "bin" / "lockd"), "--help"], work, clean_env())
        for _ in range(7)
    ]
    lines += ["", f"`lockd --help`: median **{statistics.median(helps):.3f} s** over 7 runs"]

    if not args.skip_pip_compile:
        print("pip-compile …", file=sys.stderr)
        host_py = f"{sys.version_info.major}.{sys.version_info.minor}"

        def pip_compile(i: int) -> float:
            env = fresh_cache("pc", i)
            return timed(
                [
                    sys.executable,
                    "-m",
                    "piptools",
                    "compile",
                    "--generate-hashes",
                    "--quiet",
                    "--cache-dir",
                    str(base / f"pipcache-{i}"),
                    "--index-url",
                    pypi,
                    "-o",
                    str(work / "pc.txt"),
                    "requirements.in",
                ],
                work,
                env,
            )

        def lockd_host(i: int) -> float:
            env = fresh_cache("lh", i)
            return timed(
                [
                    *LOCKD,
                    "compile",
                    "requirements.in",
                    "--cuda",
                    "cu124",
                    "--platform",
                    "linux-x86_64",
                    "--python",
                    host_py,
                    "--refresh",
                    "--out",
                    "locks-host",
                    *lockd_args,
                ],
                work,
                env,
            )

        host = median_of(
            1, {"pip-compile (host target)": pip_compile, "lockd compile (host target)": lockd_host}
        )
        ratio = host["pip-compile (host target)"] / host["lockd compile (host target)"]
        lines += [
            "",
            "### Host target, cold caches: pip-compile vs lockd",
            "",
            "| command | wall time |",
            "| --- | ---: |",
        ]
        lines += [f"| {name} | {value:.2f} s |" for name, value in host.items()]
        lines += ["", f"lockd is **{ratio:.1f}×** faster than pip-compile"]

    print("local PyTorch-shaped index …", file=sys.stderr)
    from tests.support.pyindex import IndexServer
    from tests.support.world import build_world

    server = build_world(IndexServer()).start()
    try:
        (work / "local").mkdir(exist_ok=True)
        (work / "local" / "requirements.in").write_text("torch==2.6.0\nnumpy\nrequests\n")
        local_env = clean_env(
            UV_CACHE_DIR=str(base / "cache-local"), LOCKD_HOME=str(base / "home-local")
        )
        local_args = ["--index", f"{server.url}/simple", "--pytorch-index", f"{server.url}/whl"]
        matrix = [
            "--cuda",
            "cu124",
            "--platform",
            "linux-x86_64",
            "--python",
            "3.11",
            "--python",
            "3.12",
        ]
        # What a user would otherwise write (the variant index as an extra index,
        # which is exactly what lets its old numpy copies in), minus the seconds
        # uv spends looking for an interpreter.
        extra_uv = [
            "--extra-index-url",
            f"{server.url}/whl/cu124",
            "--index-strategy",
            "unsafe-best-match",
            *NO_DISCOVERY,
        ]

        def lockd_local(i: int) -> float:
            return timed(
                [*LOCKD, "compile", "requirements.in", *matrix, "--refresh", *local_args],
                work / "local",
                local_env,
            )

        def uv_local(i: int) -> float:
            return uv_calls(
                work / "local",
                local_env,
                f"{server.url}/simple",
                False,
                extra_uv,
                pythons=("3.11", "3.12"),
            )

        lockd_local(0)
        uv_local(0)
        local = median_of(
            args.rounds_warm,
            {"lockd compile": lockd_local, "2 × uv pip compile (extra index)": uv_local},
        )
        lines += [
            "",
            "### Local PyTorch-shaped index (127.0.0.1), cu124 × py3.11/3.12, warm",
            "",
            "| command | median wall time |",
            "| --- | ---: |",
        ]
        lines += [f"| {name} | {value:.2f} s |" for name, value in local.items()]
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)

    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Many real writer processes against one database at once, and what must hold afterwards.

A *writer kind* turns a number into a :class:`Launch`: the command of one
process that writes to the database (``lockd compile`` of a project,
``lockd drift`` of a project, ``lockd snapshot --post`` to a ``lockd serve``) and
how to read, from a successful run's output, the hashes of the records it
says it stored. :func:`run_together` starts every launch before waiting for
any, and :func:`assert_all_recorded_once` checks the contract:

* every run succeeded, or failed with one clear message (exit 2 or 3, an
  ``error:`` paragraph, no traceback);
* every record a successful run claims is in the database exactly once, and
  the database holds no record that nobody claims (nothing lost, nothing
  extra);
* ``lockd audit verify`` finds every chain intact and unforked.

Adding a writer kind is one more :data:`WriterKind`: a function from a number
to a :class:`Launch` whose ``claims`` reads the hashes it stored from the run
(``serve_writer``: snapshots posted to ``lockd serve``). A writer whose
records live in a table of their own passes ``tables=(*CHAINED, "its_table")``
(any table with a ``hash`` column) to the checks; the checks stay the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

from lockd.store.engine import database_url
from tests.conftest import Run, run_lockd

# The tables whose rows are records a writer claims (each has a unique ``hash`` column).
CHAINED = ("locksets", "drift_reports")


def claim_lockset(run: Run) -> set[str]:
    """``lockd compile --format json``: the lockset it recorded."""
    return {json.loads(run.stdout)["lockset"]}


def claim_drift_reports(run: Run) -> set[str]:
    """``lockd drift --format json``: the report(s) it recorded (one, or ``reports``)."""
    data = json.loads(run.stdout)
    return {r["hash"] for r in data.get("reports", [data])}


@dataclass(frozen=True)
class Launch:
    """One writer process."""

    kind: str
    argv: tuple[str, ...]  # lockd's arguments
    cwd: Path
    env: Mapping[str, str]
    claims: Callable[[Run], set[str]]  # record hashes a successful run says it stored
    ok_codes: frozenset[int] = field(default=frozenset({0}))


@dataclass(frozen=True)
class Outcome:
    launch: Launch
    run: Run

    @property
    def succeeded(self) -> bool:
        return self.run.returncode in self.launch.ok_codes

    def describe(self) -> str:
        return (
            f"{self.launch.kind} {' '.join(self.launch.argv)} -> {self.run.returncode}\n"
            f"{self.run.output[-2000:]}"
        )


WriterKind = Callable[[int], Launch]
"""Launch number ``i`` of one kind of writer (each in its own checkout or project)."""


def run_together(launches: Sequence[Launch], *, timeout: float = 600) -> list[Outcome]:
    """Start every process, then wait for all of them (each within ``timeout``)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "lockd", *launch.argv],
            cwd=launch.cwd,
            env=dict(launch.env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for launch in launches
    ]
    deadline = time.monotonic() + timeout
    outcomes = []
    try:
        for launch, proc in zip(launches, procs, strict=True):
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            outcomes.append(Outcome(launch, Run(proc.returncode, out, err)))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return outcomes


def recorded_hashes(url: str, tables: Sequence[str] = CHAINED) -> list[str]:
    """Every record hash in ``tables``, duplicates kept."""
    engine = create_engine(database_url(url))
    try:
        with engine.connect() as conn:
            return [
                row[0]
                for table in tables
                for row in conn.execute(text(f"SELECT hash FROM {table}"))  # noqa: S608
            ]
    finally:
        engine.dispose()


def assert_clear_failure(run: Run) -> None:
    """One paragraph on stderr, a contract exit code, no traceback."""
    assert run.returncode in (2, 3), run.output
    assert "Traceback" not in run.output, run.output
    assert run.stderr.startswith("error:"), run.output


def assert_all_recorded_once(
    outcomes: Iterable[Outcome],
    url: str,
    *,
    env: Mapping[str, str],
    cwd: Path,
    before: Iterable[str] = (),
    tables: Sequence[str] = CHAINED,
) -> list[Outcome]:
    """The contract above; returns the failures (each already checked to be clear)."""
    outcomes = list(outcomes)
    failures = [o for o in outcomes if not o.succeeded]
    for failure in failures:
        assert_clear_failure(failure.run)
    claimed: Counter[str] = Counter()
    for outcome in outcomes:
        if outcome.succeeded:
            assert "Traceback" not in outcome.run.output, outcome.describe()
            claimed.update(outcome.launch.claims(outcome.run))
    assert [h for h, n in claimed.items() if n > 1] == []  # no two runs claim one record
    stored = Counter(recorded_hashes(url, tables))
    assert [h for h, n in stored.items() if n > 1] == []
    assert set(stored) == set(claimed) | set(before), (
        f"lost: {sorted(set(claimed) - set(stored))}, "
        f"unclaimed: {sorted(set(stored) - set(claimed) - set(before))}"
    )
    verify = run_lockd("audit", "verify", "--db", url, "--format", "json", cwd=cwd, env=dict(env))
    assert verify.returncode == 0, verify.output
    assert json.loads(verify.stdout)["verified"] is True
    return failures


# -- writer kinds --------------------------------------------------------------------


def compile_writer(
    root: Path, env: Mapping[str, str], url: str, requirements: str = "numpy\n"
) -> WriterKind:
    """``lockd compile`` of project ``compile-<i>``, each in a checkout of its own."""

    def launch(i: int) -> Launch:
        checkout = root / f"checkout-{i}"
        checkout.mkdir(parents=True)
        (checkout / "requirements.in").write_text(requirements)
        return Launch(
            "compile",
            (
                "compile",
                "--project",
                f"compile-{i}",
                "--platform",
                "linux-x86_64",
                "--python",
                "3.11",
                "--cuda",
                "cpu",
                "--db",
                url,
                "--format",
                "json",
            ),
            checkout,
            env,
            claim_lockset,
        )

    return launch


def drift_writer(root: Path, env: Mapping[str, str], url: str, project: str) -> WriterKind:
    """``lockd drift`` of one project (artifact checks: no rebuild, no re-resolution)."""

    def launch(i: int) -> Launch:
        return Launch(
            "drift",
            (
                "drift",
                "--project",
                project,
                "--no-rebuild",
                "--no-creep",
                "--db",
                url,
                "--format",
                "json",
            ),
            root,
            env,
            claim_drift_reports,
        )

    return launch


def serve_writer(
    root: Path, env: Mapping[str, str], *, server: str, token: str, project: str, target: str
) -> WriterKind:
    """``lockd snapshot --post`` to a running ``lockd serve``: the server's workers append
    the report to the project's drift chain, beside the CLI writers (exit 1: it drifted)."""

    def launch(i: int) -> Launch:
        return Launch(
            "serve",
            (
                "snapshot",
                "--no-system",
                "--post",
                server,
                "--project",
                project,
                "--target",
                target,
                "--deployment",
                f"pod-{i}",
            ),
            root,
            {**env, "LOCKD_TOKEN": token},
            claim_drift_reports,
            ok_codes=frozenset({0, 1}),
        )

    return launch

"""A lockset's drift status: the worst over the newest report of each target and origin.

A deployment in drift stays in drift for ``drift summary``, ``audit`` and
``history`` however many other deployments (or local checks) report clean after
it; its own clean report ends it. The reports are posted through the fleet's
ingestion into a real SQLite file; the verdicts are read by the real CLI.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from lockd.app.fleet import Fleet, Ingestion
from lockd.drift import DriftReport, Finding, Standing
from lockd.store import Store
from tests.conftest import Run, hermetic_env, run_lockd
from tests.support.serve import TARGET, fleet_lockset, lock_files, snapshot_doc

OTHER = "linux-x86_64-py311-cpu"


def _without_numpy() -> bytes:
    doc = snapshot_doc()
    doc["dists"] = [d for d in doc["dists"] if d["name"] != "numpy"]
    return json.dumps(doc).encode()


def _clean() -> bytes:
    return json.dumps(snapshot_doc()).encode()


def _verdicts(tmp_path: Path, db: str) -> tuple[Run, dict[str, Any], dict[str, Any]]:
    """(drift summary as JSON, the audit's project summary, the history row)."""
    env = hermetic_env(tmp_path)
    summary = run_lockd("drift", "summary", "--since", "24h", "--db", db, "--format", "json",
                        cwd=tmp_path, env=env)  # fmt: skip
    audit = run_lockd("audit", "--format", "json", "--db", db, cwd=tmp_path, env=env)
    assert audit.returncode == 0, audit.output
    history = run_lockd("history", "--format", "json", "--db", db, cwd=tmp_path, env=env)
    assert history.returncode == 0, history.output
    (project,) = json.loads(audit.stdout)["summary"]["per_project"]
    (row,) = json.loads(history.stdout)
    return summary, project, row


def test_one_deployment_in_drift_is_not_hidden_by_another_ones_clean_report(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'lockd.db'}"
    store = Store(db)
    lockset, files = lock_files(fleet_lockset("vision"))
    store.record_lockset(lockset, files)
    fleet = Fleet(store, stale_after=timedelta(hours=1))
    assert fleet.ingest(Ingestion("vision", TARGET, "eu-1"), _without_numpy()).status == "drift"
    assert fleet.ingest(Ingestion("vision", TARGET, "us-1"), _clean()).status == "clean"

    # The dashboard's night is the day's worst, not its last report's status.
    days, (overview,) = fleet.projects(nights=1)
    assert overview.days[TARGET][days[-1]] == ("drift", 1, 1, 0)

    summary, project, row = _verdicts(tmp_path, db)
    assert summary.returncode == 1, summary.output
    data = json.loads(summary.stdout)
    assert data["status"] == "drift"
    (merged,) = data["projects"]
    assert [(f["kind"], f["package"]) for f in merged["findings"]] == [("missing", "numpy")]
    assert len(merged["reports"]) == 2  # eu-1's and us-1's
    assert (project["last_drift_status"], project["open_findings"]) == ("drift", 1)
    assert row["drift"] == "drift"

    # eu-1's own clean report ends it.
    assert fleet.ingest(Ingestion("vision", TARGET, "eu-1"), _clean()).status == "clean"
    store.close()
    summary, project, row = _verdicts(tmp_path, db)
    assert summary.returncode == 0, summary.output
    assert (project["last_drift_status"], project["open_findings"]) == ("clean", 0)
    assert row["drift"] == "clean"


def _report(*findings: Finding, checks: tuple[str, ...] = (f"rebuild:{TARGET}",)) -> DriftReport:
    return DriftReport("p", "l", "2026-11-30T00:00:00Z", findings, checks=checks)


def test_standing_keeps_the_newest_report_of_each_target_and_origin() -> None:
    missing = Finding("missing", TARGET, "numpy", "2.1.0", None)
    note = Finding("system-lib-missing", OTHER, "libfoo", None, None, severity="info")
    standing = Standing()
    assert standing.status is None
    standing.add(_report(missing, checks=(f"rebuild:{TARGET}", f"rebuild:{OTHER}")), "")
    # A later local check of the other target only does not clear the first target.
    standing.add(_report(note, checks=(f"rebuild:{OTHER}",)), "")
    assert (standing.status, standing.open_findings) == ("drift", (missing,))
    # A deployment's clean report is its own unit; the local checks' clean one clears theirs.
    standing.add(_report(checks=(f"live:{TARGET}",)), "deployment:eu-1")
    assert standing.status == "drift"
    standing.add(_report(), "")
    assert (standing.status, standing.open_findings) == ("clean", ())

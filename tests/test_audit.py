"""`lockd audit`: the report model, Markdown/JSON renderers and the CLI, over a store built in code.

The seed database (``seed``) is recorded through ``Store`` directly: two
projects, a three-lockset chain with images and two drift reports. The other
``test_audit_*`` modules reuse it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lockd.drift import CheckError, DriftReport, Finding
from lockd.errors import UsageError
from lockd.lockset import Artifact, InputFile, Lock, Lockset, Provenance, canonical_json
from lockd.report.audit_model import AuditBuilder, Period, chain_lines
from lockd.report.markdown import code, md
from lockd.store import Store
from lockd.store.verify import ChainReport
from tests.conftest import Run, hermetic_env

PYPI = "https://pypi.org/simple"
TORCH_BASE = "https://download.pytorch.org/whl"
CU124 = f"{TORCH_BASE}/cu124"
CPU = f"{TORCH_BASE}/cpu"
CU_TARGET = "linux-x86_64-py311-cu124"
CPU_TARGET = "linux-x86_64-py311-cpu"
HOSTILE = "<script>alert(1)</script> | *bold* `tick`"
IMAGE = {
    "reference": "python:3.11-slim",
    "registry": "registry-1.docker.io",
    "repository": "library/python",
    "tag": "3.11-slim",
    "index_digest": "sha256:" + "d" * 64,
    "media_type": "application/vnd.oci.image.index.v1+json",
    "platforms": [
        {"os": "linux", "architecture": "amd64", "variant": None, "digest": "sha256:" + "e" * 64},
        {"os": "linux", "architecture": "arm64", "variant": "v8", "digest": "sha256:" + "f" * 64},
    ],
    "resolved_at": "2026-03-10T09:00:00Z",
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def artifact(name: str, version: str, index: str, tag: str = "py3-none-any") -> Artifact:
    filename = f"{name.replace('-', '_')}-{version}-{tag}.whl"
    return Artifact(
        name, version, index, f"{index}/{filename.replace('+', '%2B')}", filename, sha(filename)
    )


def lockset(
    project: str,
    torch: str,
    created: str,
    parent: str | None,
    *,
    images: tuple[dict[str, object], ...] = (),
    user: str = "alice",
) -> Lockset:
    common = (artifact("numpy", "2.1.0", PYPI), artifact("requests", "2.32.3", PYPI))
    locks = (
        Lock(
            CU_TARGET,
            (artifact("torch", f"{torch}+cu124", CU124, "cp311-cp311-linux_x86_64"), *common),
            files={f"pylock.{CU_TARGET}.toml": sha(torch + "cu")},
            flavour="cuda 12.4",
        ),
        Lock(
            CPU_TARGET,
            (artifact("torch", f"{torch}+cpu", CPU, "cp311-cp311-linux_x86_64"), *common),
            files={f"pylock.{CPU_TARGET}.toml": sha(torch + "cpu")},
            flavour="cpu",
        ),
    )
    return Lockset(
        project=project,
        inputs=(InputFile("requirements.in", sha(torch)),),
        requirements=(f"torch=={torch}", "numpy", "requests"),
        targets=(CU_TARGET, CPU_TARGET),
        resolver="uv",
        resolver_version="0.13.9",
        indexes={"default": PYPI, "pytorch": TORCH_BASE},
        cutoff=created,
        input_key=sha(project + torch),
        provenance=Provenance(user, "build-1", created, sha(created)[:40], "0.1.0"),
        locks=locks,
        images=images,
        parent=parent,
    )


@dataclass(frozen=True)
class Seed:
    url: str
    path: Path
    ml: tuple[str, str, str]  # ml-model's lockset hashes, oldest first
    web: str
    drift: tuple[str, str]  # ml-model's drift report hashes, oldest first


def build_seed(path: Path, url: str | None = None) -> Seed:
    """The database every audit test reads (recorded through the repository): an SQLite
    file at ``path``, or the database at ``url``."""
    url = url or f"sqlite:///{path}"
    store = Store(url)
    try:
        first = lockset("ml-model", "2.5.1", "2026-01-10T10:00:00Z", None)
        second = lockset("ml-model", "2.6.0", "2026-02-10T10:00:00Z", first.hash, user="bob")
        third = lockset("ml-model", "2.6.0", "2026-03-10T10:00:00Z", second.hash, images=(IMAGE,))
        web = lockset("web", "2.4.0", "2026-01-05T08:00:00Z", None)
        for item in (first, web, second, third):
            store.record_lockset(item)
        clean = store.record_drift(
            DriftReport("ml-model", second.hash, "2026-02-15T03:00:00Z", (), checks=("creep",))
        )
        drifted = store.record_drift(
            DriftReport(
                "ml-model",
                third.hash,
                "2026-03-15T03:00:00Z",
                (
                    Finding("cpu-wheel", CU_TARGET, "torch", "2.6.0+cu124", "2.6.0+cpu"),
                    Finding(
                        "version-creep",
                        CU_TARGET,
                        "requests",
                        "2.32.3",
                        "2.33.0",
                        severity="warning",
                        detail=HOSTILE,
                    ),
                ),
                errors=(CheckError(CPU_TARGET, "rebuild", "uv was not found"),),
                checks=("rebuild:" + CU_TARGET, "creep"),
            )
        )
    finally:
        store.close()
    return Seed(
        url,
        path,
        (first.hash, second.hash, third.hash),
        web.hash,
        (clean.hash, drifted.hash),
    )


@pytest.fixture
def seed(tmp_path: Path) -> Seed:
    return build_seed(tmp_path / "lockd.db")


def run_lockd(tmp_path: Path, *args: str) -> Run:
    """The real CLI in a subprocess (no index world needed)."""
    proc = subprocess.run(
        [sys.executable, "-m", "lockd", *args],
        cwd=tmp_path,
        env=hermetic_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


# -- the model ---------------------------------------------------------------------


def test_json_report_covers_every_record(seed: Seed, tmp_path: Path) -> None:
    run = run_lockd(tmp_path, "audit", "--db", seed.url, "--format", "json")
    assert run.returncode == 0, run.output
    doc = json.loads(run.stdout)
    assert doc["format"] == "lockd.audit/1"
    assert doc["filter"] == {"project": None, "since": None, "until": None}
    summary = doc["summary"]
    assert (summary["projects"], summary["locksets"], summary["drift_reports"]) == (2, 4, 2)
    # open findings: those of each project's latest drift report only
    assert summary["open_findings"] == 2
    assert summary["chain_verified"] is True
    per_project = {p["project"]: p for p in summary["per_project"]}
    assert per_project["ml-model"]["last_drift_status"] == "drift"
    assert per_project["ml-model"]["latest_lockset"] == seed.ml[2]
    assert per_project["web"]["last_drift_status"] == "not checked"

    ml = next(p for p in doc["projects"] if p["name"] == "ml-model")
    assert [entry["hash"] for entry in ml["locksets"]] == list(reversed(seed.ml))
    newest = ml["locksets"][0]
    assert newest["drift_status"] == "drift"
    assert newest["parent"] == seed.ml[1]
    assert newest["images"] == [IMAGE]
    assert newest["indexes"] == {"default": PYPI, "pytorch": TORCH_BASE}
    assert newest["provenance"]["user"] == "alice"
    assert newest["inputs"][0]["path"] == "requirements.in"
    torch = newest["locks"][0]["artifacts"][0]
    assert (torch["name"], torch["version"], torch["index"]) == ("torch", "2.6.0+cu124", CU124)
    # each entry is the recorded document plus its hash: a reader can recompute it
    for entry in ml["locksets"]:
        body = {k: v for k, v in entry.items() if k not in ("hash", "drift_status")}
        assert sha(canonical_json(body)) == entry["hash"]
    for entry in ml["drift_reports"]:
        body = {k: v for k, v in entry.items() if k != "hash"}
        assert sha(canonical_json(body)) == entry["hash"]
    assert [d["hash"] for d in ml["drift_reports"]] == list(reversed(seed.drift))
    assert doc["chain"]["verified"] is True


def test_period_and_project_filters(seed: Seed, tmp_path: Path) -> None:
    run = run_lockd(
        tmp_path,
        "audit",
        "--db",
        seed.url,
        "--project",
        "ml-model",
        "--since",
        "2026-02-01",
        "--until",
        "2026-02-28",
        "--format",
        "json",
    )
    assert run.returncode == 0, run.output
    doc = json.loads(run.stdout)
    assert doc["filter"] == {
        "project": "ml-model",
        "since": "2026-02-01T00:00:00Z",
        "until": "2026-03-01T00:00:00Z",  # a date as --until includes that whole day
    }
    (project,) = doc["projects"]
    recent = run_lockd(tmp_path, "audit", "--db", seed.url, "--since", "7d", "--format", "json")
    assert recent.returncode == 0, recent.output  # a duration, as drift summary and the API take
    assert json.loads(recent.stdout)["filter"]["since"].endswith("Z")
    assert [e["hash"] for e in project["locksets"]] == [seed.ml[1]]
    assert [d["hash"] for d in project["drift_reports"]] == [seed.drift[0]]
    assert project["summary"]["last_drift_status"] == "clean"
    assert project["summary"]["open_findings"] == 0
    # the chain is always verified in full: a window cannot prove its own start
    assert doc["chain"]["locksets"] == 3


def test_period_parsing() -> None:
    period = Period.parse("2026-01-01", "2026-01-31T12:00:00+02:00")
    assert period.to_dict() == {"since": "2026-01-01T00:00:00Z", "until": "2026-01-31T10:00:00Z"}
    assert Period.parse(None, None).describe() == "all time"
    with pytest.raises(UsageError, match="not before"):
        Period.parse("2026-02-01", "2026-01-01")
    with pytest.raises(UsageError, match="--since 'yesterday' is not a date, a time or a dur"):
        Period.parse("yesterday", None)
    now = datetime(2026, 3, 4, 6, 45, tzinfo=UTC)  # durations count back from now, as drift's
    assert Period.parse("7d", "1h", now=now).to_dict() == {
        "since": "2026-02-25T06:45:00Z",
        "until": "2026-03-04T05:45:00Z",
    }


def test_the_report_model_is_built_record_by_record(seed: Seed) -> None:
    store = Store(seed.url)
    try:
        first, second = store.get(seed.ml[0]), store.get(seed.ml[1])
    finally:
        store.close()
    builder = AuditBuilder("ml-model", Period.parse(None, "2026-02-01"))
    entry = builder.lockset(seed.ml[0], "ml-model", first.body())
    assert entry is not None and entry.hash == seed.ml[0] and entry.lockset == first
    assert builder.lockset(seed.ml[1], "ml-model", second.body()) is None  # after the period
    assert builder.lockset("f" * 64, "ml-model", None) is None  # not a document: unreadable
    report = builder.build(ChainReport(()), generated_at="2026-04-01T00:00:00Z", lockd_version="9")
    (project,) = report.projects
    assert project.latest == entry.line()
    assert project.unreadable == ("f" * 64,)
    assert project.drift_status == "not checked"
    assert project.chain is None
    assert report.summary()["chain_verified"] is True


# -- Markdown -----------------------------------------------------------------------


def test_markdown_report_for_pull_requests(seed: Seed, tmp_path: Path) -> None:
    out = tmp_path / "audit.md"
    run = run_lockd(tmp_path, "audit", "--db", seed.url, "--project", "ml-model", "-o", str(out))
    assert run.returncode == 0, run.output
    assert run.stdout == ""
    text = out.read_text()
    assert text.startswith("# lockd audit report")
    assert "**Hash chains verified.**" in text
    assert "| ml-model | 3 | `" + seed.ml[2][:12] + "` |" in text
    assert "| web |" not in text  # --project
    for digest in seed.ml:
        assert f"#### Lockset `{digest[:12]}`" in text
        assert f"`{digest}`" in text
    # artifacts with their index, file and sha256, per target
    torch = artifact("torch", "2.6.0+cu124", CU124, "cp311-cp311-linux_x86_64")
    assert f"| torch | 2.6.0+cu124 | {md(CU124)} | `{torch.filename}` | `{torch.sha256}` |" in text
    assert f"<summary>{CU_TARGET} · cuda 12.4 · 3 artifacts</summary>" in text
    # base images with their digests
    assert "`python:3.11-slim`" in text and "`sha256:" + "d" * 64 + "`" in text
    assert "| linux/arm64/v8 | `sha256:" + "f" * 64 + "` |" in text
    # drift history with each finding; the hostile detail cannot break the table
    assert "| cpu-wheel | error |" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; \\| \\*bold\\* \\`tick\\`" in text
    assert "<script>" not in text
    assert "**check rebuild could not run**" in text
    assert "git commit `" in text and "by bob on build-1" in text


def test_markdown_cells_escape() -> None:
    assert md("a|b_c*d") == "a\\|b\\_c\\*d"
    assert md("line\nbreak") == "line<br>break"
    assert code("x|y") == "`x\\|y`"
    assert code("a`b") == "`` a`b ``"


# -- the CLI ------------------------------------------------------------------------


def test_audit_group_takes_options_and_the_verify_command(seed: Seed, tmp_path: Path) -> None:
    report = run_lockd(tmp_path, "audit", "--db", seed.url, "--project", "web")
    assert report.returncode == 0, report.output
    assert "## Project web" in report.stdout
    verify = run_lockd(tmp_path, "audit", "verify", "--db", seed.url, "--project", "web")
    assert verify.returncode == 0, verify.output
    assert "web: 1 lockset, 0 drift reports" in verify.stdout
    assert "verified 1 project:" in verify.stdout
    assert "# lockd audit report" not in verify.stdout  # the group callback did not render


def test_audit_usage_errors(seed: Seed, tmp_path: Path) -> None:
    for args, message in (
        (("--project", "nope"), "No project 'nope'"),
        (("--since", "soon"), "--since 'soon' is not a date, a time or a duration"),
        (("--since", "0d"), "--since '0d' is an empty period"),
        (("--lockset", seed.ml[0][:8]), "--lockset and --target choose what a CycloneDX"),
        (("--format", "cyclonedx"), "holds 2 projects"),
        (("--format", "cyclonedx", "--project", "web", "--target", "x"), "has no lock for target"),
    ):
        run = run_lockd(tmp_path, "audit", "--db", seed.url, *args)
        assert run.returncode == 2, (args, run.output)
        assert run.stderr.startswith("error:"), run.stderr
        assert message in run.stderr, run.stderr
        assert "Traceback" not in run.output


def test_help_stays_fast_and_lists_audit(tmp_path: Path) -> None:
    env = hermetic_env(tmp_path)
    code_ = (
        "import sys, lockd.cli\n"
        "heavy = [m for m in ('jinja2', 'cyclonedx') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code_], env=env, check=True, timeout=60)
    run = run_lockd(tmp_path, "audit", "--help")
    assert run.returncode == 0
    assert "verify" in run.stdout and "--since" in run.stdout


def test_chain_lines_name_the_heads(seed: Seed) -> None:
    store = Store(seed.url)
    try:
        lines = chain_lines(store.verify_chains())
    finally:
        store.close()
    assert lines[0].startswith(
        f"ml-model: 3 locksets, 2 drift reports, head lockset {seed.ml[2][:12]}"
    )
    assert lines[-1].startswith("verified 2 projects: 4 locksets and 2 drift reports")


def test_end_to_end_compile_then_audit(lockd, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The real `lockd compile` against the local index world, then every audit output."""
    (tmp_path / "requirements.in").write_text("torch==2.6.0\nrequests\n")
    args = ("--platform", "linux-x86_64", "--python", "3.11", "--project", "e2e")
    assert lockd("compile", "--cuda", "cu124", *args).returncode == 0
    report = lockd("audit", "--project", "e2e", "--format", "json")
    assert report.returncode == 0, report.output
    doc = json.loads(report.stdout)
    (entry,) = doc["projects"][0]["locksets"]
    manifest = json.loads((tmp_path / "locks" / "lockd.json").read_text())
    assert entry["hash"] == manifest["hash"]
    assert {a["name"] for a in entry["locks"][0]["artifacts"]} >= {"torch", "requests", "triton"}
    html = lockd("audit", "--project", "e2e", "--format", "html", "-o", "audit.html")
    assert html.returncode == 0, html.output
    assert manifest["hash"] in (tmp_path / "audit.html").read_text()
    bom = lockd("audit", "--project", "e2e", "--format", "cyclonedx", "-o", "sbom.json")
    assert bom.returncode == 0, bom.output
    sbom = json.loads((tmp_path / "sbom.json").read_text())
    purls = {c["name"]: c.get("purl") for c in sbom["components"]}
    assert purls["torch"].startswith("pkg:pypi/torch@2.6.0%2Bcu124?repository_url=")
    assert purls["requests"] == "pkg:pypi/requests@2.32.3"  # the default index: no qualifier
    verify = lockd("audit", "verify", "--format", "json")
    assert verify.returncode == 0, verify.output
    assert json.loads(verify.stdout)["projects"][0]["head_lockset"] == manifest["hash"]

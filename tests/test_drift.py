"""`lockd drift` end to end: planted drift is found, a clean state is silent.

Each test gets its own PyTorch-shaped world (so it may change what the
indexes serve), compiles a lock with the real CLI, and then drifts it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from tests.conftest import Run, hermetic_env
from tests.support.pyindex import IndexFile, IndexServer
from tests.support.wheels import WheelSpec
from tests.support.world import LINUX_X86, build_world, index_at

HOST_PY = f"{sys.version_info.major}.{sys.version_info.minor}"
HOST_TAG = f"py{sys.version_info.major}{sys.version_info.minor}"
CP = f"cp{sys.version_info.major}{sys.version_info.minor}"
CU_TARGET = f"linux-x86_64-{HOST_TAG}-cu124"

LockdRunner = Callable[..., Run]


@pytest.fixture
def own_world() -> Iterator[IndexServer]:
    server = build_world(IndexServer()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def drift_lockd(lockd: LockdRunner, own_world: IndexServer) -> LockdRunner:
    env = {
        "LOCKD_INDEX_URL": f"{own_world.url}/simple",
        "LOCKD_PYTORCH_INDEX": f"{own_world.url}/whl",
    }

    def run(*args: str, **kwargs: object) -> Run:
        extra = dict(kwargs.pop("env", {}) or {})  # type: ignore[call-overload]
        return lockd(*args, env={**env, **extra}, **kwargs)

    return run


def compile_lock(run: LockdRunner, tmp_path: Path, reqs: str, *args: str) -> str:
    (tmp_path / "requirements.in").write_text(reqs)
    result = run(
        "compile",
        "--cuda",
        "cu124",
        "--platform",
        "linux-x86_64",
        "--python",
        HOST_PY,
        *args,
        "--format",
        "json",
    )
    assert result.returncode == 0, result.output
    return str(json.loads(result.stdout)["lockset"])


def drift_json(run: LockdRunner, *args: str, code: int | None = None) -> dict:  # type: ignore[type-arg]
    result = run("drift", *args, "--format", "json")
    assert "Traceback" not in result.output
    if code is not None:
        assert result.returncode == code, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def kinds(report: dict) -> set[tuple[str, str | None]]:  # type: ignore[type-arg]
    return {(f["kind"], f["package"]) for f in report["findings"]}


def venv_from_lock(tmp_path: Path, name: str = "live") -> Path:
    """Install the recorded requirements file into a fresh venv, as a deployment would."""
    from lockd.resolvers.uv import uv_binary

    env = hermetic_env(tmp_path, UV_CACHE_DIR=str(tmp_path / "uvc"))
    venv = tmp_path / name
    subprocess.run(
        [uv_binary(), "venv", "-q", "--python", sys.executable, str(venv)], env=env, check=True
    )
    req = tmp_path / "locks" / f"{CU_TARGET}.requirements.txt"
    subprocess.run(
        [
            uv_binary(),
            "pip",
            "sync",
            "-q",
            "--require-hashes",
            "--python",
            str(venv / "bin" / "python"),
            str(req),
        ],
        env=env,
        check=True,
    )
    return venv / "bin" / "python"


def uv_pip(tmp_path: Path, python: Path, *args: str) -> None:
    from lockd.resolvers.uv import uv_binary

    env = hermetic_env(tmp_path, UV_CACHE_DIR=str(tmp_path / "uvc"))
    subprocess.run(
        [uv_binary(), "pip", *args, "--python", str(python)],
        env=env,
        check=True,
        capture_output=True,
    )


def test_clean_rebuild_reports_nothing_twice(drift_lockd: LockdRunner, tmp_path: Path) -> None:
    lockset = compile_lock(drift_lockd, tmp_path, "torch==2.6.0\nrequests\n")
    first = drift_json(drift_lockd, code=0)
    assert first["status"] == "clean" and first["findings"] == []
    assert first["lockset"] == lockset
    assert f"rebuild:{CU_TARGET}" in first["checks"] and f"creep:{CU_TARGET}" in first["checks"]
    # the second run compares RECORD digests with the first (clean) snapshot: still silent
    second = drift_json(drift_lockd, code=0)
    assert second["findings"] == []
    assert second["parent"] == first["hash"]  # drift reports chain like locksets
    history = json.loads(drift_lockd("history", "--format", "json").stdout)
    assert history[0]["drift"] == "clean"
    # --no-rebuild: only check that every locked file is still served, as for foreign targets
    served = drift_json(drift_lockd, "--no-rebuild", "--no-creep", code=0)
    assert served["checks"] == [f"artifacts:{CU_TARGET}"] and served["findings"] == []
    table = drift_lockd("drift", "--no-creep")
    assert table.returncode == 0 and "clean" in table.stdout
    assert "clean" in drift_lockd("history").stdout  # the table shows the last drift status


def test_upstream_replaced_a_locked_file(
    drift_lockd: LockdRunner, own_world: IndexServer, tmp_path: Path
) -> None:
    compile_lock(drift_lockd, tmp_path, "torch==2.6.0\nnumpy\n")
    pypi = index_at(own_world, "/simple")
    pypi.remove("numpy", "2.1.0")
    pypi.add(
        WheelSpec(
            "numpy", "2.1.0", f"{CP}-{CP}-{LINUX_X86}", files={"numpy/__init__.py": "# rebuilt\n"}
        )
    )
    report = drift_json(drift_lockd, "--no-creep", code=1)
    assert ("artifact-changed", "numpy") in kinds(report)


def replace_upstream(world: IndexServer, index: str, spec: WheelSpec, **add: Any) -> IndexFile:
    """The same file name served with other bytes (a rebuilt wheel uploaded again)."""
    served = index_at(world, index)
    files = served.projects[canonicalize_name(spec.name)]
    files[:] = [f for f in files if f.spec.filename != spec.filename]
    return served.add(spec, **add)


def test_a_rebuild_proves_each_file_upstream_and_no_cache_masks_a_change(
    drift_lockd: LockdRunner, own_world: IndexServer, tmp_path: Path
) -> None:
    compile_lock(drift_lockd, tmp_path, "torch==2.6.0\nnumpy\n")
    # the first rebuild fills uv's cache with every locked wheel
    assert drift_json(drift_lockd, "--rebuild", "--no-creep", code=0)["findings"] == []
    rebuilt = {"pkg/__init__.py": "# rebuilt upstream\n"}
    numpy = WheelSpec("numpy", "2.1.0", f"{CP}-{CP}-{LINUX_X86}", files=rebuilt)
    old = next(
        f
        for f in index_at(own_world, "/simple").projects["numpy"]
        if f.spec.filename == numpy.filename
    )
    # new bytes behind a page that still lists the old sha256: only a download shows it,
    # and uv's cache must not answer in its place
    replace_upstream(own_world, "/simple", numpy, listed_sha256=old.sha256)
    stale = drift_json(drift_lockd, "--rebuild", "--no-creep", code=1)
    assert [(f["kind"], f["package"]) for f in stale["findings"]] == [("artifact-changed", "numpy")]
    assert "Hash mismatch" in stale["findings"][0]["detail"]

    # torch, listed without a sha256 on the variant index: downloaded and hashed
    torch = WheelSpec(
        "torch",
        "2.6.0+cu124",
        f"{CP}-{CP}-{LINUX_X86}",
        requires=("filelock", "typing-extensions>=4.8.0", "numpy"),
        files=rebuilt,
    )
    replace_upstream(own_world, "/whl/cu124", torch, upload_time=None, publish_hash=False)
    replace_upstream(own_world, "/simple", numpy)  # and numpy's page now lists the new hash
    report = drift_json(drift_lockd, "--rebuild", "--no-creep", code=1)
    changed = {
        f["package"]: f["detail"] for f in report["findings"] if f["kind"] == "artifact-changed"
    }
    assert set(changed) == {"numpy", "torch"}, report["findings"]
    assert changed["torch"].startswith(f"torch-2.6.0+cu124-{CP}-{CP}-")


def test_version_creep_and_vanished_files(
    drift_lockd: LockdRunner, own_world: IndexServer, tmp_path: Path
) -> None:
    compile_lock(drift_lockd, tmp_path, "torch==2.6.0\nnumpy\n")
    pypi = index_at(own_world, "/simple")
    pypi.add(
        WheelSpec("numpy", "2.2.0", f"{CP}-{CP}-{LINUX_X86}"), upload_time="2030-01-01T00:00:00Z"
    )
    report = drift_json(drift_lockd, "--target", CU_TARGET, code=1)
    creep = [f for f in report["findings"] if f["kind"] == "version-creep"]
    assert [(f["package"], f["expected"], f["actual"]) for f in creep] == [
        ("numpy", "2.1.0", "2.2.0")
    ]
    assert "newer" in creep[0]["detail"]
    # the rebuild itself is still clean: creep is the only finding
    assert kinds(report) == {("version-creep", "numpy")}

    cu124 = index_at(own_world, "/whl/cu124")
    cu124.remove("torch", "2.6.0+cu124")
    gone = drift_json(drift_lockd, code=1)
    assert ("artifact-gone", "torch") in kinds(gone)


def test_live_environment_changes(
    drift_lockd: LockdRunner, own_world: IndexServer, tmp_path: Path
) -> None:
    compile_lock(drift_lockd, tmp_path, "torch==2.6.0\nrequests\n")
    python = venv_from_lock(tmp_path)
    clean = drift_json(drift_lockd, "--python", str(python), "--no-creep", code=0)
    assert clean["findings"] == [] and clean["checks"] == [f"live:{CU_TARGET}"]

    uv_pip(tmp_path, python, "uninstall", "idna")
    uv_pip(
        tmp_path,
        python,
        "install",
        "--index-url",
        f"{own_world.url}/whl/cu124",
        "--no-deps",
        "filelock==3.9.0",
    )
    uv_pip(
        tmp_path,
        python,
        "install",
        "--index-url",
        f"{own_world.url}/simple",
        "--no-deps",
        "nvidia-cuda-runtime-cu12",
    )
    report = drift_json(drift_lockd, "--python", str(python), "--no-creep", code=1)
    found = kinds(report)
    assert ("missing", "idna") in found
    assert ("version-changed", "filelock") in found
    assert ("unexpected", "nvidia-cuda-runtime-cu12") in found


def test_a_live_environment_is_compared_with_its_own_python_s_target(
    drift_lockd: LockdRunner, tmp_path: Path
) -> None:
    """--python picks the target as --snapshot does: no python-mismatch for the other Python."""
    other = "3.12" if HOST_PY != "3.12" else "3.11"
    compile_lock(drift_lockd, tmp_path, "torch==2.6.0\nrequests\n", "--python", other)
    python = venv_from_lock(tmp_path)
    report = drift_json(drift_lockd, "--python", str(python), "--no-creep", code=0)
    assert report["checks"] == [f"live:{CU_TARGET}"]
    assert report["findings"] == []


def test_cpu_torch_where_the_lock_says_cuda(
    drift_lockd: LockdRunner, own_world: IndexServer, tmp_path: Path
) -> None:
    compile_lock(drift_lockd, tmp_path, "torch==2.6.0\n")
    python = venv_from_lock(tmp_path)
    uv_pip(
        tmp_path,
        python,
        "install",
        "--index-url",
        f"{own_world.url}/whl/cpu",
        "--no-deps",
        "--reinstall",
        "torch==2.6.0+cpu",
    )
    report = drift_json(drift_lockd, "--python", str(python), "--no-creep", code=1)
    assert ("cpu-wheel", "torch") in kinds(report)
    assert ("version-changed", "torch") in kinds(report)


def test_snapshot_file_python_mismatch_and_driver(drift_lockd: LockdRunner, tmp_path: Path) -> None:
    compile_lock(drift_lockd, tmp_path, "torch==2.6.0\n")
    python = venv_from_lock(tmp_path)
    snap = tmp_path / "snap.json"
    taken = drift_lockd(
        "snapshot",
        "--python",
        str(python),
        "-o",
        str(snap),
        env={"LOCKD_CUDA_DRIVER_VERSION": "470.57.02"},
    )
    assert taken.returncode == 0, taken.output
    old_driver = drift_json(
        drift_lockd, "--snapshot", str(snap), "--target", CU_TARGET, "--no-creep", code=1
    )
    assert kinds(old_driver) == {("driver-too-old", "nvidia-driver")}
    taken = drift_lockd(
        "snapshot",
        "--python",
        str(python),
        "-o",
        str(snap),
        env={"LOCKD_CUDA_DRIVER_VERSION": "550.54.14"},
    )
    assert (
        drift_json(
            drift_lockd, "--snapshot", str(snap), "--target", CU_TARGET, "--no-creep", code=0
        )["findings"]
        == []
    )

    doc = json.loads(snap.read_text())
    doc["python"]["version"] = "3.9.18"
    snap.write_text(json.dumps(doc))
    mismatch = drift_json(
        drift_lockd, "--snapshot", str(snap), "--target", CU_TARGET, "--no-creep", code=1
    )
    assert ("python-mismatch", None) in kinds(mismatch)


def test_targets_not_buildable_here_check_their_artifacts(
    drift_lockd: LockdRunner, own_world: IndexServer, tmp_path: Path
) -> None:
    (tmp_path / "requirements.in").write_text("torch==2.6.0\nnumpy\n")
    run = drift_lockd("compile", "--cuda", "cpu", "--platform", "linux-aarch64", "--python", "3.12")
    assert run.returncode == 0, run.output
    clean = drift_json(drift_lockd, "--no-creep", code=0)
    assert clean["checks"] == ["artifacts:linux-aarch64-py312-cpu"]
    index_at(own_world, "/simple").remove("numpy", "2.1.0")
    report = drift_json(drift_lockd, "--no-creep", code=1)
    assert ("artifact-gone", "numpy") in kinds(report)
    # --rebuild insists: a target of another platform cannot be checked that way (exit 3)
    refused = drift_json(drift_lockd, "--rebuild", "--no-creep", code=3)
    assert refused["status"] == "error" and refused["findings"] == []
    assert "cannot be rebuilt here" in refused["errors"][0]["message"]


def test_all_projects_junit_and_one_failure_never_stops_the_others(
    drift_lockd: LockdRunner, tmp_path: Path
) -> None:
    compile_lock(drift_lockd, tmp_path, "torch==2.6.0\n", "--project", "alpha")
    # beta locks against an index that goes away before the nightly run
    doomed = build_world(IndexServer()).start()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "requirements.in").write_text("idna\n")
    result = drift_lockd(
        "compile",
        "--platform",
        "linux-aarch64",
        "--python",
        "3.12",
        "--project",
        "beta",
        cwd=broken,
        env={"LOCKD_INDEX_URL": f"{doomed.url}/simple"},
    )
    doomed.stop()
    assert result.returncode == 0, result.output
    out = tmp_path / "drift.xml"
    run = drift_lockd("drift", "--all", "--no-creep", "--format", "junit", "-o", str(out))
    assert run.returncode == 3, run.output  # beta could not be checked, nothing drifted
    assert "Traceback" not in run.output
    suites = ET.parse(out).getroot()
    assert {s.get("name") for s in suites} == {"lockd drift: alpha", "lockd drift: beta"}
    beta = next(s for s in suites if s.get("name") == "lockd drift: beta")
    assert beta.get("errors") != "0"
    history = {
        h["project"]: h["drift"]
        for h in json.loads(drift_lockd("history", "--format", "json").stdout)
    }
    assert history == {"alpha": "clean", "beta": "error"}
    as_json = json.loads(drift_lockd("drift", "--all", "--no-creep", "--format", "json").stdout)
    assert {r["project"]: r["status"] for r in as_json["reports"]} == {
        "alpha": "clean",
        "beta": "error",
    }
    markdown = drift_lockd("drift", "--all", "--no-creep", "--format", "markdown")
    assert "## alpha — clean" in markdown.stdout


@pytest.mark.parametrize(
    ("kind", "marker"),
    [
        ("cron", "30 2 * * *"),
        ("systemd", "OnCalendar=*-*-* 02:30:00"),
        ("k8s", "kind: CronJob"),
        ("github", "schedule:\n  - cron: 30 2 * * *"),
    ],
)
def test_schedule_recipes(lockd: LockdRunner, kind: str, marker: str) -> None:
    run = lockd("schedule", "--print", kind)
    assert run.returncode == 0
    assert marker in run.stdout
    assert "drift --all" in run.stdout or "- drift\n            - --all" in run.stdout  # k8s args


def test_drift_reaches_a_private_index_with_the_configured_credentials(
    lockd: LockdRunner, tmp_path: Path
) -> None:
    private = build_world(IndexServer())
    private.basic_auth = "ci:t0ken"
    private.start()
    try:
        host = private.url.removeprefix("http://")
        env = {
            "LOCKD_INDEX_URL": f"http://ci:t0ken@{host}/simple",
            "LOCKD_PYTORCH_INDEX": f"http://ci:t0ken@{host}/whl",
        }
        (tmp_path / "requirements.in").write_text("torch==2.6.0\nnumpy\n")
        # alpha is rebuilt here (torch by direct URL from the private variant index),
        # beta (another platform) is checked file by file on the private indexes
        alpha = lockd(
            "compile",
            "--cuda",
            "cu124",
            "--platform",
            "linux-x86_64",
            "--python",
            HOST_PY,
            "--project",
            "alpha",
            "--out",
            "a",
            env=env,
        )
        beta = lockd(
            "compile",
            "--cuda",
            "cpu",
            "--platform",
            "linux-aarch64",
            "--python",
            "3.12",
            "--project",
            "beta",
            "--out",
            "b",
            env=env,
        )
        assert alpha.returncode == 0 and beta.returncode == 0, alpha.output + beta.output
        run = lockd("drift", "--all", "--format", "json", env=env)
        assert run.returncode == 0, run.output
        reports = {r["project"]: r for r in json.loads(run.stdout)["reports"]}
        assert reports["alpha"]["checks"] == [f"rebuild:{CU_TARGET}", f"creep:{CU_TARGET}"]
        assert reports["beta"]["checks"] == [
            "artifacts:linux-aarch64-py312-cpu",
            "creep:linux-aarch64-py312-cpu",
        ]
        for report in reports.values():
            assert report["errors"] == [] and report["findings"] == []
        assert "t0ken" not in run.output
    finally:
        private.stop()


@pytest.fixture
def private_world() -> Iterator[IndexServer]:
    server = build_world(IndexServer())
    server.basic_auth = "ci:t0ken"
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_drift_takes_credentials_as_compile_does_and_the_project_from_lockd_json(
    lockd: LockdRunner, private_world: IndexServer, tmp_path: Path
) -> None:
    secret = "http://ci:t0ken@" + private_world.url.removeprefix("http://")
    no_env = {"LOCKD_INDEX_URL": "", "LOCKD_PYTORCH_INDEX": ""}  # credentials only in lockd.toml
    project = tmp_path / "model"
    project.mkdir()
    (project / "lockd.toml").write_text(
        f'index-url = "{secret}/simple"\npytorch-index = "{secret}/whl"\n'
    )
    (project / "requirements.in").write_text("torch==2.6.0\nnumpy\n")
    compiled = lockd(
        "compile",
        *("--cuda", "cu124", "--platform", "linux-x86_64", "--python", HOST_PY),
        *("--project", "private-model"),
        cwd=project,
        env=no_env,
    )
    assert compiled.returncode == 0, compiled.output
    # a second project in the same database: drift must not have to ask which one
    other = tmp_path / "other"
    other.mkdir()
    (other / "requirements.in").write_text("idna\n")
    assert lockd("compile", "--project", "other", cwd=other).returncode == 0

    run = lockd("drift", "--format", "json", cwd=project, env=no_env)

    assert run.returncode == 0, run.output
    report = json.loads(run.stdout)
    assert report["project"] == "private-model"  # from locks/lockd.json
    assert report["checks"] == [f"rebuild:{CU_TARGET}", f"creep:{CU_TARGET}"]
    assert report["findings"] == [] and report["errors"] == []
    assert "t0ken" not in run.output
    # without a terminal, a line per step on stderr
    for step in ("verify", "venv", "install", "snapshot", "compare", "creep"):
        assert f"lockd drift: private-model {CU_TARGET}: {step}" in run.stderr, step
    assert "install: Installed " in run.stderr  # what uv reports

    # elsewhere, without the credentials: an error that says what to do, no false findings
    bare = tmp_path / "bare"
    bare.mkdir()
    refused = lockd("drift", "--project", "private-model", "--format", "json", cwd=bare, env=no_env)
    assert refused.returncode == 3, refused.output
    doc = json.loads(refused.stdout)
    assert doc["findings"] == [] and doc["status"] == "error"
    assert "wants credentials" in doc["errors"][0]["message"]
    # --index/--pytorch-index carry them, as compile's flags do
    flagged = lockd(
        "drift",
        *("--project", "private-model", "--no-creep", "--format", "json"),
        *("--index", f"{secret}/simple", "--pytorch-index", f"{secret}/whl"),
        cwd=bare,
        env=no_env,
    )
    assert flagged.returncode == 0, flagged.output
    assert "t0ken" not in flagged.output


def test_no_project_here_is_a_question_not_a_guess(lockd: LockdRunner, tmp_path: Path) -> None:
    """Run in the wrong directory, drift (and why) must not pick the database's only
    project: that project's rebuild downloads gigabytes of CUDA wheels."""
    project = tmp_path / "model"
    project.mkdir()
    (project / "requirements.in").write_text("idna\n")
    assert lockd("compile", "--project", "model", cwd=project).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    for args in (("drift", "--no-rebuild"), ("why", "idna")):
        asked = lockd(*args, cwd=elsewhere)
        assert asked.returncode == 2, asked.output
        assert "Which project?" in asked.stderr and "it holds model" in asked.stderr
        assert "Pass --project NAME" in asked.stderr
        # only drift takes --all
        assert ("--all" in asked.stderr) == (args[0] == "drift"), asked.stderr
        assert "Traceback" not in asked.output
    # where the locks are, no question
    assert lockd("why", "idna", cwd=project).returncode == 0
    # a manifest that is no JSON: the error says how to get a good one back
    (project / "locks" / "lockd.json").write_text("{not json")
    broken = lockd("why", "idna", cwd=project)
    assert broken.returncode == 2, broken.output
    assert "is not a readable lockd manifest" in broken.stderr
    assert "`lockd compile` writes it again" in broken.stderr

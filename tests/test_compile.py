"""`lockd compile` end to end: the real CLI, uv, a PyTorch-shaped index on 127.0.0.1, SQLite."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lockd.store.migrate import head_revision
from tests.conftest import Run, hermetic_env
from tests.support.pyindex import IndexServer

MATRIX = ["--platform", "linux-x86_64", "--python", "3.11"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def manifest(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((tmp_path / "locks" / "lockd.json").read_text())


def lock_of(doc: dict, target: str) -> dict[str, dict]:  # type: ignore[type-arg]
    lock = next(lock for lock in doc["locks"] if lock["target"] == target)
    return {a["name"]: a for a in lock["artifacts"]}


def assert_clean_failure(run: Run, code: int) -> None:
    assert run.returncode == code, run.output
    assert "Traceback" not in run.output
    assert run.stderr.startswith("error:"), run.stderr


def test_cuda_and_cpu_targets_route_only_the_family(
    lockd, tmp_path: Path, world: IndexServer
) -> None:
    write(tmp_path / "requirements.in", "torch==2.6.0\nnumpy\nrequests\n")
    run = lockd(
        "compile",
        "--cuda",
        "cu124",
        "--cuda",
        "cpu",
        *MATRIX,
        "--python",
        "3.12",
        "--format",
        "json",
    )
    assert run.returncode == 0, run.output
    result = json.loads(run.stdout)
    assert {t["target"]: t["flavour"] for t in result["targets"]} == {
        "linux-x86_64-py311-cu124": "cuda 12.4",
        "linux-x86_64-py311-cpu": "cpu",
        "linux-x86_64-py312-cu124": "cuda 12.4",
        "linux-x86_64-py312-cpu": "cpu",
    }
    doc = manifest(tmp_path)
    cu = lock_of(doc, "linux-x86_64-py311-cu124")
    assert cu["torch"]["version"] == "2.6.0+cu124"
    assert cu["torch"]["index"] == f"{world.url}/whl/cu124"
    # triton arrives transitively under torch and is still routed to the variant index
    assert cu["triton"]["index"] == f"{world.url}/whl/cu124"
    # the variant index's old copies (numpy 1.26.0, filelock 3.9.0, typing-extensions
    # 4.9.0) are never picked: ordinary packages come from the default index
    for name, version in {
        "numpy": "2.1.0",
        "filelock": "3.16.1",
        "typing-extensions": "4.12.2",
    }.items():
        assert cu[name]["version"] == version
        assert cu[name]["index"] == f"{world.url}/simple"
    assert lock_of(doc, "linux-x86_64-py311-cpu")["torch"]["version"] == "2.6.0+cpu"
    # every artifact has a hash, including the cp312 torch listed without #sha256=
    for lock in doc["locks"]:
        assert all(len(a["sha256"]) == 64 for a in lock["artifacts"])
    unhashed = lock_of(doc, "linux-x86_64-py312-cu124")["torch"]
    assert unhashed["sha256"] == next(
        e.sha256
        for e in world.indexes[1].projects["torch"]
        if e.spec.filename == unhashed["filename"]
    )
    # lock files per target, PEP 751 names without dots
    names = sorted(p.name for p in (tmp_path / "locks").iterdir())
    assert "pylock.linux-x86_64-py311-cu124.toml" in names
    assert "linux-x86_64-py312-cpu.requirements.txt" in names
    # the variant index's lock-time offer is recorded (it publishes no upload times)
    offered = {o["name"]: o for o in doc["locks"][0]["offered"]}
    assert "2.6.0+cu124" in offered["torch"]["versions"]
    # the database keeps every lock file as written (what `lockd serve` downloads)
    from lockd.store import Store

    with Store(f"sqlite:///{tmp_path / 'lockd-home' / 'lockd.db'}") as store:
        for lock in doc["locks"]:
            for name, sha in lock["files"].items():
                assert store.lock_file(doc["hash"], name) == (
                    sha,
                    (tmp_path / "locks" / name).read_text(),
                )


def test_requirements_file_installs_exactly_with_pip(lockd, tmp_path: Path) -> None:
    write(tmp_path / "requirements.in", "torch==2.6.0\nrequests\n")
    assert lockd("compile", "--cuda", "cu124", *MATRIX).returncode == 0
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    env = hermetic_env(tmp_path)
    req = tmp_path / "locks" / "linux-x86_64-py311-cu124.requirements.txt"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--require-hashes",
            "--no-deps",
            "-r",
            str(req),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    freeze = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "list",
            "--format",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {p["name"].lower(): p["version"] for p in json.loads(freeze.stdout)}
    assert installed["torch"] == "2.6.0+cu124"
    assert installed["triton"] == "3.2.0"
    assert installed["typing-extensions"] == "4.12.2"


def test_pylock_installs_with_uv_pip_sync(lockd, tmp_path: Path) -> None:
    from lockd.resolvers.uv import uv_binary

    write(tmp_path / "requirements.in", "torch==2.6.0\nnumpy\n")
    assert lockd("compile", "--cuda", "cu124", *MATRIX).returncode == 0
    env = hermetic_env(tmp_path, UV_CACHE_DIR=str(tmp_path / "uvc"))
    venv = tmp_path / "venv"
    subprocess.run(
        [uv_binary(), "venv", "-q", "--python", sys.executable, str(venv)], env=env, check=True
    )
    proc = subprocess.run(
        [
            uv_binary(),
            "pip",
            "sync",
            "--python",
            str(venv / "bin" / "python"),
            str(tmp_path / "locks" / "pylock.linux-x86_64-py311-cu124.toml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    freeze = subprocess.run(
        [uv_binary(), "pip", "freeze", "--python", str(venv / "bin" / "python")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "torch==2.6.0+cu124" in freeze
    assert "numpy==2.1.0" in freeze


def test_cpu_build_on_a_cuda_index_fails_the_target(lockd, tmp_path: Path) -> None:
    write(tmp_path / "requirements.in", "torch==2.6.0\n")
    run = lockd("compile", "--cuda", "cu124", "--platform", "linux-aarch64", "--python", "3.11")
    assert_clean_failure(run, 3)
    assert "linux-aarch64-py311-cu124" in run.stderr
    assert "torch-2.6.0-cp311-cp311-manylinux_2_28_aarch64.whl" in run.stderr
    assert "CPU-only" in run.stderr
    assert not (tmp_path / "locks").exists()


def test_every_failing_target_is_reported_and_nothing_is_recorded(lockd, tmp_path: Path) -> None:
    write(tmp_path / "requirements.in", "torch==2.6.0\n")
    run = lockd(
        "compile",
        "--cuda",
        "cu124",
        "--cuda",
        "cu121",
        "--platform",
        "linux-x86_64",
        "--platform",
        "linux-aarch64",
        "--platform",
        "macos-arm64",
        "--python",
        "3.11",
    )
    assert_clean_failure(run, 3)
    for target in (
        "linux-aarch64-py311-cu124",
        "linux-x86_64-py311-cu121",
        "macos-arm64-py311-cu124",
    ):
        assert target in run.stderr
    assert "no CUDA builds for macOS" in run.stderr
    assert not (tmp_path / "locks").exists()
    assert json.loads(lockd("history", "--format", "json").stdout) == []


def test_allow_partial_records_the_failures(lockd, tmp_path: Path) -> None:
    write(tmp_path / "requirements.in", "torch==2.6.0\n")
    run = lockd(
        "compile",
        "--cuda",
        "cu124",
        "--platform",
        "linux-x86_64",
        "--platform",
        "linux-aarch64",
        "--python",
        "3.11",
        "--allow-partial",
        "--format",
        "json",
    )
    assert run.returncode == 3, run.output
    result = json.loads(run.stdout)
    assert result["status"] == "partial"
    assert [f["target"] for f in result["failures"]] == ["linux-aarch64-py311-cu124"]
    history = json.loads(lockd("history", "--format", "json").stdout)
    assert history[0]["status"] == "partial"
    assert (tmp_path / "locks" / "pylock.linux-x86_64-py311-cu124.toml").exists()


def test_torch_from_pypi_is_verified_by_its_cuda_runtime(lockd, tmp_path: Path) -> None:
    write(tmp_path / "requirements.in", "torch==2.6.0\n")
    ok = lockd("compile", "--cuda", "cu124", *MATRIX, "--pytorch-index", "pypi", "--format", "json")
    assert ok.returncode == 0, ok.output
    assert json.loads(ok.stdout)["targets"][0]["flavour"] == "cuda 12.4"
    torch = lock_of(manifest(tmp_path), "linux-x86_64-py311-cu124")["torch"]
    assert torch["version"] == "2.6.0" and torch["index"].endswith("/simple")

    mismatch = lockd(
        "compile", "--cuda", "cu121", *MATRIX, "--pytorch-index", "pypi", "--out", "l2"
    )
    assert_clean_failure(mismatch, 3)
    assert "CUDA 12.4 runtime" in mismatch.stderr and "not CUDA 12.1" in mismatch.stderr

    cpu = lockd("compile", "--cuda", "cpu", *MATRIX, "--pytorch-index", "pypi", "--out", "l3")
    assert_clean_failure(cpu, 3)
    assert "is a CUDA build, but the target is cpu" in cpu.stderr
    assert "nvidia-cuda-runtime-cu12" in cpu.stderr


def test_macos_cpu_takes_the_untagged_cpu_wheel(lockd, tmp_path: Path) -> None:
    write(tmp_path / "requirements.in", "torch==2.6.0\n")
    run = lockd("compile", "--cuda", "cpu", "--platform", "macos-arm64", "--python", "3.11")
    assert run.returncode == 0, run.output
    torch = lock_of(manifest(tmp_path), "macos-arm64-py311-cpu")["torch"]
    assert torch["filename"] == "torch-2.6.0-cp311-none-macosx_11_0_arm64.whl"


def test_recompile_is_a_noop_until_something_changes(lockd, tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.in", "torch==2.6.0\n")
    first = json.loads(lockd("compile", "--cuda", "cu124", *MATRIX, "--format", "json").stdout)
    again = lockd("compile", "--cuda", "cu124", *MATRIX)
    assert again.returncode == 0
    assert "Nothing changed" in again.stdout
    assert (
        json.loads(lockd("compile", "--cuda", "cu124", *MATRIX, "--format", "json").stdout)[
            "status"
        ]
        == "unchanged"
    )
    refreshed = json.loads(
        lockd("compile", "--cuda", "cu124", *MATRIX, "--refresh", "--format", "json").stdout
    )
    assert refreshed["status"] == "compiled"
    req.write_text("torch==2.6.0\nrequests\n")
    changed = json.loads(lockd("compile", "--cuda", "cu124", *MATRIX, "--format", "json").stdout)
    assert changed["status"] == "compiled"
    assert changed["parent"] == refreshed["lockset"]
    assert refreshed["parent"] == first["lockset"]
    assert len(json.loads(lockd("history", "--format", "json").stdout)) == 3


def test_failed_compile_leaves_previous_locks_untouched(lockd, tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.in", "torch==2.6.0\n")
    assert lockd("compile", "--cuda", "cu124", *MATRIX).returncode == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "locks").iterdir()}
    req.write_text("torch==2.6.0\nnumpy==9.9.9\n")
    run = lockd("compile", "--cuda", "cu124", *MATRIX)
    assert_clean_failure(run, 3)
    assert "numpy" in run.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "locks").iterdir()} == before
    assert len(json.loads(lockd("history", "--format", "json").stdout)) == 1


def test_credentials_never_reach_files_database_or_output(
    lockd, tmp_path: Path, world: IndexServer
) -> None:
    write(tmp_path / "requirements.in", "torch==2.6.0\n")
    host = world.url.removeprefix("http://")
    db = tmp_path / "creds.db"
    run = lockd(
        "compile",
        "--cuda",
        "cu124",
        *MATRIX,
        "--db",
        f"sqlite:///{db}",
        "--format",
        "json",
        env={
            "LOCKD_INDEX_URL": f"http://alice:s3cr3t-token@{host}/simple",
            "LOCKD_PYTORCH_INDEX": f"http://bob:hunter2-token@{host}/whl",
        },
    )
    assert run.returncode == 0, run.output
    shown = lockd(
        "show", json.loads(run.stdout)["lockset"], "--db", f"sqlite:///{db}", "--format", "json"
    )
    blobs = [run.output, shown.output, db.read_bytes().decode("latin-1")]
    blobs += [p.read_text() for p in (tmp_path / "locks").iterdir()]
    for blob in blobs:
        assert "s3cr3t-token" not in blob and "hunter2-token" not in blob and "alice" not in blob


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--cuda", "cu999"], "not a CUDA variant PyTorch publishes"),
        (["--cuda", "cuda-twelve"], "Unknown accelerator"),
        (["--platform", "solaris-sparc"], "Unknown platform"),
    ],
)
def test_bad_variants_and_platforms_get_one_clear_paragraph(
    lockd, tmp_path: Path, args: list[str], needle: str
) -> None:
    write(tmp_path / "requirements.in", "torch==2.6.0\n")
    run = lockd("compile", *args)
    assert run.returncode in (2, 3)
    assert "Traceback" not in run.output
    assert needle in run.stderr


def test_unreachable_index_and_unsatisfiable_requirements(lockd, tmp_path: Path) -> None:
    write(tmp_path / "requirements.in", "numpy\n")
    down = lockd("compile", *MATRIX, "--index", "http://127.0.0.1:9/simple")
    assert_clean_failure(down, 3)
    assert "http://127.0.0.1:9/simple" in down.stderr and "cannot be reached" in down.stderr
    write(tmp_path / "requirements.in", "numpy>=99\n")
    unsat = lockd("compile", *MATRIX)
    assert_clean_failure(unsat, 3)
    assert "numpy" in unsat.stderr and "unsatisfiable" in unsat.stderr.lower()


def test_pip_tools_backend_locks_the_host_only(lockd, tmp_path: Path) -> None:
    write(tmp_path / "requirements.in", "torch==2.6.0\nnumpy\n")
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    run = lockd(
        "compile",
        "--resolver",
        "pip-tools",
        "--cuda",
        "cu124",
        "--platform",
        "linux-x86_64",
        "--python",
        host,
    )
    assert run.returncode == 0, run.output
    lock = lock_of(manifest(tmp_path), f"linux-x86_64-py{host.replace('.', '')}-cu124")
    assert lock["torch"]["version"] == "2.6.0+cu124"
    assert lock["numpy"]["version"] == "2.1.0"
    refused = lockd(
        "compile", "--resolver", "pip-tools", "--platform", "linux-aarch64", "--out", "l2"
    )
    assert_clean_failure(refused, 2)
    assert "only lock the host target" in refused.stderr


def test_config_file_drives_a_bare_compile(lockd, tmp_path: Path) -> None:
    write(tmp_path / "reqs" / "base.in", "requests\n")
    write(tmp_path / "reqs" / "constraints.txt", "idna==3.10\n")
    write(
        tmp_path / "reqs" / "main.in", "-r base.in\n-c constraints.txt\ntorch==2.6.0  # the model\n"
    )
    write(
        tmp_path / "lockd.toml",
        'project = "ml-model"\ninputs = ["reqs/main.in"]\ncuda = ["cu124"]\n'
        'platforms = ["linux-x86_64"]\npython = ["3.12"]\nout = "build/locks"\n',
    )
    run = lockd("compile", "--format", "json")
    assert run.returncode == 0, run.output
    result = json.loads(run.stdout)
    assert result["project"] == "ml-model"
    assert [t["target"] for t in result["targets"]] == ["linux-x86_64-py312-cu124"]
    doc = json.loads((tmp_path / "build" / "locks" / "lockd.json").read_text())
    assert [i["path"] for i in doc["inputs"]] == [
        "reqs/main.in",
        "reqs/base.in",
        "reqs/constraints.txt",
    ]
    assert "idna" in lock_of(doc, "linux-x86_64-py312-cu124")


def test_pyproject_dependencies_and_extras(lockd, tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        '[project]\nname = "svc"\nversion = "1"\ndependencies = ["requests"]\n'
        '[project.optional-dependencies]\ngpu = ["torch==2.6.0"]\n',
    )
    run = lockd(
        "compile",
        "pyproject.toml",
        "--extra",
        "gpu",
        "--cuda",
        "cu124",
        *MATRIX,
        "--format",
        "json",
    )
    assert run.returncode == 0, run.output
    assert json.loads(run.stdout)["project"] == "svc"
    assert (
        lock_of(manifest(tmp_path), "linux-x86_64-py311-cu124")["torch"]["version"] == "2.6.0+cu124"
    )
    bad = lockd("compile", "pyproject.toml", "--extra", "tpu", *MATRIX, "--out", "x")
    assert_clean_failure(bad, 2)
    assert "tpu" in bad.stderr and "gpu" in bad.stderr


def test_history_of_an_empty_database_says_so(lockd, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    table = lockd("history", "--db", url)
    assert table.returncode == 0, table.output
    assert table.stdout == f"No locksets recorded yet in {url}; run `lockd compile`.\n"
    only = lockd("history", "--db", url, "--project", "vision")
    assert only.stdout.startswith("No locksets of project vision recorded yet in ")
    as_json = lockd("history", "--db", url, "--format", "json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == []
    assert not (tmp_path / "empty.db").exists()  # reading creates no database


@pytest.mark.parametrize(
    "command",
    [
        ["show", "abc123"],
        ["why", "numpy", "--project", "p"],
        ["drift", "summary"],
        ["drift", "--project", "p"],
        ["tokens", "list"],
        ["tokens", "revoke", "ci"],
    ],
    ids=["show", "why", "drift-summary", "drift", "tokens-list", "tokens-revoke"],
)
def test_a_read_of_a_mistyped_database_path_creates_nothing(
    lockd, tmp_path: Path, command: list[str]
) -> None:
    db = tmp_path / "typo" / "lockd.db"
    run = lockd(*command, "--db", f"sqlite:///{db}")
    assert run.returncode == 2, run.output
    assert f"No lockd database at {db}: nothing is recorded there." in run.stderr
    assert not db.parent.exists()


@pytest.mark.parametrize(
    "command",
    [["audit", "verify"], ["history"], ["tokens", "list"], ["compile", "--python", "3.11"]],
    ids=["verify", "history", "tokens", "compile"],
)
def test_a_directory_given_as_the_database_is_named(
    lockd, tmp_path: Path, command: list[str]
) -> None:
    """A reviewer's `audit verify --db sqlite:////tmp/dir` said "no records" (exit 0)."""
    write(tmp_path / "requirements.in", "idna==3.10\n")
    folder = tmp_path / "dbdir"
    folder.mkdir()
    run = lockd(*command, "--db", f"sqlite:///{folder}")
    assert run.returncode == 3, run.output
    assert f"The database {folder} is a directory, not an SQLite file." in run.stderr
    assert "Traceback" not in run.output and list(folder.iterdir()) == []


def test_a_fresh_database_says_the_lockset_starts_a_new_chain(lockd, tmp_path: Path) -> None:
    """locks/lockd.json names a lockset this database never held: said, not silent."""
    req = write(tmp_path / "requirements.in", "idna==3.10\n")
    first = json.loads(lockd("compile", *MATRIX, "--format", "json").stdout)
    assert first["unrecorded_parent"] is None
    req.write_text("idna==3.10\nrequests\n")
    other_db = f"sqlite:///{tmp_path / 'other.db'}"
    second = lockd("compile", *MATRIX, "--db", other_db)
    assert second.returncode == 0, second.output
    assert f"lockd.json named {first['lockset'][:12]}: this lockset starts a new chain" in (
        " ".join(second.stdout.split())
    )
    req.write_text("idna==3.10\n")
    third = json.loads(lockd("compile", *MATRIX, "--db", other_db, "--format", "json").stdout)
    assert third["unrecorded_parent"] is None  # that database holds the chain now


def test_history_show_and_diff(lockd, tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.in", "torch==2.6.0\nidna==3.10\n")
    a = json.loads(lockd("compile", "--cuda", "cu124", *MATRIX, "--format", "json").stdout)[
        "lockset"
    ]
    req.write_text("torch==2.6.0\nrequests\n")
    b = json.loads(lockd("compile", "--cuda", "cu124", *MATRIX, "--format", "json").stdout)[
        "lockset"
    ]
    history = json.loads(lockd("history", "--format", "json").stdout)
    assert [h["hash"] for h in history] == [b, a]
    shown = json.loads(lockd("show", a[:10], "--format", "json").stdout)
    assert shown["hash"] == a and shown["resolver"]["name"] == "uv"
    assert shown["provenance"]["user"] and shown["cutoff"].endswith("Z")
    assert "git_commit" in shown["provenance"]
    diff = json.loads(lockd("diff", a, b, "--format", "json").stdout)
    added = diff["targets"]["linux-x86_64-py311-cu124"]["added"]
    assert [x["name"] for x in added] == ["requests"]
    table = lockd("diff", a[:8], b[:8])
    assert table.returncode == 0 and "requests" in table.stdout
    missing = lockd("show", "deadbeef")
    assert_clean_failure(missing, 2)


def test_database_is_created_by_alembic_and_upgrade_is_idempotent(lockd, tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    first = lockd("db", "upgrade", "--db", f"sqlite:///{db}")
    assert first.returncode == 0, first.output
    assert f"at revision {head_revision()}" in first.stdout
    assert "already current" in lockd("db", "upgrade", "--db", f"sqlite:///{db}").stdout
    tables = {
        r[0]
        for r in sqlite3.connect(db).execute("select name from sqlite_master where type='table'")
    }
    assert {"projects", "locksets", "locks", "artifacts", "alembic_version"} <= tables


def test_exclude_newer_applies_only_where_upload_times_exist(lockd, tmp_path: Path) -> None:
    write(tmp_path / "requirements.in", "torch==2.6.0\nnumpy\n")
    # the variant index publishes no upload times: torch survives the cut-off
    later = lockd(
        "compile",
        "--cuda",
        "cu124",
        *MATRIX,
        "--exclude-newer",
        "2025-01-01T00:00:00Z",
        "--format",
        "json",
    )
    assert later.returncode == 0, later.output
    assert manifest(tmp_path)["cutoff"] == "2025-01-01T00:00:00Z"
    # PyPI-shaped files were uploaded 2024-06-01: before that nothing of numpy exists
    earlier = lockd(
        "compile",
        "--cuda",
        "cu124",
        *MATRIX,
        "--exclude-newer",
        "2024-01-01T00:00:00Z",
        "--out",
        "l2",
    )
    assert_clean_failure(earlier, 3)
    assert "numpy" in earlier.stderr


def test_exclude_newer_is_checked_first_and_recorded_as_an_absolute_time(
    lockd, tmp_path: Path
) -> None:
    write(tmp_path / "requirements.in", "numpy\n")
    for given, words in (
        ("yesterday", "--exclude-newer 'yesterday' is not a date, a time or a duration"),
        ("2099-01-01", "--exclude-newer '2099-01-01' is in the future (2099-01-01T00:00:00Z)"),
        ("0d", "--exclude-newer '0d' is an empty period"),
    ):
        refused = lockd("compile", "--cuda", "cpu", *MATRIX, "--exclude-newer", given)
        assert_clean_failure(refused, 2)
        assert words in " ".join(refused.stderr.split()), refused.stderr
        hint = refused.stderr.split(". ", 1)[1]  # the accepted forms, as the flag takes them
        assert "--exclude-newer 7d" in hint or "--exclude-newer 3d" in hint, refused.stderr
        assert not (tmp_path / "locks").exists()  # refused before anything was resolved
    before = datetime.now(UTC).replace(microsecond=0)
    moving = lockd("compile", "--cuda", "cpu", *MATRIX, "--exclude-newer", "3 days")
    assert moving.returncode == 0, moving.output
    recorded = manifest(tmp_path)["cutoff"]
    moment = datetime.strptime(recorded, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before - timedelta(days=3) <= moment <= datetime.now(UTC) - timedelta(days=3)
    assert f"cut-off {recorded}" in lockd("show", manifest(tmp_path)["hash"]).stdout


@pytest.mark.parametrize(
    "args",
    [
        ["compile", "--bogus"],
        ["drift", "--format", "xml"],
        ["history", "--format", "yaml"],
        ["nosuch"],
    ],
)
def test_usage_errors_exit_2_without_traceback(lockd, args: list[str]) -> None:
    run = lockd(*args)
    assert run.returncode == 2, run.output
    assert "Traceback" not in run.output
    assert "Error" in run.stderr


def test_git_commit_and_uncommitted_changes_are_recorded(lockd, tmp_path: Path) -> None:
    write(tmp_path / "requirements.in", "idna\n")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "requirements.in"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert lockd("compile", *MATRIX).returncode == 0
    provenance = manifest(tmp_path)["provenance"]
    assert (provenance["git_commit"], provenance["git_dirty"]) == (head, False)
    write(tmp_path / "requirements.in", "idna\nrequests\n")  # tracked and modified
    assert lockd("compile", *MATRIX).returncode == 0
    assert manifest(tmp_path)["provenance"]["git_dirty"] is True


def test_pypi_torch_on_aarch64_is_a_cpu_build(lockd, tmp_path: Path) -> None:
    write(tmp_path / "requirements.in", "torch==2.6.0\n")
    arm = ["--platform", "linux-aarch64", "--python", "3.11", "--pytorch-index", "pypi"]
    cpu = lockd("compile", "--cuda", "cpu", *arm, "--format", "json")
    assert cpu.returncode == 0, cpu.output
    assert json.loads(cpu.stdout)["targets"][0]["flavour"] == "cpu"
    cuda = lockd("compile", "--cuda", "cu124", *arm, "--out", "l2")
    assert_clean_failure(cuda, 3)
    assert "CPU-only build" in cuda.stderr


def test_direct_references_are_refused_without_leaking_credentials(lockd, tmp_path: Path) -> None:
    write(
        tmp_path / "requirements.in",
        "idna\nsix @ https://user:s3cret@files.example/six-1.16.0-py3-none-any.whl\n",
    )
    run = lockd("compile", *MATRIX)
    assert_clean_failure(run, 2)
    assert (
        "requirements.in:2: `six @ https://files.example/six-1.16.0-py3-none-any.whl` is a "
        "direct reference" in run.stderr
    )
    assert "s3cret" not in run.output
    assert not (tmp_path / "locks").exists()


def test_pip_tools_gives_pip_the_pytorch_index_only_where_the_resolution_needs_it(
    lockd, tmp_path: Path
) -> None:
    """pip has no per-package indexes: given the variant index as an extra index, it took a
    newer numpy from it (then refused by verification, exit 3) for inputs without any
    PyTorch-family package. Such inputs resolve on the default index alone; torch pulled
    in by a dependency still comes from the variant index."""
    from tests.support.wheels import WheelSpec
    from tests.support.world import LINUX_X86, _abi, build_world, index_at

    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    own = build_world(IndexServer())
    index_at(own, "/whl/cu124").add(WheelSpec("numpy", "2.2.0", _abi(py, LINUX_X86)))
    index_at(own, "/simple").add(WheelSpec("sentence-x", "1.0", requires=("torch",)))
    own.start()
    try:
        host = f"{sys.version_info.major}.{sys.version_info.minor}"
        env = {"LOCKD_INDEX_URL": f"{own.url}/simple", "LOCKD_PYTORCH_INDEX": f"{own.url}/whl"}
        target = f"linux-x86_64-py{host.replace('.', '')}-cu124"
        args = ("--resolver", "pip-tools", "--cuda", "cu124", "--platform", "linux-x86_64")
        write(tmp_path / "requirements.in", "numpy\n")
        plain = lockd("compile", *args, "--python", host, env=env)
        assert plain.returncode == 0, plain.output
        assert lock_of(manifest(tmp_path), target)["numpy"]["version"] == "2.1.0"  # PyPI's
        write(tmp_path / "requirements.in", "sentence-x\n")
        pulled = lockd("compile", *args, "--python", host, env=env)
        assert pulled.returncode == 0, pulled.output
        assert lock_of(manifest(tmp_path), target)["torch"]["version"] == "2.6.0+cu124"
    finally:
        own.stop()


def test_pip_tools_hashes_files_listed_without_sha256(lockd, tmp_path: Path) -> None:
    from tests.support.world import build_world, index_at

    own = build_world(IndexServer())
    for entry in index_at(own, "/whl/cu124").projects["torch"]:
        entry.publish_hash = False  # the whole page without #sha256=, as nightly pages are
    own.start()
    try:
        write(tmp_path / "requirements.in", "torch==2.6.0\n")
        host = f"{sys.version_info.major}.{sys.version_info.minor}"
        env = {"LOCKD_INDEX_URL": f"{own.url}/simple", "LOCKD_PYTORCH_INDEX": f"{own.url}/whl"}
        run = lockd(
            "compile",
            "--resolver",
            "pip-tools",
            "--cuda",
            "cu124",
            "--platform",
            "linux-x86_64",
            "--python",
            host,
            env=env,
        )
        assert run.returncode == 0, run.output
        tag = host.replace(".", "")
        torch = lock_of(manifest(tmp_path), f"linux-x86_64-py{tag}-cu124")["torch"]
        served = next(
            e
            for e in index_at(own, "/whl/cu124").projects["torch"]
            if e.spec.filename == torch["filename"]
        )
        assert torch["sha256"] == served.sha256
    finally:
        own.stop()


def test_a_relative_uv_cache_dir_is_the_users_and_outlives_the_run(lockd, tmp_path: Path) -> None:
    # lockd runs uv in scratch directories: passed on as it is, UV_CACHE_DIR=.uv-cache
    # (common in CI) named a cache inside the scratch directory, deleted every run.
    write(tmp_path / "requirements.in", "numpy\n")
    run = lockd("compile", *MATRIX, env={"UV_CACHE_DIR": ".uv-cache"})
    assert run.returncode == 0, run.output
    assert (tmp_path / ".uv-cache" / "CACHEDIR.TAG").is_file()
    assert any((tmp_path / ".uv-cache").glob("simple-*/*"))  # uv's index pages, kept

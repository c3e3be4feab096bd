"""Re-locking keeps pins; `--upgrade`/`--upgrade-package` move them; `compile --check`.

Each test gets its own PyPI-shaped index on 127.0.0.1, so it can publish new
releases between two compiles, as upstream does between two CI runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lockd.app.pip import previous_pins
from lockd.lockset import Artifact, Lock, Lockset, Provenance
from lockd.resolvers.interface import Pin
from tests.conftest import Run, lockd_against
from tests.support.pyindex import Index, IndexServer, serve
from tests.support.wheels import WheelSpec as W

TARGET = "linux-x86_64-py311-cpu"
MATRIX = ("--cuda", "cpu", "--platform", "linux-x86_64", "--python", "3.11")

LockdRunner = Callable[..., Run]


@pytest.fixture
def pypi() -> Iterator[tuple[IndexServer, Index]]:
    with serve() as server:
        index = server.pypi("simple")
        index.add(W("numpy", "2.1.0"))
        index.add(W("filelock", "3.16.1"))
        index.add(W("idna", "3.10"))
        yield server, index


@pytest.fixture
def run(lockd: LockdRunner, pypi: tuple[IndexServer, Index]) -> LockdRunner:
    return lockd_against(lockd, pypi[0])


def compile_json(run: LockdRunner, *args: str) -> dict:  # type: ignore[type-arg]
    result = run("compile", *MATRIX, *args, "--format", "json")
    assert result.returncode == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def pins(tmp_path: Path) -> dict[str, str]:
    doc = json.loads((tmp_path / "locks" / "lockd.json").read_text())
    (lock,) = (lock for lock in doc["locks"] if lock["target"] == TARGET)
    return {a["name"]: a["version"] for a in lock["artifacts"]}


def test_relocking_keeps_pins_and_upgrades_move_them_on_purpose(
    run: LockdRunner, pypi: tuple[IndexServer, Index], tmp_path: Path
) -> None:
    _, index = pypi
    requirements = tmp_path / "requirements.in"
    requirements.write_text("numpy\nidna\n")
    first = compile_json(run)["lockset"]
    assert pins(tmp_path) == {"numpy": "2.1.0", "idna": "3.10"}

    # Upstream releases; then someone adds an unrelated requirement.
    index.add(W("numpy", "2.2.0"))
    index.add(W("numpy", "2.3.0"))
    index.add(W("idna", "3.11"))
    requirements.write_text("numpy\nidna\nfilelock\n")
    added = compile_json(run)
    assert pins(tmp_path) == {"numpy": "2.1.0", "idna": "3.10", "filelock": "3.16.1"}
    change = added["changes"][TARGET]
    assert [a["name"] for a in added["changes"][TARGET]["added"]] == ["filelock"]
    assert change["upgraded"] == [] and {k["name"] for k in change["kept"]} == {"numpy", "idna"}

    # The table says the same in words.
    index.add(W("filelock", "3.17.0"))
    moved = run("compile", *MATRIX, "--upgrade-package", "numpy==2.2.0")
    assert moved.returncode == 0, moved.output
    assert (
        f"{TARGET}: numpy 2.1.0 -> 2.2.0 (numpy in -r requirements.in); 2 other pins kept"
        in moved.stdout
    )
    assert pins(tmp_path) == {"numpy": "2.2.0", "idna": "3.10", "filelock": "3.16.1"}

    (upgraded,) = compile_json(run, "--upgrade-package", "numpy")["changes"][TARGET]["upgraded"]
    assert {k: upgraded[k] for k in ("name", "from", "to")} == {
        "name": "numpy",
        "from": "2.2.0",
        "to": "2.3.0",
    }
    assert upgraded["why"]["inputs_changed"] == []  # moved on purpose, not by an input
    assert pins(tmp_path)["idna"] == "3.10"

    # A typo moves nothing: said, and nothing written or recorded.
    manifest = (tmp_path / "locks" / "lockd.json").read_bytes()
    missing = run("compile", *MATRIX, "--upgrade-package", "numpy==99.0")
    assert missing.returncode == 3, missing.output
    assert "pins numpy==99.0 (--upgrade-package): check that this version exists" in " ".join(
        missing.stderr.split()
    )
    assert (tmp_path / "locks" / "lockd.json").read_bytes() == manifest
    typo = run("compile", *MATRIX, "--upgrade-package", "nmupy", "--upgrade-package", "idna")
    assert typo.returncode == 2, typo.output
    assert "--upgrade-package nmupy: no target locks a package of that name" in typo.stderr
    assert "Did you mean numpy?" in typo.stderr and "Traceback" not in typo.output
    assert (tmp_path / "locks" / "lockd.json").read_bytes() == manifest

    everything = compile_json(run, "--upgrade")
    assert pins(tmp_path) == {"numpy": "2.3.0", "idna": "3.11", "filelock": "3.17.0"}
    assert everything["status"] == "compiled"
    # An upgrade is never a no-op; the plain compile after it is.
    assert compile_json(run, "--upgrade")["status"] == "compiled"
    assert compile_json(run)["status"] == "unchanged"

    diff = run("diff", first, everything["lockset"], "--format", "json")
    entry = json.loads(diff.stdout)["targets"][TARGET]
    assert {u["name"] for u in entry["upgraded"]} == {"numpy", "idna"}
    table = run("diff", first, added["lockset"])
    assert "kept" in table.stdout and "2 packages" in table.stdout


def test_pins_that_no_longer_fit_the_inputs_move(
    run: LockdRunner, pypi: tuple[IndexServer, Index], tmp_path: Path
) -> None:
    _, index = pypi
    (tmp_path / "requirements.in").write_text("numpy\n")
    compile_json(run)
    index.add(W("numpy", "2.2.0"))
    (tmp_path / "requirements.in").write_text("numpy>=2.2\n")
    assert compile_json(run)["changes"][TARGET]["upgraded"][0]["to"] == "2.2.0"


def test_a_kept_pin_is_creep_not_rewritten_history(
    run: LockdRunner, pypi: tuple[IndexServer, Index], tmp_path: Path
) -> None:
    """A newer version published before the cut-off that a re-lock did not take (it keeps
    pins) is a newer version available, not upstream changing what was published."""
    _, index = pypi
    index.add(W("numpy", "2.2.0"))  # published long before any compile here
    requirements = tmp_path / "requirements.in"
    requirements.write_text("numpy==2.1.0\n")
    compile_json(run)
    requirements.write_text("numpy\n")
    assert compile_json(run)["changes"][TARGET]["upgraded"] == []
    assert pins(tmp_path) == {"numpy": "2.1.0"}

    def creep() -> dict[str, str]:
        result = run("drift", "--no-rebuild", "--format", "json")
        assert result.returncode == 1, result.output
        report = json.loads(result.stdout)
        found = [f for f in report["findings"] if f["kind"] == "version-creep"]
        assert [(f["package"], f["expected"], f["actual"]) for f in found] == [
            ("numpy", "2.1.0", "2.2.0")
        ]
        return found[0]  # type: ignore[no-any-return]

    kept = creep()
    assert "upstream changed" not in kept["detail"]
    assert "the lock keeps an older pin" in kept["detail"]

    # Upstream deletes the locked release: now the cut-off cannot reproduce the lock.
    index.remove("numpy", "2.1.0")
    assert creep()["detail"] == "upstream changed what was published before the cut-off"


def test_bad_upgrade_package_is_a_usage_error(run: LockdRunner, tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("numpy\n")
    bad = run("compile", *MATRIX, "--upgrade-package", "numpy @ https://x.example/n.whl")
    assert bad.returncode == 2, bad.output
    assert "--upgrade-package numpy==2.2.0" in bad.stderr and "Traceback" not in bad.output


def _lockset(artifacts: list[Artifact]) -> Lockset:
    return Lockset(
        project="p",
        inputs=(),
        requirements=(),
        targets=(TARGET,),
        resolver="uv",
        resolver_version="0",
        indexes={},
        cutoff="2024-01-01T00:00:00Z",
        input_key="k",
        provenance=Provenance("u", "h", "2024-01-01T00:00:00Z"),
        locks=(Lock(TARGET, tuple(artifacts)),),
    )


def test_preferences_take_only_names_and_versions_from_the_lockset_on_disk() -> None:
    def artifact(name: object, version: object) -> Artifact:
        return Artifact(name, version, "i", "u", "f", "0" * 64)  # type: ignore[arg-type]

    hostile = _lockset(
        [
            artifact("NumPy", "2.1.0"),
            artifact("numpy", "2.1.0"),  # a package's other file
            artifact("../../etc/passwd", "1.0"),
            artifact("idna", "3.10; rm -rf /"),
            artifact("idna", "3.10\n[[packages]]"),
            artifact(["list"], "1.0"),
            artifact("filelock", 3),
        ]
    )
    assert previous_pins(hostile, TARGET) == (Pin("filelock", "3"), Pin("numpy", "2.1.0"))
    assert previous_pins(hostile, "linux-x86_64-py312-cpu") == ()
    assert previous_pins(None, TARGET) == ()


# -- compile --check ---------------------------------------------------------------------


def test_check_agrees_with_the_noop_and_never_resolves(
    run: LockdRunner, pypi: tuple[IndexServer, Index], tmp_path: Path
) -> None:
    server, _ = pypi
    requirements = tmp_path / "requirements.in"
    requirements.write_text("numpy\n")

    def check(*args: str) -> Run:
        before = len(server.requests)
        result = run("compile", *MATRIX, "--check", *args)
        assert len(server.requests) == before, "--check talked to the index"
        assert "Traceback" not in result.output
        return result

    def noop() -> bool:
        return bool(compile_json(run)["status"] == "unchanged")

    missing = check()
    assert missing.returncode == 1 and "lockd.json is missing" in missing.stdout
    assert not (tmp_path / "lockd-home").exists()  # no database opened either
    assert not noop()
    assert check().returncode == 0 and noop()

    requirements.write_text("numpy\nidna\n")
    stale = check()
    assert stale.returncode == 1 and "input requirements.in changed" in stale.stdout
    assert not noop()
    assert check().returncode == 0 and noop()

    lock_file = tmp_path / "locks" / f"{TARGET}.requirements.txt"
    lock_file.write_text(lock_file.read_text() + "# edited\n")
    edited = check("--format", "json")
    assert edited.returncode == 1
    assert json.loads(edited.stdout)["stale"] == [
        f"{TARGET}.requirements.txt differs from what lockd wrote"
    ]
    assert not noop()

    more = check("--python", "3.12")
    assert more.returncode == 1 and "new: linux-x86_64-py312-cpu" in more.stdout
    allowed = check("--allow-build", "numpy")
    assert allowed.returncode == 1 and "allow-build changed" in allowed.stdout
    current = check("--format", "json")
    assert current.returncode == 0 and json.loads(current.stdout)["current"] is True

    both = run("compile", *MATRIX, "--check", "--upgrade")
    assert both.returncode == 2 and "--check" in both.stderr


# What the no-op and `--check` must not import: the database layer, the HTTP client, rich,
# pydantic (typer's coercion), the pip machinery. (The uv backend comes in for its
# version, which is part of the input key: about 10 ms with `uv --version`.)
HEAVY = (
    "sqlmodel",
    "sqlalchemy",
    "alembic",
    "httpx",
    "rich",
    "pydantic",
    "lockd.store.repository",
    "lockd.resolvers.piptools",
    "lockd.app.pip",
    "lockd.indexes",
)


@pytest.mark.parametrize("args", [("--check",), (), ("--format", "json")])
def test_no_op_and_check_import_nothing_heavy(
    run: LockdRunner, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """What keeps `compile --check` and the no-op compile fast enough for a pre-commit hook
    (measured in benchmarks/bench_check.py): the modules each one imports, not a timing."""
    (tmp_path / "requirements.in").write_text("numpy\n")
    compile_json(run)
    result = run("compile", *MATRIX, *args, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.output
    said = {"--check": "Locks are current", "--format": '"status": "unchanged"'}
    assert said.get(args[0] if args else "", "Nothing changed") in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "lockd.app.compile" in imported  # importtime wrote its table
    assert [heavy for heavy in HEAVY if heavy in imported] == []


def test_check_with_a_dockerfile_imports_no_registry_client(
    run: LockdRunner, tmp_path: Path
) -> None:
    """Reading the FROM lines needs the Dockerfile parser, not lockd.images' registry client."""
    (tmp_path / "requirements.in").write_text("numpy\n")
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim AS base\nFROM base\n")
    compile_json(run)
    result = run(
        "compile", *MATRIX, "--check", "--dockerfile", "Dockerfile",
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    )  # fmt: skip
    assert result.returncode == 1 and "the Dockerfile changed" in result.stdout, result.output
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "lockd.images._dockerfile" in imported  # the parser came in
    assert [heavy for heavy in (*HEAVY, "lockd.images._client") if heavy in imported] == []

"""Private packages routed to a private index, against a same-named decoy on the default index.

Two servers on 127.0.0.1: the usual world (default index + PyTorch indexes)
with *decoys* ``acme-models 99.0`` and ``acme-core 99.0`` on the default index,
and a private index behind basic auth that serves the real ``acme-models``
(which needs ``acme-core`` and ``requests``) plus an old copy of ``idna``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.support.pyindex import IndexServer
from tests.support.wheels import WheelSpec as W
from tests.support.world import build_world, index_at

HOST_PY = f"{sys.version_info.major}.{sys.version_info.minor}"
TARGET = f"linux-x86_64-py{sys.version_info.major}{sys.version_info.minor}-cpu"
MATRIX = ["--cuda", "cpu", "--platform", "linux-x86_64", "--python", HOST_PY]
TOKEN = "t0ken-private"
CREDENTIALS = {"UV_INDEX_INTERNAL_USERNAME": "ci", "UV_INDEX_INTERNAL_PASSWORD": TOKEN}


@dataclass
class Acme:
    world: IndexServer
    private: IndexServer

    @property
    def internal(self) -> str:
        return f"{self.private.url}/internal"


@pytest.fixture
def acme() -> Iterator[Acme]:
    world = build_world(IndexServer())
    default = index_at(world, "/simple")
    default.add(W("acme-models", "99.0.0"))  # the decoys: higher versions, public
    default.add(W("acme-core", "99.0.0"))
    private = IndexServer()
    private.basic_auth = f"ci:{TOKEN}"
    internal = private.pypi("internal")
    internal.add(W("acme-models", "1.2.0", requires=("acme-core>=1", "requests")), upload_time=None)
    internal.add(W("acme-core", "1.0.0"), upload_time=None)
    internal.add(W("idna", "3.0"), upload_time=None)  # an old copy: never taken from here
    world.start()
    private.start()
    try:
        yield Acme(world, private)
    finally:
        world.stop()
        private.stop()


@pytest.fixture
def run(lockd: Callable[..., Run], acme: Acme) -> Callable[..., Run]:
    env = {
        "LOCKD_INDEX_URL": f"{acme.world.url}/simple",
        "LOCKD_PYTORCH_INDEX": f"{acme.world.url}/whl",
        **CREDENTIALS,
    }

    def call(*args: str, env_extra: dict[str, str] | None = None) -> Run:
        return lockd(*args, env={**env, **(env_extra or {})})

    return call


def routed_config(acme: Acme, url: str | None = None) -> str:
    return (
        f'[[index]]\nname = "internal"\nurl = "{url or acme.internal}"\n'
        'packages = ["acme-models", "Acme_Core"]\n'
    )


def artifacts(tmp_path: Path) -> dict[str, dict[str, str]]:
    doc = json.loads((tmp_path / "locks" / "lockd.json").read_text())
    return {a["name"]: a for a in doc["locks"][0]["artifacts"]}


def test_private_packages_come_only_from_their_index_and_nothing_else_does(
    run: Callable[..., Run], acme: Acme, tmp_path: Path
) -> None:
    (tmp_path / "lockd.toml").write_text(routed_config(acme))
    (tmp_path / "requirements.in").write_text("acme-models\ntorch==2.6.0\n")
    compiled = run("compile", *MATRIX, "--format", "json")
    assert compiled.returncode == 0, compiled.output
    locked = artifacts(tmp_path)
    assert locked["acme-models"]["version"] == "1.2.0"
    assert locked["acme-models"]["index"] == acme.internal
    # acme-core arrives transitively and is still taken from the private index
    assert (locked["acme-core"]["version"], locked["acme-core"]["index"]) == (
        "1.0.0",
        acme.internal,
    )
    # nothing else comes from it: idna and requests from the default index
    assert (locked["idna"]["version"], locked["idna"]["index"]) == (
        "3.10",
        f"{acme.world.url}/simple",
    )
    assert locked["torch"]["index"] == f"{acme.world.url}/whl/cpu"
    doc = json.loads((tmp_path / "locks" / "lockd.json").read_text())
    assert doc["indexes"]["internal"] == acme.internal
    assert doc["extra"]["routes"] == {"internal": ["acme-core", "acme-models"]}
    # the dependency graph read acme-models' metadata with the index's credentials
    edges = {(e["from"], e["to"]) for e in doc["locks"][0]["graph"]["edges"]}
    assert {("acme-models", "acme-core"), ("acme-models", "requests")} <= edges
    requirements = (tmp_path / "locks" / f"{TARGET}.requirements.txt").read_text()
    assert f"acme-models @ {acme.private.url}/packages/internal/acme_models-1.2.0" in requirements
    # drift resolves and re-checks with the same routing (and the same credentials):
    # without it the decoys would be version creep
    drift = run("drift", "--format", "json")
    assert drift.returncode == 0, drift.output
    report = json.loads(drift.stdout)
    assert report["findings"] == [] and report["errors"] == []
    assert report["checks"] == [f"rebuild:{TARGET}", f"creep:{TARGET}"]
    blobs = [compiled.output, drift.output]
    blobs += [p.read_text() for p in (tmp_path / "locks").iterdir()]
    blobs += [p.read_bytes().decode("latin-1") for p in (tmp_path / "lockd-home").rglob("*.db")]
    assert all(TOKEN not in blob for blob in blobs)


def test_credentials_in_the_config_url_never_leave_lockd(
    run: Callable[..., Run], acme: Acme, tmp_path: Path
) -> None:
    host = acme.private.url.removeprefix("http://")
    (tmp_path / "lockd.toml").write_text(routed_config(acme, f"http://ci:{TOKEN}@{host}/internal"))
    (tmp_path / "requirements.in").write_text("acme-models\n")
    compiled = run("compile", *MATRIX, env_extra={"UV_INDEX_INTERNAL_PASSWORD": "wrong"})
    assert compiled.returncode == 0, compiled.output
    assert artifacts(tmp_path)["acme-models"]["index"] == acme.internal
    for blob in [compiled.output, *(p.read_text() for p in (tmp_path / "locks").iterdir())]:
        assert TOKEN not in blob


def test_without_credentials_the_private_index_fails_cleanly(
    run: Callable[..., Run], acme: Acme, tmp_path: Path
) -> None:
    (tmp_path / "lockd.toml").write_text(routed_config(acme))
    (tmp_path / "requirements.in").write_text("acme-models\n")
    denied = run(
        "compile",
        *MATRIX,
        env_extra={"UV_INDEX_INTERNAL_USERNAME": "", "UV_INDEX_INTERNAL_PASSWORD": ""},
    )
    assert denied.returncode == 3, denied.output
    assert "Traceback" not in denied.output
    assert "acme-models is routed to the private index 'internal'" in denied.stderr
    assert "answered HTTP 401" in denied.stderr
    assert "Set UV_INDEX_INTERNAL_USERNAME and UV_INDEX_INTERNAL_PASSWORD" in denied.stderr
    assert not (tmp_path / "locks").exists()


def test_a_routed_package_the_private_index_lacks_is_named(
    run: Callable[..., Run], acme: Acme, tmp_path: Path
) -> None:
    (tmp_path / "lockd.toml").write_text(routed_config(acme).replace('"Acme_Core"', '"acme-x"'))
    (tmp_path / "requirements.in").write_text("acme-x\nidna\n")
    missing = run("compile", *MATRIX)
    assert missing.returncode == 3, missing.output
    assert "acme-x is routed to the private index 'internal', and " in missing.stderr
    assert "'internal', and C" not in " ".join(missing.stderr.split())  # one sentence
    assert "answered HTTP 404" in missing.stderr and TOKEN not in missing.output


def test_verification_catches_confusion_a_resolver_cannot_route(
    run: Callable[..., Run], acme: Acme, tmp_path: Path
) -> None:
    # pip-compile has no explicit indexes: it sees the private index as an extra index
    # and takes the decoy's higher version; verification refuses the lock.
    (tmp_path / "lockd.toml").write_text(routed_config(acme))
    (tmp_path / "requirements.in").write_text("acme-models\n")
    confused = run("compile", "--resolver", "pip-tools", *MATRIX, "--pytorch-index", "pypi")
    assert confused.returncode == 3, confused.output
    assert "acme-models 99.0.0" in confused.stderr
    assert f"must come from {acme.internal} only" in confused.stderr
    assert "dependency confusion" in confused.stderr
    assert TOKEN not in confused.output


def test_spread_reads_a_private_index_with_the_configured_credentials_only(
    run: Callable[..., Run], acme: Acme, tmp_path: Path
) -> None:
    # acme-core 2.0.0 needs Python 3.12: the 3.11 target keeps 1.0.0, and only the private
    # index (behind basic auth) can say why
    internal = next(i for i in acme.private.indexes if i.prefix == "/internal")
    internal.add(W("acme-core", "2.0.0", requires_python=">=3.12"), upload_time=None)
    (tmp_path / "lockd.toml").write_text(routed_config(acme))
    (tmp_path / "requirements.in").write_text("acme-models\n")
    two_pythons = [*MATRIX[:-2], "--python", "3.11", "--python", "3.12"]
    assert run("compile", *two_pythons).returncode == 0
    spread = run("spread", "--format", "json")
    assert spread.returncode == 0, spread.output
    (core,) = [p for p in json.loads(spread.stdout)["differ"] if p["name"] == "acme-core"]
    assert [(r["target"], r["kind"], r["text"]) for r in core["reasons"]] == [
        ("linux-x86_64-py311-cpu", "requires-python", "acme-core 2.0.0 requires Python >=3.12")
    ]
    assert TOKEN not in spread.output
    # without them: said, never guessed, and the token is nowhere
    denied = run(
        "spread",
        "--format",
        "json",
        env_extra={"UV_INDEX_INTERNAL_USERNAME": "", "UV_INDEX_INTERNAL_PASSWORD": ""},
    )
    assert denied.returncode == 0, denied.output
    (core,) = [p for p in json.loads(denied.stdout)["differ"] if p["name"] == "acme-core"]
    (reason,) = core["reasons"]
    assert reason["kind"] == "unknown" and "401" in reason["text"]

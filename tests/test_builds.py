"""No code from the internet runs unless allowed: sdists are not built by default.

The index serves `evil`, a package whose only release is an sdist with a build
backend that appends a line to a marker file whenever any build starts. The
marker proves whether lockd (through uv or pip) ran the package's code.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from packaging.version import Version

from lockd.builds import BuildPolicy, python_conflict
from lockd.indexes import parse_html_page
from lockd.lockset import Lockset
from lockd.resolvers.uv import sync_build_flags
from tests.conftest import Run, lockd_against
from tests.support.pyindex import Index, IndexServer, serve
from tests.support.sdists import SdistSpec
from tests.support.wheels import WheelSpec as W

HOST_PY = f"{sys.version_info.major}.{sys.version_info.minor}"
TARGET = f"linux-x86_64-py{sys.version_info.major}{sys.version_info.minor}-cpu"
MATRIX = ("--cuda", "cpu", "--platform", "linux-x86_64", "--python", HOST_PY)
ON_LINUX_X86 = pytest.mark.skipif(
    not (sys.platform == "linux" and __import__("platform").machine() == "x86_64"),
    reason="the host target must be linux-x86_64 (pip-tools and drift rebuilds)",
)

LockdRunner = Callable[..., Run]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "built.marker"


@pytest.fixture
def pypi(marker: Path) -> Iterator[tuple[IndexServer, Index]]:
    with serve() as server:
        index = server.pypi("simple")
        index.add(W("numpy", "2.1.0"))
        index.add_sdist(SdistSpec("evil", "1.0", str(marker)))
        yield server, index


@pytest.fixture
def run(lockd: LockdRunner, pypi: tuple[IndexServer, Index]) -> LockdRunner:
    return lockd_against(lockd, pypi[0])


def builds(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def assert_refused(result: Run, marker: Path, *, built_before: int = 0) -> None:
    assert result.returncode == 3, result.output
    assert "Traceback" not in result.output
    assert "evil has no wheel that fits, only a source distribution" in result.stderr
    assert "--allow-build evil" in result.stderr and 'allow-build = ["evil"]' in result.stderr
    assert builds(marker) == built_before, "the sdist's build code ran"


def test_uv_refuses_to_build_unless_allowed(run: LockdRunner, marker: Path, tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("numpy\nevil\n")
    assert_refused(run("compile", *MATRIX), marker)
    assert not (tmp_path / "locks").exists()

    allowed = run("compile", *MATRIX, "--allow-build", "evil", "--format", "json")
    assert allowed.returncode == 0, allowed.output
    assert builds(marker) >= 1
    result = json.loads(allowed.stdout)
    assert result["targets"][0]["source_builds"] == {"evil": "1.0"}
    doc = json.loads((tmp_path / "locks" / "lockd.json").read_text())
    assert doc["extra"]["allow_build"] == ["evil"]
    (lock,) = doc["locks"]
    kinds = {a["name"]: a["kind"] for a in lock["artifacts"]}
    assert kinds == {"numpy": "wheel", "evil": "sdist"}

    shown = run("show", result["lockset"])
    assert "installs evil 1.0 from source (sdist only)" in shown.stdout
    assert "allow-build evil" in shown.stdout
    for fmt, needle in (
        ("markdown", "**built from source** `" + TARGET + "`: evil 1.0"),
        ("html", "<strong>built from source</strong> <code>" + TARGET + "</code>: evil 1.0"),
    ):
        report = run("audit", "--format", fmt)
        assert report.returncode == 0, report.output
        assert needle in report.stdout
    audit = json.loads(run("audit", "--format", "json").stdout)
    assert audit["projects"][0]["source_builds"] == [
        {"lockset": result["lockset"], "target": TARGET, "name": "evil", "version": "1.0"}
    ]

    # Dropping the allowance is a change of configuration, and refused again.
    before = builds(marker)
    assert_refused(run("compile", *MATRIX), marker, built_before=before)


def test_the_configuration_allows_every_build(
    run: LockdRunner, marker: Path, tmp_path: Path
) -> None:
    (tmp_path / "requirements.in").write_text("evil\n")
    (tmp_path / "lockd.toml").write_text('allow-build = ["*"]\n')
    result = run("compile", *MATRIX)
    assert result.returncode == 0, result.output
    assert builds(marker) >= 1
    assert json.loads((tmp_path / "locks" / "lockd.json").read_text())["extra"]["allow_build"] == [
        "*"
    ]
    (tmp_path / "lockd.toml").write_text('allow-build = ["../evil"]\n')
    bad = run("compile", *MATRIX)
    assert bad.returncode == 2, bad.output
    assert "allow-build in" in bad.stderr and "'../evil' is not a package name" in bad.stderr


@ON_LINUX_X86
def test_pip_tools_refuses_to_build_unless_allowed(
    run: LockdRunner, marker: Path, tmp_path: Path
) -> None:
    (tmp_path / "requirements.in").write_text("numpy\nevil\n")
    pip_tools = ("--resolver", "pip-tools", *MATRIX)
    assert_refused(run("compile", *pip_tools), marker)
    allowed = run("compile", *pip_tools, "--allow-build", "evil")
    assert allowed.returncode == 0, allowed.output
    assert builds(marker) >= 1
    doc = json.loads((tmp_path / "locks" / "lockd.json").read_text())
    assert {a["name"]: a["kind"] for a in doc["locks"][0]["artifacts"]}["evil"] == "sdist"


def test_drift_creep_applies_the_recorded_allowance(
    run: LockdRunner, pypi: tuple[IndexServer, Index], marker: Path, tmp_path: Path
) -> None:
    _, index = pypi
    index.projects["evil"].clear()
    index.add(W("evil", "1.0"))
    (tmp_path / "requirements.in").write_text("evil\n")
    assert run("compile", *MATRIX).returncode == 0
    index.add_sdist(SdistSpec("evil", "2.0", str(marker)))  # upstream publishes an sdist only

    def drift() -> dict:  # type: ignore[type-arg]
        result = run("drift", "--no-rebuild", "--no-images", "--format", "json")
        assert "Traceback" not in result.output
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    # Today's resolution may take the newer sdist only if it could build it: it keeps 1.0.
    assert drift()["status"] == "clean"
    assert builds(marker) == 0, "drift's re-resolution built an sdist nobody allowed"

    index.remove("evil", "1.0")  # now only the sdist satisfies `evil`
    report = drift()
    creep = [e for e in report["errors"] if e["check"] == "creep"]
    assert creep and "evil has no wheel that fits" in creep[0]["message"]
    assert builds(marker) == 0

    assert run("compile", *MATRIX, "--allow-build", "evil").returncode == 0
    assert builds(marker) >= 1
    allowed = drift()
    assert allowed["status"] == "clean" and allowed["errors"] == [], allowed


@ON_LINUX_X86
def test_drift_rebuild_refuses_an_sdist_the_lockset_did_not_allow(
    run: LockdRunner, marker: Path, tmp_path: Path
) -> None:
    (tmp_path / "requirements.in").write_text("evil\n")
    assert run("compile", *MATRIX, "--allow-build", "evil").returncode == 0
    built = builds(marker)
    allowed = run("drift", "--rebuild", "--no-creep", "--no-images", "--format", "json")
    assert allowed.returncode == 0, allowed.output
    assert builds(marker) > built  # allowed: the rebuild installs it from source

    # The same lock recorded as if it had been compiled without the allowance.
    lockset = Lockset.from_dict(json.loads((tmp_path / "locks" / "lockd.json").read_text()))
    extra = {k: v for k, v in lockset.extra.items() if k != "allow_build"}
    from lockd.store import Store

    store = Store(f"sqlite:///{tmp_path / 'lockd-home' / 'lockd.db'}")
    try:
        store.record_lockset(replace(lockset, extra=extra, parent=lockset.hash))
    finally:
        store.close()
    built = builds(marker)
    refused = run("drift", "--rebuild", "--no-creep", "--no-images", "--format", "json")
    assert refused.returncode == 3, refused.output
    (error,) = json.loads(refused.stdout)["errors"]
    assert "installs evil from source" in error["message"]
    assert "--allow-build evil" in error["message"]
    assert builds(marker) == built
    assert sqlite3.connect(tmp_path / "lockd-home" / "lockd.db")  # the record is intact


def test_a_requires_python_conflict_is_not_called_a_build_refusal(
    lockd: LockdRunner, marker: Path, tmp_path: Path
) -> None:
    """numpy>=2.3 only supports Python 3.11+: for py39 no build would help, and none runs."""
    with serve() as server:
        index = server.pypi("simple")
        index.add(
            W("numpy", "2.2.0", tag="cp39-cp39-manylinux_2_17_x86_64", requires_python=">=3.9")
        )
        for py in ("311", "312"):
            wheel = W("numpy", "2.3.0", tag=f"cp{py}-cp{py}-manylinux_2_17_x86_64")
            index.add(replace(wheel, requires_python=">=3.11"))
        index.add_sdist(SdistSpec("numpy", "2.3.0", str(marker), requires_python=">=3.11"))
        (tmp_path / "requirements.in").write_text("numpy>=2.3\n")
        run = lockd_against(lockd, server)
        matrix = ("--platform", "linux-x86_64", "--python", "3.11", "--python", "3.9")
        result = run("compile", *matrix)
        assert result.returncode == 3, result.output
        text = " ".join(result.stderr.split())
        assert "Target linux-x86_64-py39-cpu: numpy>=2.3 needs Python >=3.11" in text, text
        assert "Drop Python 3.9 from the matrix" in text
        assert "allow-build" not in text and "source distribution" not in text
        assert "Traceback" not in result.output and builds(marker) == 0


def test_python_conflicts_need_every_candidate_to_exclude_the_python() -> None:
    def releases(*items: tuple[str, str | None]) -> list[tuple[Version, str | None]]:
        return [(Version(v), rp) for v, rp in items]

    newer = releases(("2.2.0", ">=3.9"), ("2.3.0", ">=3.11"), ("2.3.1", ">=3.11"))
    found = python_conflict("t", "3.9", ("numpy", ">=2.3"), newer)
    assert found is not None and "numpy>=2.3 needs Python >=3.11" in found.message
    assert python_conflict("t", "3.9", ("numpy", ""), newer) is None  # 2.2.0 supports 3.9
    assert python_conflict("t", "3.11", ("numpy", ">=2.3"), newer) is None
    undeclared = releases(("2.3.0", ">=3.11"), ("2.3.0", None))
    assert python_conflict("t", "3.9", ("numpy", ">=2.3"), undeclared) is None
    assert python_conflict("t", "3.9", ("numpy", ">=9"), newer) is None  # no candidate at all
    garbled = releases(("2.3.0", "python 3 please"))
    assert python_conflict("t", "3.9", ("numpy", ""), garbled) is None


def test_html_pages_carry_requires_python() -> None:
    page = '<a href="/f/numpy-2.3.0.tar.gz#sha256=ab" data-requires-python="&gt;=3.11">x</a>'
    (link,) = parse_html_page(page, "https://index.example/simple/numpy/")
    assert link.requires_python == ">=3.11" and link.sha256 == "ab"


def test_sync_lets_only_allowed_packages_build() -> None:
    locked = ["numpy", "evil", "torch"]
    assert sync_build_flags(locked, BuildPolicy()) == ["--only-binary", ":all:"]
    assert sync_build_flags(locked, BuildPolicy.parse(["*"])) == []
    assert sync_build_flags(locked, BuildPolicy.parse(["Evil"])) == [
        "--only-binary",
        "numpy",
        "--only-binary",
        "torch",
    ]

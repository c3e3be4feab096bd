"""`lockd spread`: where a lockset's targets differ, and why — the real CLI, uv, an index
on 127.0.0.1 whose packages differ by Python in each of the ways the command names."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from packaging.tags import Tag

from lockd.app.spread import target_tags
from lockd.targets import parse_target_id
from tests.conftest import Run, lockd_against
from tests.support.pyindex import Index, IndexServer, serve
from tests.support.wheels import WheelSpec as W

LockdRunner = Callable[..., Run]
PY311, PY312 = "linux-x86_64-py311-cpu", "linux-x86_64-py312-cpu"
MATRIX = ("--cuda", "cpu", "--platform", "linux-x86_64", "--python", "3.11", "--python", "3.12")


@pytest.fixture
def pypi() -> Iterator[tuple[IndexServer, Index]]:
    with serve() as server:
        index = server.pypi("simple")
        index.add(W("app", "1.0", requires=(
            'backport>=1; python_version < "3.12"',
            'held<1.5; python_version < "3.12"',
            "held",
            "newer",
            "wheelonly",
            "same",
        )))  # fmt: skip
        index.add(W("backport", "1.0"))
        index.add(W("held", "1.0"))
        index.add(W("held", "1.5"))
        index.add(W("newer", "1.0"))
        index.add(W("newer", "2.0", requires_python=">=3.12"))
        index.add(W("wheelonly", "2.0"))
        index.add(W("wheelonly", "3.0", "cp312-cp312-manylinux_2_17_x86_64"))
        index.add(W("same", "1.0"))
        yield server, index


@pytest.fixture
def run(lockd: LockdRunner, pypi: tuple[IndexServer, Index], tmp_path: Path) -> LockdRunner:
    (tmp_path / "requirements.in").write_text("app\n")
    locked = lockd_against(lockd, pypi[0])
    result = locked("compile", *MATRIX)
    assert result.returncode == 0, result.output
    return locked


def reasons(doc: dict, name: str) -> dict[str, list[tuple[str, str]]]:  # type: ignore[type-arg]
    package = next(p for p in doc["differ"] if p["name"] == name)
    out: dict[str, list[tuple[str, str]]] = {}
    for reason in package["reasons"]:
        out.setdefault(reason["target"], []).append((reason["kind"], reason["text"]))
    return out


def test_each_difference_gets_its_cause(run: LockdRunner) -> None:
    result = run("spread", "--format", "json")
    assert result.returncode == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["targets"] == [PY311, PY312]
    assert sorted(p["name"] for p in doc["differ"]) == ["backport", "held", "newer", "wheelonly"]
    assert doc["same_everywhere"] == 2  # app and same
    assert next(p for p in doc["differ"] if p["name"] == "newer")["versions"] == {
        PY311: "1.0",
        PY312: "2.0",
    }
    assert reasons(doc, "newer") == {
        PY311: [("requires-python", "newer 2.0 requires Python >=3.12")]
    }
    assert reasons(doc, "held") == {
        PY311: [("requirement", 'app 1.0 requires `held<1.5; python_version < "3.12"`')]
    }
    assert reasons(doc, "backport") == {
        PY312: [
            (
                "marker",
                'app 1.0 requires `backport>=1; python_version < "3.12"`, '
                "which does not apply here",
            )
        ]
    }
    assert reasons(doc, "wheelonly") == {
        PY311: [
            (
                "wheels",
                "wheelonly 3.0 has no wheel for Python 3.11 on linux-x86_64, glibc 2.28 "
                "(and building it is not allowed)",
            )
        ]
    }
    assert doc["index_read"] is True


def test_the_table_and_offline(run: LockdRunner, pypi: tuple[IndexServer, Index]) -> None:
    table = run("spread")
    assert table.returncode == 0, table.output
    assert "requires-python: newer 2.0 requires Python >=3.12" in table.stdout
    assert "locked elsewhere" in table.stdout  # backport on 3.12
    assert "4 packages differ across 2 targets; 2 are the same on every one." in table.stdout
    # --offline: the lockset only; the causes the index would give are not guessed
    pypi[0].stop()
    offline = run("spread", "--offline", "--format", "json")
    assert offline.returncode == 0, offline.output
    doc = json.loads(offline.stdout)
    assert doc["index_read"] is False
    assert reasons(doc, "newer")[PY311][0][0] == "unknown"
    assert reasons(doc, "held")[PY311][0][0] == "requirement"  # from the recorded graph
    # the index gone without --offline: said so, per package, and still exit 0
    gone = run("spread", "--format", "json")
    assert gone.returncode == 0, gone.output
    kind, text = reasons(json.loads(gone.stdout), "newer")[PY311][0]
    assert kind == "unknown" and text.startswith("the index could not be read")


def test_an_accelerator_build_and_what_only_it_brings(lockd: LockdRunner, tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("torch==2.6.0\n")
    compiled = lockd("compile", "--cuda", "cpu", "--cuda", "cu124", "--platform", "linux-x86_64")
    assert compiled.returncode == 0, compiled.output
    result = lockd("spread", "--offline", "--format", "json")
    assert result.returncode == 0, result.output
    doc = json.loads(result.stdout)
    torch = reasons(doc, "torch")
    assert {kind for found in torch.values() for kind, _ in found} == {"accelerator"}
    assert len(torch) == 2  # each build is explained against the other
    # the cu124 build requires triton, the CPU build does not
    assert reasons(doc, "triton") == {
        "linux-x86_64-py311-cpu": [
            ("requirer", "required by torch 2.6.0+cu124; torch 2.6.0+cpu here does not")
        ]
    }


def test_one_target_has_nothing_to_compare(lockd: LockdRunner, tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("numpy\n")
    assert lockd("compile", "--platform", "linux-x86_64", "--python", "3.11").returncode == 0
    result = lockd("spread")
    assert result.returncode == 2, result.output
    assert "Traceback" not in result.output
    assert "there is nothing to compare" in result.stderr


def test_target_tags_follow_python_platform_and_glibc() -> None:
    tags = target_tags(parse_target_id("linux-x86_64-py311-cu124"), "2.28")
    assert Tag("cp311", "cp311", "manylinux_2_17_x86_64") in tags
    assert Tag("cp311", "cp311", "manylinux2014_x86_64") in tags
    assert Tag("cp38", "abi3", "manylinux_2_28_x86_64") in tags
    assert Tag("py3", "none", "any") in tags
    assert Tag("cp312", "cp312", "manylinux_2_17_x86_64") not in tags
    assert Tag("cp311", "cp311", "manylinux_2_31_x86_64") not in tags
    assert Tag("cp311", "cp311", "manylinux_2_28_aarch64") not in tags
    mac = target_tags(parse_target_id("macos-arm64-py312-cpu"), "2.28")
    assert Tag("cp312", "cp312", "macosx_11_0_arm64") in mac
    assert Tag("cp312", "cp312", "win_amd64") not in mac

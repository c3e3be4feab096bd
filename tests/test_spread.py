"""`lockd spread`: where a lockset's targets differ, and why — the real CLI, uv, an index
on 127.0.0.1 whose packages differ by Python in each of the ways the command names."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from packaging.tags import Tag

from lockd.app.spread import explain_spread, glibc_floor, target_tags
from lockd.indexes import IndexLink
from lockd.lockfiles.manifest import read_manifest
from lockd.lockset import Artifact, Lockset
from lockd.targets import parse_target_id
from tests.conftest import Run, lockd_against
from tests.support.pyindex import Index, IndexServer, serve
from tests.support.wheels import WheelSpec as W

LockdRunner = Callable[..., Run]
PY311, PY312 = "linux-x86_64-py311-cpu", "linux-x86_64-py312-cpu"
MATRIX = ("--cuda", "cpu", "--platform", "linux-x86_64", "--python", "3.11", "--python", "3.12")
CUTOFF = ("--exclude-newer", "2025-01-01T00:00:00Z")
AFTER = "2025-06-01T00:00:00Z"


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
            "late",
            "req",
            'req[socks]; python_version < "3.12"',
            'both<2; python_version < "3.12"',
            "both",
        )))  # fmt: skip
        index.add(W("backport", "1.0"))
        index.add(W("held", "1.0"))
        index.add(W("held", "1.5"))
        index.add(W("newer", "1.0"))
        index.add(W("newer", "2.0", requires_python=">=3.12"))
        index.add(W("wheelonly", "2.0"))
        index.add(W("wheelonly", "3.0", "cp312-cp312-manylinux_2_17_x86_64"))
        index.add(W("same", "1.0"))
        # 3.0 for Python 3.11 only came after the lock's cut-off (2025-01-01)
        index.add(W("late", "2.0"))
        index.add(W("late", "3.0", "cp312-cp312-manylinux_2_17_x86_64"))
        index.add(W("late", "3.0", "cp311-cp311-manylinux_2_17_x86_64"), upload_time=AFTER)
        index.add(W("req", "1.0", requires=('socksy; extra == "socks"',), extras=("socks",)))
        index.add(W("socksy", "1.0"))
        index.add(W("both", "1.0"))
        index.add(W("both", "2.0", requires_python=">=3.12"))
        yield server, index


@pytest.fixture
def run(lockd: LockdRunner, pypi: tuple[IndexServer, Index], tmp_path: Path) -> LockdRunner:
    (tmp_path / "requirements.in").write_text("app\n")
    locked = lockd_against(lockd, pypi[0])
    result = locked("compile", *MATRIX, *CUTOFF)
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
    assert sorted(p["name"] for p in doc["differ"]) == [
        "backport",
        "both",
        "held",
        "late",
        "newer",
        "socksy",
        "wheelonly",
    ]
    assert doc["same_everywhere"] == 3  # app, req and same
    assert next(p for p in doc["differ"] if p["name"] == "newer")["versions"] == {
        PY311: "1.0",
        PY312: "2.0",
    }
    assert reasons(doc, "newer") == {
        PY311: [("requires-python", "newer 2.0 requires Python >=3.12")]
    }
    assert reasons(doc, "both") == {  # a requirement, and the Python it would need anyway
        PY311: [
            ("requirement", 'app 1.0 requires `both<2; python_version < "3.12"`'),
            ("requires-python", "both 2.0 requires Python >=3.12"),
        ]
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
    # as of the cut-off: the Python 3.11 wheel of late 3.0 came later
    assert reasons(doc, "late") == {
        PY311: [
            (
                "wheels",
                "late 3.0 has no wheel for Python 3.11 on linux-x86_64, glibc 2.28 "
                "(and building it is not allowed)",
            )
        ]
    }
    assert reasons(doc, "socksy") == {
        PY312: [("requirer", "req brings it only with its extra `socks`, not asked for here")]
    }
    assert doc["index_asked"] is True and doc["indexes_not_read"] == []


def test_the_table_and_offline(run: LockdRunner, pypi: tuple[IndexServer, Index]) -> None:
    table = run("spread")
    assert table.returncode == 0, table.output
    assert "requires-python: newer 2.0 requires Python >=3.12" in table.stdout
    assert "locked elsewhere" in table.stdout  # backport on 3.12
    assert "7 packages differ across 2 targets; 3 are the same on every one." in table.stdout
    # --offline: the lockset only; the causes the index would give are not guessed
    pypi[0].stop()
    offline = run("spread", "--offline", "--format", "json")
    assert offline.returncode == 0, offline.output
    doc = json.loads(offline.stdout)
    assert doc["index_asked"] is False
    assert reasons(doc, "newer")[PY311][0][0] == "unknown"
    assert reasons(doc, "held")[PY311][0][0] == "requirement"  # from the recorded graph
    # the index gone without --offline: said so, per package, and still exit 0
    gone = run("spread", "--format", "json")
    assert gone.returncode == 0, gone.output
    doc = json.loads(gone.stdout)
    kind, text = reasons(doc, "newer")[PY311][0]
    assert kind == "unknown" and text.startswith("the index could not be read")
    assert doc["indexes_not_read"] == [f"{pypi[0].url}/simple"]
    table = run("spread")
    assert f"Not read: {pypi[0].url}/simple" in table.stdout


def test_an_accelerator_build_and_what_only_it_brings(lockd: LockdRunner, tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("torch==2.6.0\n")
    compiled = lockd("compile", "--cuda", "cpu", "--cuda", "cu124", "--platform", "linux-x86_64")
    assert compiled.returncode == 0, compiled.output
    result = lockd("spread", "--offline", "--format", "json")
    assert result.returncode == 0, result.output
    doc = json.loads(result.stdout)
    assert reasons(doc, "torch") == {  # one row per target: no build is "higher"
        "linux-x86_64-py311-cpu": [
            ("accelerator", "torch 2.6.0+cpu is this target's build; elsewhere 2.6.0+cu124")
        ],
        "linux-x86_64-py311-cu124": [
            ("accelerator", "torch 2.6.0+cu124 is this target's build; elsewhere 2.6.0+cpu")
        ],
    }
    # the cu124 build requires triton, the CPU build does not
    assert reasons(doc, "triton") == {
        "linux-x86_64-py311-cpu": [
            ("requirer", "required by torch 2.6.0+cu124; torch 2.6.0+cpu here does not")
        ]
    }


def test_one_target_has_nothing_to_compare(lockd: LockdRunner, tmp_path: Path) -> None:
    # a report, not a check: a CI loop over every project must not fail on this one
    (tmp_path / "requirements.in").write_text("numpy\n")
    assert lockd("compile", "--platform", "linux-x86_64", "--python", "3.11").returncode == 0
    result = lockd("spread")
    assert result.returncode == 0, result.output
    assert "Nothing to compare:" in result.stdout and "no two targets of one kind" in result.stdout
    doc = json.loads(lockd("spread", "--format", "json").stdout)
    assert (doc["targets"], doc["differ"], doc["failed_targets"]) == ([], [], [])


def test_a_lockset_glibc_is_read_bounded() -> None:
    # a forged "2.200000" would have made 200,000 manylinux tags per target
    assert [glibc_floor(v) for v in ("2.17", "2.200000", "2.x", 2.28, None)] == [
        "2.17",
        "2.40",
        "2.28",
        "2.28",
        "2.28",
    ]


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


def test_each_target_is_judged_by_its_own_index(lockd: LockdRunner, tmp_path: Path) -> None:
    # cu121's variant index publishes torch 2.5.1 only: 2.6.0 is not there to be had
    (tmp_path / "requirements.in").write_text("torch\n")
    compiled = lockd("compile", "--cuda", "cu121", "--cuda", "cu124", "--platform", "linux-x86_64")
    assert compiled.returncode == 0, compiled.output
    result = lockd("spread", "--format", "json")
    assert result.returncode == 0, result.output
    torch = reasons(json.loads(result.stdout), "torch")
    ((kind, text),) = torch["linux-x86_64-py311-cu121"]
    assert kind == "index"
    assert text.startswith("no build of torch 2.6.0 is on this target's index (")
    assert text.endswith("/whl/cu121)")


def lockset_of(tmp_path: Path) -> Lockset:
    found = read_manifest(tmp_path / "locks" / "lockd.json")
    assert found is not None
    return found


def test_conda_locks_are_compared_with_conda_locks_only(run: LockdRunner, tmp_path: Path) -> None:
    lockset = lockset_of(tmp_path)
    pip_only = explain_spread(lockset, None)
    # a conda environment's lock beside the pip locks (its pip: section is a pip lock)
    conda = replace(
        lockset.locks[0],
        target="linux-x86_64-cpu",
        artifacts=(
            Artifact("python", "3.11.9", "https://conda.example/main", "u", "f", "c", "conda"),
        ),
        graph=None,
    )
    mixed = explain_spread(replace(lockset, locks=(*lockset.locks, conda)), None)
    assert mixed.targets == (PY311, PY312)  # one conda lock: nothing to compare it with
    assert mixed.packages == pip_only.packages
    assert mixed.same == pip_only.same


def test_without_a_graph_or_from_a_forged_lockset_it_says_what_it_cannot_tell(
    run: LockdRunner, tmp_path: Path
) -> None:
    lockset = lockset_of(tmp_path)
    bare = replace(lockset, locks=tuple(replace(lock, graph=None) for lock in lockset.locks))
    answer = explain_spread(bare, None)
    texts = {r.text for p in answer.packages for r in p.reasons}
    assert any("recorded without a dependency graph" in t for t in texts)  # backport, socksy
    # a forged lock: an index that is not http(s), a name that is not a project's,
    # a glibc that would make the tags endless; nothing is asked, nothing breaks
    forged = replace(
        lockset,
        extra={**lockset.extra, "glibc": "2.200000"},
        locks=tuple(
            replace(
                lock,
                artifacts=tuple(
                    replace(a, index="file:///etc")
                    if a.name == "newer"
                    else replace(a, name="../../admin?x=1#")
                    if a.name == "held"
                    else a
                    for a in lock.artifacts
                ),
            )
            for lock in lockset.locks
        ),
    )
    asked: list[tuple[str, str]] = []

    def listing(index: str, name: str) -> Sequence[IndexLink]:
        asked.append((index, name))
        return []

    answer = explain_spread(forged, listing)
    assert asked and all(i.startswith("http://127.0.0.1:") for i, _ in asked)
    assert {name for _, name in asked} <= {"both", "late", "wheelonly"}
    found = {p.name: p.reasons for p in answer.packages}
    assert found["newer"][0].text == "the index could not be read: not an http(s) index"
    # the held<1.5 line no longer names the forged package: the index would be asked
    assert (
        found["../../admin?x=1#"][0].text == "the index could not be read: not a valid project name"
    )


def test_builds_and_versions_lockd_cannot_order(run: LockdRunner, tmp_path: Path) -> None:
    lockset = lockset_of(tmp_path)

    def with_version(lock_index: int, name: str, version: str) -> Lockset:
        locks = list(lockset.locks)
        lock = locks[lock_index]
        locks[lock_index] = replace(
            lock,
            artifacts=tuple(
                replace(a, version=version) if a.name == name else a for a in lock.artifacts
            ),
        )
        return replace(lockset, locks=tuple(locks))

    # "1.0" and "1.0.0" are one version
    assert "same" not in {
        p.name for p in explain_spread(with_version(0, "same", "1.0.0"), None).packages
    }
    local = explain_spread(with_version(0, "same", "1.0+corp"), None)
    (same,) = [p for p in local.packages if p.name == "same"]
    assert {(r.kind, r.text) for r in same.reasons} == {
        ("build", "same 1.0+corp is this target's build; elsewhere 1.0"),
        ("build", "same 1.0 is this target's build; elsewhere 1.0+corp"),
    }
    odd = explain_spread(with_version(0, "same", "1.0-weird!"), None)
    (same,) = [p for p in odd.packages if p.name == "same"]
    assert {r.kind for r in same.reasons} == {"unknown"}  # still a row for each target
    assert {r.target for r in same.reasons} == {PY311, PY312}

"""The dependency graph end to end: compile, `# via`, `lockd why`, diff, SBOM, audit.

The acceptance test: for the same inputs, the `# via` annotations lockd writes
are the ones `uv pip compile --annotate` writes, on every target (markers on
the platform and the Python version, extras that turn on extras, a cycle,
constraints, nested `-r` includes).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from lockd.lockfiles.manifest import render_manifest
from tests.conftest import Run, lockd_against
from tests.support.graphworld import add_graph_world, parse_via, uv_annotations
from tests.support.pyindex import Index, IndexServer, serve
from tests.support.sdists import SdistSpec
from tests.support.wheels import WheelSpec as W
from tests.test_graph import one_lock

LockdRunner = Callable[..., Run]
TARGETS = (
    "linux-x86_64-py311-cpu",
    "linux-x86_64-py312-cpu",
    "windows-x86_64-py311-cpu",
    "windows-x86_64-py312-cpu",
)
MATRIX = (
    "--cuda",
    "cpu",
    "--platform",
    "linux-x86_64",
    "--platform",
    "windows-x86_64",
    "--python",
    "3.11",
    "--python",
    "3.12",
)
HOST_PY = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture
def pypi(tmp_path: Path) -> Iterator[tuple[IndexServer, Index]]:
    with serve() as server:
        index = add_graph_world(server.pypi("simple"))
        index.add_sdist(SdistSpec("homemade", "1.0", str(tmp_path / "built.marker")))
        yield server, index


@pytest.fixture
def run(lockd: LockdRunner, pypi: tuple[IndexServer, Index]) -> LockdRunner:
    return lockd_against(lockd, pypi[0])


def write_inputs(root: Path, first: str = "pandas") -> None:
    (root / "requirements.in").write_text(
        f"{first}\nrequests[socks]\n-r extra.in\n-c constraints.txt\n"
    )
    (root / "extra.in").write_text("tqdm\nanyio\nbigpkg[all]\ncyc-a\n")
    (root / "constraints.txt").write_text("numpy<3\nurllib3<2.3\n")


def lockd_metadata_requests(server: IndexServer) -> list[str]:
    """The PEP 658 metadata files lockd's own client asked for (uv asks too)."""
    return [
        path
        for path, agent in zip(server.requests, server.agents, strict=True)
        if path.endswith(".metadata") and agent.startswith("python-httpx")
    ]


def compiled(run: LockdRunner, *args: str) -> dict:  # type: ignore[type-arg]
    result = run("compile", *args, "--format", "json")
    assert result.returncode == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_via_annotations_match_uv_on_every_target(
    run: LockdRunner, pypi: tuple[IndexServer, Index], tmp_path: Path
) -> None:
    server, _ = pypi
    write_inputs(tmp_path)
    compiled(run, "requirements.in", *MATRIX)
    # lockd read every file's metadata once for all four targets (they share most wheels).
    metadata = lockd_metadata_requests(server)
    assert metadata and len(metadata) == len(set(metadata))
    for target in TARGETS:
        ours = parse_via((tmp_path / "locks" / f"{target}.requirements.txt").read_text())
        theirs = uv_annotations(["requirements.in"], tmp_path, f"{server.url}/simple", target)
        assert ours == theirs, target
    linux = parse_via((tmp_path / "locks" / f"{TARGETS[0]}.requirements.txt").read_text())
    assert "colorama" not in linux and linux["tomli"] == {"anyio"}
    assert linux["pysocks"] == {"requests"} and linux["chardet"] == {"requests"}
    assert linux["numpy"] == {"-c constraints.txt", "pandas"}
    assert linux["cyc-a"] == {"-r extra.in", "cyc-b"}
    text = (tmp_path / "locks" / f"{TARGETS[2]}.requirements.txt").read_text()
    assert "colorama==0.4.6 \\\n    --hash=sha256:" in text and "\n    # via tqdm\n" in text
    assert "    # via\n    #   -r requirements.in\n    #   bigpkg\n" in text  # requests

    # A recompile reads every file's metadata from the cache, not the index.
    before = len(metadata)
    compiled(run, "requirements.in", *MATRIX, "--refresh")
    assert len(lockd_metadata_requests(server)) == before


def test_pyproject_extras_and_groups_are_roots_with_their_source(
    run: LockdRunner, pypi: tuple[IndexServer, Index], tmp_path: Path
) -> None:
    server, _ = pypi
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "myproj"\nversion = "1"\ndependencies = ["pandas", "tqdm"]\n'
        '[project.optional-dependencies]\ntrain = ["requests[socks]", "myproj[extra2]"]\n'
        'extra2 = ["six"]\n[dependency-groups]\ndev = ["anyio", {include-group = "lint"}]\n'
        'lint = ["cyc-a"]\n'
    )
    doc = compiled(run, "pyproject.toml", "--extra", "train", "--group", "dev", *MATRIX[:4])
    assert doc["status"] == "compiled"
    manifest = json.loads((tmp_path / "locks" / "lockd.json").read_text())
    graph = manifest["locks"][0]["graph"]
    sources = {root["package"]: root["source"] for root in graph["roots"]}
    assert sources == {
        "pandas": "pyproject.toml",
        "tqdm": "pyproject.toml",
        "requests": "pyproject.toml (extra: train)",
        "six": "pyproject.toml (extra: extra2)",
        "anyio": "pyproject.toml (group: dev)",
        "cyc-a": "pyproject.toml (group: lint)",
    }
    # uv names the project for each of these; groups as pyproject.toml:<group>.
    theirs = uv_annotations(
        ["pyproject.toml"],
        tmp_path,
        f"{server.url}/simple",
        TARGETS[0],
        "--extra",
        "train",
        "--group",
        "dev",
    )
    ours = parse_via((tmp_path / "locks" / f"{TARGETS[0]}.requirements.txt").read_text())

    def as_uv(entry: str) -> str:
        if entry.startswith("pyproject.toml (group: "):
            group = entry.removeprefix("pyproject.toml (group: ").rstrip(")")
            # uv names the group --group asked for, even for what it includes
            return f"myproj (pyproject.toml:{'dev' if group == 'lint' else group})"
        return "myproj (pyproject.toml)" if entry.startswith("pyproject.toml") else entry

    assert {name: {as_uv(e) for e in entries} for name, entries in ours.items()} == theirs


def test_metadata_reads_are_retried_and_a_file_that_never_answers_fails_the_target(
    run: LockdRunner, pypi: tuple[IndexServer, Index], tmp_path: Path
) -> None:
    server, _ = pypi
    (tmp_path / "requirements.in").write_text("tqdm\nsix\n")
    seen: list[str] = []

    def first_time_only(path: str, agent: str) -> bool:
        if not agent.startswith("python-httpx") or "six" not in path:
            return False  # uv, and other files, are served
        seen.append(path)
        return len(seen) == 1

    server.refuse = first_time_only
    compiled(run, "requirements.in", *MATRIX[:4])
    assert seen[0].endswith("six-1.16.0-py3-none-any.whl.metadata") and len(seen) > 1

    server.refuse = lambda path, agent: agent.startswith("python-httpx") and "tqdm" in path
    # (a fresh home: the first compile cached tqdm's metadata)
    fresh = {"LOCKD_HOME": str(tmp_path / "fresh-home")}
    failed = run("compile", "requirements.in", *MATRIX[:4], "--refresh", env=fresh)
    assert failed.returncode == 3, failed.output
    assert "Cannot read the requirements of 'tqdm-4.67.1-py3-none-any.whl'" in failed.stderr
    assert "tried 3 times" in failed.stderr and "Traceback" not in failed.output


def test_why_shows_every_path_with_its_requirements(run: LockdRunner, tmp_path: Path) -> None:
    write_inputs(tmp_path)
    lockset = compiled(run, "requirements.in", *MATRIX)["lockset"]
    table = run("why", "idna")
    assert table.returncode == 0, table.output
    assert "-r extra.in > anyio > idna>=2.8" in table.stdout
    assert "-r requirements.in > requests[socks] > idna<4,>=2.5" in table.stdout
    assert (
        '-r extra.in > bigpkg[all] > requests[use-chardet-on-py3]; extra == "net" > idna<4,>=2.5'
        in table.stdout
    )

    answer = json.loads(run("why", "colorama", "--format", "json").stdout)
    assert [t["target"] for t in answer["targets"]] == list(TARGETS[2:])
    assert answer["not_in"] == list(TARGETS[:2])
    (path,) = answer["targets"][0]["paths"]
    assert path == {
        "source": "-r extra.in",
        "hops": [
            {"package": "tqdm", "requirement": "tqdm"},
            {"package": "colorama", "requirement": 'colorama; platform_system == "Windows"'},
        ],
    }
    # A cycle ends where it closes; the cap says how many paths it left out.
    cyc = json.loads(run("why", "CYC_B", "--target", TARGETS[0], "--format", "json").stdout)
    assert cyc["package"] == "cyc-b"
    assert [[h["package"] for h in p["hops"]] for p in cyc["targets"][0]["paths"]] == [
        ["cyc-a", "cyc-b"]
    ]
    capped = run("why", "idna", "--limit", "1", "--target", TARGETS[0])
    assert "… and 2 more (--limit to show more)" in capped.stdout

    (tmp_path / "locks" / "lockd.json").unlink()  # --lockset reads the record, not the folder
    named = json.loads(run("why", "idna", "--lockset", lockset[:12], "--format", "json").stdout)
    assert named["lockset"] == lockset and len(named["targets"]) == len(TARGETS)
    other = run("why", "idna", "--lockset", lockset[:12], "--project", "someone-else")
    assert other.returncode == 2 and "belongs to project" in other.stderr
    unknown = run("why", "idna", "--lockset", "0" * 12)
    assert unknown.returncode == 2 and "Traceback" not in unknown.output

    missing = run("why", "flask", "--lockset", lockset)
    assert missing.returncode == 2 and "'flask' is not in any lock" in missing.stderr
    wrong = run("why", "idna", "--target", "linux-aarch64-py311-cpu")
    assert wrong.returncode == 2 and "Its targets:" in wrong.stderr
    assert "Traceback" not in missing.output + wrong.output


def test_why_on_a_lockset_recorded_before_graphs(run: LockdRunner, tmp_path: Path) -> None:
    old = one_lock(None)
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "lockd.json").write_bytes(render_manifest(old))
    result = run("why", "numpy")
    assert result.returncode == 2, result.output
    assert "recorded without a dependency graph" in result.stderr
    assert "lockd compile --refresh" in result.stderr


def test_compile_and_diff_say_why_a_pin_moved(
    run: LockdRunner, pypi: tuple[IndexServer, Index], tmp_path: Path
) -> None:
    _, index = pypi
    write_inputs(tmp_path)
    first = compiled(run, "requirements.in", *MATRIX[:4])["lockset"]
    index.add(W("numpy", "2.2.0"))
    index.add(W("pandas", "2.3.0", requires=("numpy>=2.2", "python-dateutil>=2.8.2")))
    write_inputs(tmp_path, first="pandas>=2.3")
    moved = run("compile", "requirements.in", *MATRIX[:4])
    assert moved.returncode == 0, moved.output
    assert (
        "numpy 2.1.0 -> 2.2.0 (required by pandas>=2.3 via -r requirements.in; "
        "input changed: pandas -> pandas>=2.3)" in moved.stdout
    )
    second = json.loads(run("history", "--format", "json").stdout)[0]["hash"]
    diff = json.loads(run("diff", first, second, "--format", "json").stdout)
    assert diff["inputs"] == [{"name": "pandas", "from": ["pandas"], "to": ["pandas>=2.3"]}]
    upgraded = {u["name"]: u for u in diff["targets"][TARGETS[0]]["upgraded"]}
    why = upgraded["numpy"]["why"]
    assert why["inputs_changed"] == ["pandas"]
    assert {"package": "pandas", "requirement": "numpy>=2.2"} in why["required_by"]
    assert {"source": "-c constraints.txt", "requirement": "numpy<3"} in why["required_by"]
    assert [h["package"] for h in why["path"]["hops"]] == ["pandas", "numpy"]
    table = run("diff", first, second)
    assert "required by pandas>=2.3 via -r requirements.in" in table.stdout
    assert "pandas -> pandas>=2.3" in table.stdout


def test_sbom_and_audit_carry_the_package_edges(run: LockdRunner, tmp_path: Path) -> None:
    write_inputs(tmp_path)
    lockset = compiled(run, "requirements.in", *MATRIX)["lockset"]
    sbom = run("audit", "--format", "cyclonedx", "--lockset", lockset[:12])
    assert sbom.returncode == 0, sbom.output
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom.stdout) is None
    bom = json.loads(sbom.stdout)
    components = {c["bom-ref"]: c for c in bom["components"]}
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in bom["dependencies"]}

    def named(refs: set[str]) -> set[str]:
        return {components[r]["name"] for r in refs}

    targets = {c["name"]: ref for ref, c in components.items() if c["type"] == "application"}
    assert named(deps[targets[TARGETS[0]]]) == {
        "pandas",
        "requests",
        "tqdm",
        "anyio",
        "bigpkg",
        "cyc-a",
    }
    # Walking down from a target reaches exactly what it installs.
    for target, ref in targets.items():
        seen, stack = set(), [ref]
        while stack:
            for child in deps.get(stack.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        manifest = json.loads((tmp_path / "locks" / "lockd.json").read_text())
        (own,) = [x for x in manifest["locks"] if x["target"] == target]
        assert named(seen) == {a["name"] for a in own["artifacts"]}, target
    # tqdm's one wheel is one component on Linux (no dependencies) and another on
    # Windows (colorama below it); six, with nothing below, is shared by every target.
    assert sorted(len(deps[r]) for r, c in components.items() if c["name"] == "tqdm") == [0, 1]
    assert len([c for c in components.values() if c["name"] == "six"]) == 1
    compositions = {c["aggregate"]: c["dependencies"] for c in bom["compositions"]}
    assert set(compositions) == {"complete"}
    root = {p["name"]: p["value"] for p in bom["metadata"]["component"]["properties"]}
    assert root["lockd:dependency-graph"] == "packages"

    audit = json.loads(run("audit", "--format", "json").stdout)
    (recorded,) = audit["projects"][0]["locksets"]
    assert recorded["locks"][0]["graph"]["format"] == "lockd.graph/1"


def test_an_sdist_whose_requirements_need_a_build_is_unknown(
    run: LockdRunner, tmp_path: Path
) -> None:
    (tmp_path / "requirements.in").write_text("homemade\nsix\n")
    matrix = ("--cuda", "cpu", "--platform", "linux-x86_64", "--python", HOST_PY)
    compiled(run, "requirements.in", *matrix, "--allow-build", "homemade")
    manifest = json.loads((tmp_path / "locks" / "lockd.json").read_text())
    assert manifest["locks"][0]["graph"]["unknown"] == ["homemade"]
    why = run("why", "homemade")
    assert "requirements not read (sdists): homemade" in why.stdout
    sbom = json.loads(run("audit", "--format", "cyclonedx").stdout)
    aggregates = {c["aggregate"]: len(c["dependencies"]) for c in sbom["compositions"]}
    assert aggregates == {"complete": 1, "unknown": 1}


def _pypi_reachable() -> bool:
    import httpx

    try:
        return httpx.head("https://pypi.org/simple/pip/", timeout=5).status_code < 500
    except httpx.HTTPError:
        return False


@pytest.mark.network
def test_a_real_pypi_set_matches_uv_annotations(lockd: LockdRunner, tmp_path: Path) -> None:
    """Real metadata (markers on python_version, platform_system, extras) from PyPI."""
    if not _pypi_reachable():
        pytest.skip("PyPI is not reachable")
    pypi = "https://pypi.org/simple"
    (tmp_path / "requirements.in").write_text(
        "pandas==2.2.3\nrequests[socks]==2.32.3\nhttpx[http2]==0.28.1\nrich==13.9.4\n"
        "tqdm==4.67.1\nanyio==4.6.2\n"
    )
    cutoff = "2025-01-15T00:00:00Z"
    result = lockd(
        "compile",
        "requirements.in",
        "--cuda",
        "cpu",
        "--platform",
        "linux-x86_64",
        "--platform",
        "windows-x86_64",
        "--platform",
        "macos-arm64",
        "--python",
        "3.11",
        "--exclude-newer",
        cutoff,
        env={"LOCKD_INDEX_URL": pypi},
    )
    assert result.returncode == 0, result.output
    for target in ("linux-x86_64-py311-cpu", "windows-x86_64-py311-cpu", "macos-arm64-py311-cpu"):
        ours = parse_via((tmp_path / "locks" / f"{target}.requirements.txt").read_text())
        theirs = uv_annotations(
            ["requirements.in"], tmp_path, pypi, target, "--exclude-newer", cutoff
        )
        assert ours == theirs, target
        assert len(ours) > 15

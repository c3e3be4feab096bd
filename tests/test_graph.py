"""The dependency graph as data: building it from metadata, reading paths, explaining moves."""

from __future__ import annotations

import itertools
import json
import tomllib
from dataclasses import replace

import pytest
import tomli_w
from packaging.pylock import Pylock

from lockd.errors import FormatError
from lockd.graph import (
    GRAPH_FORMAT,
    DirectInput,
    Edge,
    Graph,
    Root,
    conda_graph,
    explain_moves,
    input_changes,
    paths_to,
    pip_graph,
    reason,
    via,
)
from lockd.graph import paths as paths_module
from lockd.lockfiles.pylock import render_pylock
from lockd.lockfiles.requirements import render_requirements, via_comment
from lockd.lockset import Artifact, Lock, Lockset, Provenance, diff_locksets
from lockd.resolvers.rattler import spec_name
from lockd.routing import IndexPlan
from lockd.targets import parse_target_id

LINUX = parse_target_id("linux-x86_64-py311-cpu").marker_environment()
WINDOWS = parse_target_id("windows-x86_64-py312-cpu").marker_environment()
REQ = "-r requirements.in"


def test_extras_markers_and_self_references_reach_a_fixpoint() -> None:
    requires = {
        "requests": ["idna>=2.5", 'PySocks>=1.5.6; extra == "socks"', 'chardet; extra == "cd"'],
        "idna": [],
        "pysocks": [],
        "chardet": [],
        # all -> fast,net (a self-reference); net -> requests[cd]; fast only on Windows
        "bigpkg": [
            'bigpkg[fast,net]; extra == "all"',
            'six; extra == "fast" and platform_system == "Windows"',
            'requests[cd]; extra == "net"',
        ],
        "six": [],
        "tqdm": ['colorama; platform_system == "Windows"', "not a requirement ((("],
        "colorama": [],
        "anyio": ['tomli; python_version < "3.12"', "exceptiongroup; python_version < '3.11'"],
        "tomli": [],
    }
    inputs = [
        DirectInput("requests[socks]", REQ),
        DirectInput("bigpkg[all]", REQ),
        DirectInput("tqdm", REQ),
        DirectInput("anyio", "pyproject.toml (group: dev)"),
        DirectInput("idna<4", "-c constraints.txt", constraint=True),
        DirectInput('pywin32; sys_platform == "win32"', REQ),  # not locked, and not Linux
    ]
    linux = pip_graph(requires, inputs, LINUX)
    edges = {(e.parent, e.child, e.extra) for e in linux.edges}
    assert edges == {
        ("requests", "idna", None),
        ("requests", "pysocks", "socks"),
        ("requests", "chardet", "cd"),  # requested by bigpkg's net extra, turned on by all
        ("bigpkg", "requests", "net"),
        ("anyio", "tomli", None),  # python 3.11
    }
    assert Root("idna", "idna<4", "-c constraints.txt", constraint=True) in linux.roots
    assert {r.package for r in linux.roots if not r.constraint} == {
        "requests",
        "bigpkg",
        "tqdm",
        "anyio",
    }
    windows = {(e.parent, e.child) for e in pip_graph(requires, inputs, WINDOWS).edges}
    assert {("tqdm", "colorama"), ("bigpkg", "six")} <= windows
    assert ("anyio", "tomli") not in windows  # python 3.12
    assert linux.unknown == ()


def test_unreadable_requirements_are_unknown_not_empty() -> None:
    graph = pip_graph({"app": ["lib"], "lib": None}, [DirectInput("app", REQ)], LINUX)
    assert graph.unknown == ("lib",)
    assert graph.edges == (Edge("app", "lib", "lib"),)


def test_conda_graph_from_depends() -> None:
    depends = {
        "pytorch": ["python >=3.11,<3.12.0a0", "libtorch 2.4.0.*", "__cuda"],
        "python": [],
        "libtorch": ["libgcc-ng >=12"],
        "libgcc-ng": [],
    }
    graph = conda_graph(depends, [DirectInput("pytorch=2.4", "environment.yml")], spec_name)
    assert graph.roots == (Root("pytorch", "pytorch=2.4", "environment.yml"),)
    assert {(e.parent, e.child) for e in graph.edges} == {
        ("pytorch", "python"),
        ("pytorch", "libtorch"),
        ("libtorch", "libgcc-ng"),
    }  # __cuda is a virtual package, never locked


def test_graph_document_round_trips_and_refuses_what_it_cannot_read() -> None:
    graph = Graph.of(
        [Root("a", "a>=1", REQ)], [Edge("a", "b", 'b; extra == "x"', "x")], unknown=["c"]
    )
    data = json.loads(json.dumps(graph.to_dict()))
    assert data["format"] == GRAPH_FORMAT
    assert Graph.from_dict(data) == graph
    with pytest.raises(FormatError, match=r"Unknown dependency graph format 'lockd\.graph/9'"):
        Graph.from_dict({**data, "format": "lockd.graph/9"})
    for bad in (
        [],
        {**data, "edges": [{"from": "a", "to": 3, "requirement": "b"}]},
        {**data, "roots": "a"},
        {**data, "roots": [{**data["roots"][0], "constraint": "yes"}]},
        {**data, "unknown": [1]},
    ):
        with pytest.raises(FormatError):
            Graph.from_dict(bad)


def one_lock(
    graph: Graph | None, version: str = "2.1.0", requirements: tuple[str, ...] = ()
) -> Lockset:
    """A lockset of one linux-x86_64-py311-cpu lock of numpy (shared with other tests)."""
    index, url = "https://pypi.org/simple", "https://files/n.whl"
    art = Artifact("numpy", version, index, url, "n.whl", "a" * 64)
    return Lockset(
        project="p",
        inputs=(),
        requirements=requirements or ("numpy",),
        targets=("linux-x86_64-py311-cpu",),
        resolver="uv",
        resolver_version="0.13.9",
        indexes={"default": "https://pypi.org/simple"},
        cutoff="2026-01-01T00:00:00Z",
        input_key="k",
        provenance=Provenance("u", "h", "2026-01-01T00:00:00Z"),
        locks=(Lock("linux-x86_64-py311-cpu", (art,), files={}, flavour="cpu", graph=graph),),
    )


def test_locksets_without_a_graph_hash_exactly_as_before() -> None:
    old = one_lock(None)
    # The hash lockd computed for this lockset before graphs existed (main at e3f15bf).
    assert old.hash == "8f53683a8497e5706dac9b410f26a0e81859629495d195f23622be5eeea6b8de"
    assert "graph" not in old.body()["locks"][0]
    assert Lockset.from_dict(old.to_dict()) == old
    with_graph = one_lock(Graph.of([Root("numpy", "numpy", REQ)], []))
    assert with_graph.body()["locks"][0]["graph"]["format"] == GRAPH_FORMAT
    assert Lockset.from_dict(with_graph.to_dict()) == with_graph
    tampered = with_graph.to_dict()
    tampered["locks"][0]["graph"]["roots"][0]["source"] = "-r other.in"
    with pytest.raises(FormatError, match="does not match its content hash"):
        Lockset.from_dict(tampered)


def _chain(length: int, fan: int) -> Graph:
    """``fan`` parallel packages between each level: fan**length paths to the bottom."""
    edges = []
    levels = [[f"l{level}-{i}" for i in range(fan)] for level in range(length)]
    for upper, lower in itertools.pairwise(levels):
        edges += [Edge(a, b, b) for a in upper for b in lower]
    edges += [Edge(a, "bottom", "bottom") for a in levels[-1]]
    return Graph.of([Root(name, name, REQ) for name in levels[0]], edges)


def test_paths_handle_cycles_and_say_how_many_were_left_out() -> None:
    cyclic = Graph.of(
        [Root("a", "a", REQ), Root("c", "c>=1", "pyproject.toml")],
        [Edge("a", "b", "b"), Edge("b", "a", "a>=1"), Edge("b", "c", "c"), Edge("c", "a", "a")],
    )
    found = paths_to(cyclic, "a")
    assert [p.describe() for p in found.shown] == [
        "-r requirements.in > a",
        "pyproject.toml > c>=1 > a",
    ]
    assert found.total == 2 and found.complete and found.left_out == 0
    assert [p.describe() for p in paths_to(cyclic, "c").shown] == [
        "pyproject.toml > c>=1",
        "-r requirements.in > a > b > c",
    ]
    many = paths_to(_chain(4, 3), "bottom", limit=5)
    assert (len(many.shown), many.total, many.left_out, many.complete) == (5, 81, 76, True)
    assert many.to_dict()["left_out"] == 76


def test_path_counting_stops_at_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths_module, "MAX_COUNTED", 50)
    capped = paths_to(_chain(4, 3), "bottom", limit=5)
    assert not capped.complete and capped.total >= 50
    assert capped.to_dict()["total_is_exact"] is False


def test_via_lists_inputs_then_requiring_packages() -> None:
    graph = Graph.of(
        [Root("numpy", "numpy<3", "-c constraints.txt", True), Root("numpy", "numpy", REQ)],
        [Edge("pandas", "numpy", "numpy>=1.26"), Edge("astropy", "numpy", "numpy")],
    )
    assert via(graph, "numpy") == ["-c constraints.txt", REQ, "astropy", "pandas"]
    assert via_comment(["pandas"]) == ["    # via pandas"]
    assert via_comment(["-r a.in", "b"]) == ["    # via", "    #   -r a.in", "    #   b"]
    # a name from an input cannot end the comment line and become a pip option
    assert via_comment(["pyproject.toml (extra: x\n-i http://evil)", "\u2028y"]) == [
        "    # via",
        "    #   pyproject.toml (extra: x?-i http://evil)",
        "    #   ?y",
    ]


def test_requirements_and_pylock_carry_the_graph() -> None:
    arts = tuple(
        Artifact(n, v, "https://pypi.org/simple", f"https://f/{f}", f, c * 64, kind)
        for n, v, c, f, kind in (
            ("numpy", "2.2.0", "a", "numpy-2.2.0-py3-none-any.whl", "wheel"),
            ("pandas", "2.3.0", "b", "pandas-2.3.0-py3-none-any.whl", "wheel"),
            ("odd", "1", "c", "odd-1.tar.gz", "sdist"),
        )
    )
    graph = Graph.of(
        [Root("pandas", "pandas>=2.3", REQ)],
        [Edge("pandas", "numpy", "numpy>=2.2")],
        unknown=["odd"],
    )
    lock = Lock("linux-x86_64-py311-cpu", arts, graph=graph)
    plan = IndexPlan("https://pypi.org/simple", None, frozenset())
    text = render_requirements(lock, plan, header="h")
    assert "numpy==2.2.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via pandas\n" in text
    assert "    # via -r requirements.in\n" in text
    document = render_pylock(lock, requires_python="==3.11.*")
    Pylock.from_dict(tomllib.loads(tomli_w.dumps(document)))  # PEP 751, as packaging reads it
    entries = {p["name"]: p for p in document["packages"]}
    assert entries["pandas"]["dependencies"] == [{"name": "numpy"}]
    assert entries["numpy"]["dependencies"] == []
    assert "dependencies" not in entries["odd"]  # unknown, not "none"
    old = Lock("linux-x86_64-py311-cpu", arts)
    assert "# via" not in render_requirements(old, plan, header="h")
    assert all("dependencies" not in p for p in render_pylock(old, requires_python="")["packages"])


def test_moves_are_explained_by_the_path_and_the_changed_inputs() -> None:
    changes = input_changes(["pandas", "numpy<3", "tqdm"], ["pandas>=2.3", "numpy<3", "rich"])
    assert {n: c.describe() for n, c in changes.items()} == {
        "pandas": "pandas -> pandas>=2.3",
        "rich": "rich added",
        "tqdm": "tqdm removed",
    }
    graph = Graph.of(
        [Root("pandas", "pandas>=2.3", REQ), Root("numpy", "numpy<3", "-c c.txt", True)],
        [Edge("pandas", "numpy", "numpy>=2.2"), Edge("pandas", "tz", "tz")],
    )
    numpy = reason(graph, "numpy", changes)
    assert numpy.describe() == (
        "required by pandas>=2.3 via -r requirements.in; input changed: pandas -> pandas>=2.3"
    )
    assert numpy.to_dict()["required_by"] == [
        {"source": "-c c.txt", "requirement": "numpy<3"},
        {"package": "pandas", "requirement": "numpy>=2.2"},
    ]
    assert reason(graph, "pandas", {}).describe() == "pandas>=2.3 in -r requirements.in"
    entry = {
        "upgraded": [{"name": "numpy", "from": "2.1.0", "to": "2.2.0"}],
        "downgraded": [],
        "added": [],
        "removed": [{"name": "tz", "version": "1"}],
    }
    explained = explain_moves(entry, graph, Graph.of([], []), changes)
    assert explained["removed"][0]["why"]["reason"].startswith("required by pandas>=2.3")
    assert explained["upgraded"][0]["why"]["reason"] == "no path from the direct inputs is recorded"
    assert explain_moves(entry, None, None, changes) == entry  # older locks explain nothing


def test_diff_of_two_locksets_names_the_input_that_moved_a_pin() -> None:
    before = one_lock(Graph.of([Root("numpy", "numpy", REQ)], []))
    after = one_lock(
        Graph.of([Root("numpy", "numpy>=2.2", REQ)], []), "2.2.0", requirements=("numpy>=2.2",)
    )
    diff = diff_locksets(before, after)
    (moved,) = diff["targets"]["linux-x86_64-py311-cpu"]["upgraded"]
    assert moved["why"]["reason"] == (
        "numpy>=2.2 in -r requirements.in; input changed: numpy -> numpy>=2.2"
    )
    assert diff["inputs"] == [{"name": "numpy", "from": ["numpy"], "to": ["numpy>=2.2"]}]
    # Older locksets: the same diff as before, plus the input changes.
    old = diff_locksets(one_lock(None), one_lock(None, "2.2.0", ("numpy>=2.2",)))
    assert "why" not in old["targets"]["linux-x86_64-py311-cpu"]["upgraded"][0]


def test_diff_reads_recorded_constraints_of_any_shape() -> None:
    odd = replace(one_lock(None), extra={"constraints": 5})
    assert diff_locksets(odd, one_lock(None))["inputs"] == []
    listed = replace(one_lock(None), extra={"constraints": ["numpy<3", 7]})
    assert diff_locksets(one_lock(None), listed)["inputs"] == [
        {"name": "numpy", "from": ["numpy"], "to": ["numpy", "numpy<3"]}
    ]

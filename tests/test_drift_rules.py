"""The pure drift rules: for every finding kind, drift is found and a clean state is silent."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lockd.drift import (
    KINDS,
    CheckError,
    DriftReport,
    Finding,
    check_artifacts,
    compare_base_image,
    compare_image,
    compare_offered,
    compare_resolution,
    compare_snapshot,
    driver_findings,
)
from lockd.lockset import Artifact, Lock, Offered
from lockd.snapshot import Snapshot
from lockd.targets import parse_target_id

TARGET = parse_target_id("linux-x86_64-py311-cu124")
CPU_TARGET = parse_target_id("linux-x86_64-py311-cpu")
VARIANT = "https://mirror.example/whl/cu124"
PYPI = "https://pypi.example/simple"
TORCH_URL = f"{VARIANT}/torch-2.6.0%2Bcu124-cp311-cp311-manylinux_2_28_x86_64.whl"

LOCK = Lock(
    TARGET.id,
    (
        Artifact("numpy", "2.1.0", PYPI, "https://files/numpy.whl", "numpy-2.1.0.whl", "a" * 64),
        Artifact("torch", "2.6.0+cu124", VARIANT, TORCH_URL, "torch-2.6.0+cu124.whl", "b" * 64),
    ),
    flavour="cuda 12.4",
)


def _probe(value: Any) -> dict[str, Any]:
    return {"status": "available", "value": value}


def _dist(
    name: str, version: str, record: str = "r" * 64, direct_url: Any = None
) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "installer": "uv",
        "direct_url": direct_url,
        "record_sha256": record,
        "location": "/venv/lib/python3.11/site-packages",
        "metadata_dir": f"{name}-{version}.dist-info",
    }


BASE: dict[str, Any] = {
    "version": "lockd.snapshot/1",
    "taken_at": "2026-11-25T00:00:00Z",
    "lockd_version": "0.1.0",
    "python": {
        "executable": "/venv/bin/python",
        "version": "3.11.7",
        "implementation": "cpython",
        "implementation_version": "3.11.7",
        "prefix": "/venv",
        "base_prefix": "/usr",
        "platform": "linux-x86_64",
        "machine": "x86_64",
        "soabi": "cpython-311-x86_64-linux-gnu",
        "pointer_bits": 64,
        "site_packages": ["/venv/lib/python3.11/site-packages"],
        "sys_path": ["/venv/lib/python3.11/site-packages"],
    },
    "dists": [
        _dist("numpy", "2.1.0"),
        _dist(
            "torch",
            "2.6.0+cu124",
            direct_url={"url": TORCH_URL, "archive_info": {"hashes": {"sha256": "b" * 64}}},
        ),
    ],
    "shadowed": [],
    "torch": _probe(
        {
            "kind": "cuda",
            "cuda": "12.4",
            "evidence": ["torch/version.py: cuda = '12.4'"],
            "dist_version": "2.6.0+cu124",
            "module_version": "2.6.0+cu124",
            "hip": None,
        }
    ),
    "system": _probe(
        {
            "os_release": _probe({"ID": "debian", "VERSION_ID": "12"}),
            "glibc": _probe("2.36"),
            "dpkg": _probe([["libc6", "2.36-9", "amd64"], ["libgl1", "1.6.0-1", "amd64"]]),
            "rpm": _probe([["glibc", "2.34-100.el9", "i686"], ["glibc", "2.34-100.el9", "x86_64"]]),
            "ld_cache": _probe([["libc.so.6", "libc6,x86-64", "/lib/x86_64-linux-gnu/libc.so.6"]]),
            "driver": _probe({"version": "550.54.14", "source": "/sys/module/nvidia/version"}),
            "cuda": {"status": "unavailable", "reason": "no toolkit"},
            "libraries": _probe(
                {"roots": [], "scanned": 3, "unresolved": [], "system": {}, "skipped": []}
            ),
        }
    ),
}


def snap(edit: Any = None) -> Snapshot:
    data = copy.deepcopy(BASE)
    if edit:
        edit(data)
    return Snapshot.from_dict(data)


def kinds(findings: list[Any]) -> set[tuple[str, str | None]]:
    return {(f.kind, f.package) for f in findings}


def test_clean_environment_is_silent() -> None:
    assert compare_snapshot(LOCK, TARGET, snap(), baseline=snap()) == []
    assert driver_findings(LOCK, TARGET, "550.54.14") == []


def _set_dist(data: dict[str, Any], name: str, **changes: Any) -> None:
    for dist in data["dists"]:
        if dist["name"] == name:
            dist.update(changes)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["dists"].pop(0), ("missing", "numpy")),
        (lambda d: _set_dist(d, "numpy", version="2.0.0"), ("version-changed", "numpy")),
        (lambda d: d["dists"].append(_dist("leftpad", "1.0")), ("unexpected", "leftpad")),
        (lambda d: _set_dist(d, "numpy", record_sha256="s" * 64), ("hash-mismatch", "numpy")),
        (
            lambda d: _set_dist(
                d,
                "torch",
                direct_url={"url": TORCH_URL, "archive_info": {"hash": "sha256=" + "c" * 64}},
            ),
            ("hash-mismatch", "torch"),
        ),
        (
            lambda d: _set_dist(d, "torch", direct_url={"url": "https://evil.example/torch.whl"}),
            ("wrong-index", "torch"),
        ),
        (lambda d: d["torch"]["value"].update(kind="cpu", cuda=None), ("cpu-wheel", "torch")),
        (lambda d: d["torch"]["value"].update(cuda="12.1"), ("cuda-mismatch", "torch")),
        (lambda d: d["python"].update(version="3.12.1"), ("python-mismatch", None)),
        (lambda d: d["system"]["value"]["glibc"].update(value="2.35"), ("system-changed", "glibc")),
        (
            lambda d: d["system"]["value"]["dpkg"]["value"].pop(),
            ("system-changed", "deb:libgl1"),
        ),
        (
            lambda d: d["system"]["value"]["rpm"]["value"][0].__setitem__(1, "2.34-101.el9"),
            ("system-changed", "rpm:glibc.i686"),
        ),
        (
            lambda d: d["system"]["value"]["libraries"]["value"]["unresolved"].append(
                {"soname": "libGL.so.1", "status": "missing", "needed_by": ["cv2/cv2.so"]}
            ),
            ("system-lib-missing", "libGL.so.1"),
        ),
    ],
)
def test_live_drift_is_found(edit: Any, expected: tuple[str, str | None]) -> None:
    assert expected in kinds(compare_snapshot(LOCK, TARGET, snap(edit), baseline=snap()))


def test_driver_libraries_are_not_missing_libraries() -> None:
    def driver_lib(d: dict[str, Any]) -> None:
        d["system"]["value"]["libraries"]["value"]["unresolved"].append(
            {
                "soname": "libcuda.so.1",
                "status": "driver",
                "needed_by": ["torch/lib/libtorch_cuda.so"],
            }
        )

    assert compare_snapshot(LOCK, TARGET, snap(driver_lib), baseline=snap()) == []


def test_libraries_only_plugins_need_are_information_not_drift() -> None:
    def plugins(d: dict[str, Any]) -> None:
        d["system"]["value"]["libraries"]["value"]["unresolved"] += [
            {
                "soname": "libmlx5.so.1",
                "status": "plugin",
                "needed_by": [
                    "nvidia/cu13/lib/libcufile_rdma.so.1",
                    "nvidia/nvshmem/lib/nvshmem_transport_ibgda.so.3",
                ],
            },
            {
                "soname": "libucp.so.0",
                "status": "plugin",
                "needed_by": ["nvidia/nvshmem/lib/nvshmem_transport_ucx.so.3"],
            },
        ]

    found = compare_snapshot(LOCK, TARGET, snap(plugins), baseline=snap())
    assert [(f.kind, f.package, f.severity) for f in found] == [
        ("system-lib-missing", "libmlx5.so.1", "info"),
        ("system-lib-missing", "libucp.so.0", "info"),
    ]
    assert found[1].detail == (
        "plugin nvidia/nvshmem/lib/nvshmem_transport_ucx.so.3 would need it; no import loads them"
    )
    assert "plugins nvidia/cu13/lib/libcufile_rdma.so.1, " in found[0].detail
    report = DriftReport("p", "h", "2026-01-01T00:00:00Z", tuple(found))
    assert report.status == "clean"  # told, never drift
    assert DriftReport("p", "h", "now", (), (CheckError(None, "x", "y"),)).status == "error"
    missing = Finding("system-lib-missing", TARGET.id, "libGL.so.1", "resolvable", "not found")
    assert DriftReport("p", "h", "now", (*found, missing)).status == "drift"


def test_cuda_torch_on_a_cpu_target_and_tooling_is_ignored() -> None:
    cpu_lock = Lock(CPU_TARGET.id, LOCK.artifacts, flavour="cpu")
    found = compare_snapshot(
        cpu_lock, CPU_TARGET, snap(lambda d: d["dists"].append(_dist("pip", "24.0")))
    )
    assert kinds(found) == {("cuda-mismatch", "torch")}


def test_driver_too_old() -> None:
    assert kinds(driver_findings(LOCK, TARGET, "470.57.02")) == {
        ("driver-too-old", "nvidia-driver")
    }
    cu13 = Lock(TARGET.id, LOCK.artifacts, flavour="cuda 13.0")
    assert kinds(driver_findings(cu13, TARGET, "550.54.14")) == {
        ("driver-too-old", "nvidia-driver")
    }
    assert driver_findings(LOCK, CPU_TARGET, "470.57.02") == []


def test_version_creep_separates_new_releases_from_rewritten_history() -> None:
    assert compare_resolution(LOCK, LOCK.packages(), None) == []
    newer = {**LOCK.packages(), "numpy": "2.2.0"}
    [finding] = compare_resolution(LOCK, newer, LOCK.packages())
    assert (finding.kind, finding.expected, finding.actual) == ("version-creep", "2.1.0", "2.2.0")
    assert "newer" in finding.detail
    rewritten = {**LOCK.packages(), "numpy": "2.0.0"}
    [changed] = compare_resolution(LOCK, rewritten, rewritten)
    assert "before the cut-off" in changed.detail
    # Moved at the cut-off, but the lock's own pins as preferences reproduce it: a kept pin.
    [kept] = compare_resolution(LOCK, newer, newer, kept_at_cutoff=LOCK.packages())
    assert "the lock keeps an older pin" in kept.detail
    [gone] = compare_resolution(LOCK, rewritten, rewritten, kept_at_cutoff=rewritten)
    assert gone.detail == "upstream changed what was published before the cut-off"
    [conda] = compare_resolution(LOCK, newer, None, cutoff_known=False)
    assert conda.detail == "a resolution today picks another version"


def test_offered_files_gone_changed_and_new_versions() -> None:
    offered = Offered("torch", VARIANT, ("2.6.0+cu124",), {"torch-2.6.0+cu124.whl": "b" * 64})
    assert (
        compare_offered(TARGET.id, offered, {"torch-2.6.0+cu124.whl": "b" * 64}, ["2.6.0+cu124"])
        == []
    )
    gone = compare_offered(TARGET.id, offered, {}, ["2.6.0+cu124"])
    assert kinds(gone) == {("artifact-gone", "torch")}
    changed = compare_offered(
        TARGET.id, offered, {"torch-2.6.0+cu124.whl": "c" * 64}, ["2.6.0+cu124"]
    )
    assert kinds(changed) == {("artifact-changed", "torch")}
    newer = compare_offered(
        TARGET.id, offered, {"torch-2.6.0+cu124.whl": "b" * 64}, ["2.6.0+cu124", "2.7.0+cu124"]
    )
    assert kinds(newer) == {("version-creep", "torch")}


def test_served_artifacts() -> None:
    served = {"numpy": {"numpy-2.1.0.whl": "a" * 64}, "torch": {"torch-2.6.0+cu124.whl": None}}
    assert check_artifacts(LOCK, served) == []  # listed without a hash: not evidence of change
    assert kinds(check_artifacts(LOCK, {**served, "numpy": {}})) == {("artifact-gone", "numpy")}
    changed = {**served, "numpy": {"numpy-2.1.0.whl": "f" * 64}}
    assert kinds(check_artifacts(LOCK, changed)) == {("artifact-changed", "numpy")}


def test_images() -> None:
    assert compare_image("python:3.11-slim", "sha256:aa", "sha256:aa") == []
    [moved] = compare_image("python:3.11-slim", "sha256:aa", "sha256:bb")
    assert (moved.kind, moved.expected, moved.actual) == ("image-moved", "sha256:aa", "sha256:bb")
    [gone] = compare_image("python:3.11-slim", "sha256:aa", None)
    assert gone.kind == "image-gone"


def test_every_kind_is_covered_here() -> None:
    # the parametrized cases above, plus the dedicated tests, reach every kind of the contract
    covered = {
        "missing",
        "version-changed",
        "unexpected",
        "hash-mismatch",
        "wrong-index",
        "cpu-wheel",
        "cuda-mismatch",
        "python-mismatch",
        "system-changed",
        "system-lib-missing",
        "driver-too-old",
        "version-creep",
        "artifact-gone",
        "artifact-changed",
        "image-moved",
        "image-gone",
        "base-image-mismatch",
    }
    assert covered == set(KINDS)


def test_an_image_must_start_with_the_layers_of_a_recorded_base() -> None:
    bases = {"python:3.11-slim@sha256:b": ("l1", "l2"), "other@sha256:o": ("x1",)}
    assert compare_base_image("t", ("l1", "l2", "app"), bases) == []
    assert compare_base_image("t", ("x1", "app"), bases) == []
    assert compare_base_image("t", ("l1", "moved", "app"), {}) == []  # nothing recorded
    (finding,) = compare_base_image("t", ("l1", "moved", "app"), bases)
    assert (finding.kind, finding.target, finding.severity) == ("base-image-mismatch", "t", "error")
    assert finding.expected == "other@sha256:o or python:3.11-slim@sha256:b"
    assert finding.actual == "1 of 2 base layers"
    assert "python:3.11-slim@sha256:b (only the first 1 match)" in finding.detail


def test_progress_is_a_line_per_step_or_a_status_line_on_a_terminal() -> None:
    import io

    from lockd.app.drift import DriftStep
    from lockd.report.drift import drift_progress

    log = io.StringIO()
    with drift_progress(log) as progress:
        progress(DriftStep("ml", "linux-x86_64-py311-cu124", "install", "Downloading torch (1GiB)"))
        progress(DriftStep("ml", None, "images", "1 base image tag(s)"))
    assert log.getvalue() == (
        "lockd drift: ml linux-x86_64-py311-cu124: install: Downloading torch (1GiB)\n"
        "lockd drift: ml: images: 1 base image tag(s)\n"
    )

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    with drift_progress(terminal) as progress:
        progress(DriftStep("ml", "t", "install", "Downloading [bold]torch[/]"))  # not markup
    assert "checking drift: ml t: install: Downloading [bold]torch[/]" in terminal.getvalue()


def test_markdown_escapes_recorded_values_as_the_audit_does() -> None:
    import re

    from lockd.report.drift import drift_markdown

    hostile = "<script>alert(1)</script> | *bold* `tick`"
    report = DriftReport(
        "<img src=x onerror=alert(1)>",
        "h" * 64,
        "2026-01-01T00:00:00Z",
        (Finding("missing", TARGET.id, hostile, "1.0", None, detail=hostile),),
        (CheckError(TARGET.id, "creep", hostile),),
    )
    text = drift_markdown([report])
    assert "<script>" not in text and "<img" not in text
    assert "## &lt;img src=x onerror=alert(1)&gt; — drift" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; \\| \\*bold\\* \\`tick\\`" in text
    (row,) = [line for line in text.splitlines() if line.startswith("| missing")]
    assert len(re.findall(r"(?<!\\)\|", row)) == 8  # the hostile pipes add no cell
    assert "- could not check creep (linux-x86\\_64-py311-cu124): &lt;script&gt;" in text


def test_a_snapshot_is_compared_with_the_one_target_it_is_of() -> None:
    """`drift --snapshot` without --target: Python and platform, then torch's accelerator."""
    from lockd.app.drift.run import _snapshot_lock
    from lockd.errors import UsageError
    from lockd.lockset import Lockset, Provenance

    ids = ["linux-x86_64-py311-cu124", "linux-x86_64-py311-cpu", "linux-x86_64-py312-cu124"]
    lockset = Lockset(
        project="p", inputs=(), requirements=(), targets=tuple(ids), resolver="uv",
        resolver_version="0", indexes={}, cutoff="2026-01-01T00:00:00Z", input_key="k",
        provenance=Provenance("u", "h", "2026-01-01T00:00:00Z"),
        locks=tuple(Lock(i, ()) for i in ids),
    )  # fmt: skip
    assert _snapshot_lock(lockset, snap()).target == "linux-x86_64-py311-cu124"
    cpu = snap(lambda d: d["torch"]["value"].update(kind="cpu", cuda=None))
    assert _snapshot_lock(lockset, cpu).target == "linux-x86_64-py311-cpu"
    other = snap(lambda d: d["python"].update(version="3.10.14"))
    with pytest.raises(UsageError, match=r"No target of lockset \w+ is for Python 3\.10"):
        _snapshot_lock(lockset, other)
    no_torch = snap(lambda d: d.update(torch={"status": "unavailable", "reason": "none"}))
    with pytest.raises(UsageError, match="fits several targets") as several:
        _snapshot_lock(lockset, no_torch)
    assert "--target" in several.value.render()

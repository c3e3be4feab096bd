"""`lockd drift --image`: a shipped image checked against its lockset, end to end.

Locksets are recorded in code (as the audit tests do); images are built in
code and pushed to the real registry; the CLI runs in a subprocess.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from lockd.images import RegistryClient, RegistryOptions
from lockd.lockset import Lockset
from lockd.store import Store
from tests.conftest import Run, hermetic_env, run_lockd
from tests.support.images import Image, Layer, dist, push
from tests.support.registry import Pusher, Registry
from tests.test_audit import CPU_TARGET, CU_TARGET, lockset
from tests.test_images_inspect import ENV, SITE, base_layer, venv_layer

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (.ci/run has it)")


class World:
    def __init__(self, registry: Registry, pusher: Pusher, tmp_path: Path, repo: str) -> None:
        self.registry, self.pusher, self.tmp = registry, pusher, tmp_path
        self.repo = repo
        self.db = f"sqlite:///{tmp_path / 'lockd.db'}"
        self.env = hermetic_env(tmp_path)
        self.base = base_layer()
        push(pusher, f"{repo}-base", "12", Image([self.base], env=ENV).parts())
        with RegistryClient(RegistryOptions()) as client:
            recorded = client.resolve(registry.ref(f"{repo}-base", "12")).to_dict()
        self.lockset = _offline(
            lockset("ml-model", "2.6.0", "2026-11-01T00:00:00Z", None, images=(recorded,))
        )
        store = Store(self.db)
        store.record_lockset(self.lockset)
        store.close()

    def image(self, tag: str, *layers: Layer, labels: dict[str, str] | None = None) -> str:
        image = Image([self.base, *layers], env=ENV, labels=labels or {})
        push(self.pusher, self.repo, tag, image.parts())
        return self.registry.ref(self.repo, tag)

    def lockd(self, *args: str) -> Run:
        run = run_lockd(*args, "--db", self.db, cwd=self.tmp, env=self.env)
        assert "Traceback" not in run.output, run.output
        return run

    def drift(self, *args: str, code: int) -> dict[str, Any]:
        run = self.lockd("drift", *args, "--format", "json")
        assert run.returncode == code, run.output
        return json.loads(run.stdout)  # type: ignore[no-any-return]


DEAD_INDEX = "http://127.0.0.1:9/simple"  # nothing listens: no test reaches a real index


def _offline(recorded: Lockset) -> Lockset:
    """The audit tests' lockset with its indexes on loopback (``drift --all`` checks them)."""
    locks = tuple(
        replace(
            lock,
            artifacts=tuple(
                replace(a, index=DEAD_INDEX, url=f"{DEAD_INDEX}/{a.filename}")
                for a in lock.artifacts
            ),
        )
        for lock in recorded.locks
    )
    return replace(recorded, locks=locks, indexes={"default": DEAD_INDEX, "pytorch": DEAD_INDEX})


def kinds(report: dict[str, Any]) -> set[tuple[str, str | None]]:
    return {(f["kind"], f["package"]) for f in report["findings"]}


def test_a_clean_image_then_a_cpu_torch_and_a_swapped_wheel(
    registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    world = World(registry, pusher, tmp_path, "drift-app")
    labels = {"dev.lockd.lockset": world.lockset.hash, "dev.lockd.target": CU_TARGET}
    good = world.image("good", venv_layer(), labels=labels)

    clean = world.drift("--image", good, code=0)
    assert clean["status"] == "clean", clean
    assert clean["lockset"] == world.lockset.hash
    assert clean["image"]["target"] == CU_TARGET
    assert clean["image"]["digest"].startswith("sha256:")
    assert clean["checks"] == [f"image:{good}", "base-image"]
    assert len(list((tmp_path / "lockd-home" / "layers").iterdir())) == 2  # both layers checked

    # A later layer swaps in a CPU torch; the label is gone, --target names the target.
    cpu_layer = Layer(created_by="RUN pip install torch --index-url .../cpu")
    cpu_layer.whiteout(f"{SITE}/torch-2.6.0+cu124.dist-info")
    from tests.support.images import torch

    torch(cpu_layer, SITE, "2.6.0+cpu", None)
    cpu = world.image("cpu", venv_layer(), cpu_layer)
    drifted = world.drift("--image", cpu, "--target", CU_TARGET, code=1)
    assert {("cpu-wheel", "torch"), ("version-changed", "torch")} <= kinds(drifted)
    markdown = world.lockd("drift", "--image", cpu, "--target", CU_TARGET, "--format", "markdown")
    assert f"Image `{cpu}` (linux/amd64, `sha256:" in markdown.stdout
    table = world.lockd("drift", "--image", cpu, "--target", CU_TARGET)
    summary, note = table.stdout.splitlines()[:2]  # the note on its own plain line
    assert summary.startswith("ml-model lockset ") and "Image" not in summary
    assert note.startswith(f"Image {cpu} (linux/amd64, sha256:")
    assert note.endswith(f"for target {CU_TARGET}.") and "`" not in note
    junit = world.lockd("drift", "--image", cpu, "--target", CU_TARGET, "--format", "junit")
    cases = ET.fromstring(junit.stdout).iter("testcase")
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == {f"image:{cpu}"}

    # Same version, other files (a rebuilt wheel): caught against the last clean check.
    swapped_layer = venv_layer()
    dist(swapped_layer, SITE, "numpy", "2.1.0", {"numpy/__init__.py": b"# rebuilt\n"})
    swapped = world.image("swapped", swapped_layer, labels=labels)
    report = world.drift("--image", swapped, code=1)
    assert kinds(report) == {("hash-mismatch", "numpy")}

    ambiguous = world.lockd("drift", "--image", cpu)
    assert ambiguous.returncode == 2
    assert CU_TARGET in ambiguous.stderr and CPU_TARGET in ambiguous.stderr

    shown = json.loads(world.lockd("show", world.lockset.hash[:12], "--format", "json").stdout)
    assert [r["status"] for r in shown["drift_reports"]] == [
        "drift", "drift", "drift", "drift", "drift", "clean"
    ]  # fmt: skip
    assert shown["drift_reports"][-1]["image"]["reference"] == good
    history = json.loads(world.lockd("history", "--format", "json").stdout)
    assert history[0]["drift"] == "drift"
    audit = world.lockd("audit", "--format", "json")
    assert audit.returncode == 0, audit.output
    checks = [c for p in json.loads(audit.stdout)["projects"] for d in p["drift_reports"]
              for c in d["checks"]]  # fmt: skip
    assert f"image:{good}" in checks and f"image:{cpu}" in checks
    verify = world.lockd("audit", "verify")
    assert verify.returncode == 0, verify.output


def test_an_image_on_another_base_and_a_library_its_base_lacks(
    registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    from tests.support.images import shared_object

    world = World(registry, pusher, tmp_path, "drift-base")
    other = Image([base_layer("libz.so.1"), venv_layer()], env=ENV)
    push(pusher, "drift-base", "other", other.parts())
    report = world.drift(
        "--image", registry.ref("drift-base", "other"), "--target", CU_TARGET, code=1
    )
    (finding,) = report["findings"]
    assert finding["kind"] == "base-image-mismatch"
    assert "drift-base-base:12@sha256:" in finding["expected"]

    app = venv_layer()
    app.file(f"{SITE}/cv2/cv2.abi3.so", shared_object(needed=("libGL.so.1",)))
    missing = world.drift("--image", world.image("cv2", app), "--target", CU_TARGET, code=1)
    assert kinds(missing) == {("system-lib-missing", "libGL.so.1")}


def test_tracked_images_are_checked_by_drift_all(
    registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    world = World(registry, pusher, tmp_path, "drift-tracked")
    good = world.image("good", venv_layer())
    tracked = world.lockd("images", "track", good, "--target", CU_TARGET, "--format", "json")
    assert tracked.returncode == 0, tracked.output
    assert json.loads(tracked.stdout)["tracked"][0]["reference"] == good
    again = world.lockd("images", "track", good, "--target", CU_TARGET, "--format", "json")
    assert json.loads(again.stdout)["added"] is False
    wrong = world.lockd("images", "track", good, "--target", "linux-x86_64-py312-cu124")
    assert wrong.returncode == 2 and "has no target" in wrong.stderr
    local = world.lockd("images", "track", "oci:build/layout:v1", "--target", CPU_TARGET,
                        "--no-check", "--format", "json")  # fmt: skip
    references = [t["reference"] for t in json.loads(local.stdout)["tracked"]]
    assert f"oci:{tmp_path.resolve()}/build/layout:v1" in references  # cron runs elsewhere
    gone = registry.ref("drift-tracked", "never-pushed")
    refused = world.lockd("images", "track", gone, "--target", CPU_TARGET)
    assert refused.returncode == 3 and "does not exist" in refused.stderr  # said now, not nightly
    assert (
        world.lockd("images", "track", gone, "--target", CPU_TARGET, "--no-check").returncode == 0
    )

    run = world.lockd("drift", "--all", "--no-creep", "--no-rebuild", "--no-images",
                      "--format", "json")  # fmt: skip
    reports = json.loads(run.stdout)["reports"]
    images = {r["image"]["reference"]: r for r in reports if r.get("image")}
    assert images[good]["status"] == "clean"
    assert len(list((tmp_path / "lockd-home" / "layers").iterdir())) == 2  # its layers' pairs
    assert images[gone]["status"] == "error"
    assert images[f"oci:{tmp_path.resolve()}/build/layout:v1"]["status"] == "error"
    assert "does not exist" in images[gone]["errors"][0]["message"]

    # Tracking ends by name; what was found stays on the record.
    listed = json.loads(world.lockd("images", "tracked", "--format", "json").stdout)["tracked"]
    assert {t["reference"] for t in listed} == set(images)
    stop = world.lockd("images", "untrack", gone, "--target", CPU_TARGET, "--format", "json")
    assert stop.returncode == 0, stop.output
    assert gone not in {t["reference"] for t in json.loads(stop.stdout)["tracked"]}
    twice = world.lockd("images", "untrack", gone, "--target", CPU_TARGET)
    assert twice.returncode == 2 and "is not tracked" in twice.stderr and good in twice.stderr


def test_site_packages_without_an_interpreter_get_none_invented(
    registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    """`FROM scratch` plus a copy of a venv's site-packages: nothing can run them."""
    from tests.support.images import torch

    world = World(registry, pusher, tmp_path, "drift-bare")
    layer = Layer(created_by="COPY /opt/venv/lib /opt/venv/lib")
    dist(layer, SITE, "numpy", "2.1.0")
    dist(layer, SITE, "requests", "2.32.3")
    torch(layer, SITE, "2.6.0+cu124", "12.4")
    labels = {"dev.lockd.lockset": world.lockset.hash, "dev.lockd.target": CU_TARGET}
    push(pusher, "drift-bare", "v1", Image([layer], env=ENV, labels=labels).parts())
    bare = registry.ref("drift-bare", "v1")

    inspect = run_lockd("images", "inspect", bare, "--format", "json", cwd=tmp_path, env=world.env)
    assert inspect.returncode == 0, inspect.output
    python = json.loads(inspect.stdout)["snapshot"]["python"]
    assert (python["executable"], python["version"]) == ("", "")
    assert python["site_packages"] == [f"/{SITE}"]
    table = run_lockd("images", "inspect", bare, cwd=tmp_path, env=world.env)
    assert f"no interpreter (site-packages /{SITE})" in table.stdout, table.stdout
    assert "/bin/python3" not in table.stdout

    report = world.drift("--image", bare, code=1)
    (mismatch,) = [f for f in report["findings"] if f["kind"] == "python-mismatch"]
    assert mismatch["actual"] is None
    assert mismatch["detail"] == f"no Python interpreter to run /{SITE}"

"""End to end with a real image: buildah builds it from a Dockerfile, lockd checks it.

The base is made in the test from this machine's Python (``tests/support/buildah.py``)
and pushed to the test registry; ``lockd compile`` locks against the local
PyTorch-shaped index and records the base's digest; ``lockd dockerfile`` writes
the Dockerfile (the lock installed with ``pip install --require-hashes`` in a
builder stage, the venv copied onto the same base, the ``dev.lockd.*`` labels);
buildah builds and pushes it, and ``drift --image`` finds it clean, on the
recorded base. A second image installs a CPU torch in a later layer, as a
hurried fix would, and is caught.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.support.buildah import Buildah, push_base, python_rootfs
from tests.support.pyindex import IndexServer
from tests.support.registry import Registry

MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"
TARGET = f"linux-x86_64-py{sys.version_info.major}{sys.version_info.minor}-cu124"


def build(buildah: Buildah, context: Path, tag: str, destination: str) -> str:
    """Build ``context`` and push it; the pushed manifest's digest."""
    buildah.run(
        "bud", "--isolation", "chroot", "--network", "host", "--tls-verify=false",
        "--format", "docker", "--layers=false", "-t", tag, str(context),
    )  # fmt: skip
    digest_file = context / "pushed.digest"
    buildah.run(
        "push", "--tls-verify=false", "--digestfile", str(digest_file), tag,
        f"docker://{destination}",
    )  # fmt: skip
    return digest_file.read_text().strip()


@pytest.mark.slow
def test_a_built_image_is_clean_and_a_cpu_torch_added_later_is_caught(
    tmp_path: Path,
    lockd,  # type: ignore[no-untyped-def]
    registry: Registry,
    world: IndexServer,
) -> None:
    buildah = Buildah(tmp_path / "buildah")
    version = python_rootfs(tmp_path / "rootfs")
    base = registry.ref("e2e/python", f"{MINOR}-slim")
    push_base(buildah, tmp_path / "rootfs", version, base)

    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.in").write_text("torch==2.6.0\nrequests\n")
    compiled: Run = lockd(
        "compile", "--cuda", "cu124", "--platform", "linux-x86_64", "--python", MINOR,
        "--image", base, "--format", "json", cwd=project,
    )  # fmt: skip
    assert compiled.returncode == 0, compiled.output
    lockset = json.loads(compiled.stdout)["lockset"]
    written = lockd(
        "dockerfile", "--target", TARGET, "--base", base, "-o", "Dockerfile", cwd=project
    )
    assert written.returncode == 0, written.output
    good = registry.ref("e2e/app", "good")
    digest = build(buildah, project, "localhost/e2e-app:good", good)

    clean = lockd("drift", "--image", good, "--format", "json", cwd=project)
    assert clean.returncode == 0, clean.output
    report = json.loads(clean.stdout)
    assert (report["status"], report["lockset"]) == ("clean", lockset)
    assert report["image"] == {
        "reference": good, "digest": digest, "platform": "linux/amd64", "target": TARGET
    }  # fmt: skip
    assert "base-image" in report["checks"]  # its first layers are the recorded base's

    hurried = tmp_path / "hurried"
    hurried.mkdir()
    (hurried / "Dockerfile").write_text(
        f"FROM {good}\n"
        "USER 0\n"
        "RUN /opt/venv/bin/python -m pip install --no-deps --force-reinstall "
        f"torch==2.6.0+cpu --index-url {world.url}/whl/cpu\n"
        "USER 10001:10001\n"
    )
    cpu = registry.ref("e2e/app", "cpu")
    build(buildah, hurried, "localhost/e2e-app:cpu", cpu)
    caught = lockd("drift", "--image", cpu, "--format", "json", cwd=project)
    assert caught.returncode == 1, caught.output
    found = {(f["kind"], f["package"]) for f in json.loads(caught.stdout)["findings"]}
    assert ("cpu-wheel", "torch") in found

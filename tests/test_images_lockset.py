"""Base images recorded with every lockset, and checked by drift, end to end.

A real ``docker-registry`` on 127.0.0.1 serves images pushed in code; the real
``lockd`` CLI compiles against the local PyTorch-shaped world, records the
images (``lockd.json``, the ``images`` table, ``show``, ``diff``) and drifts them.
Targets are ``linux-aarch64``, which this machine cannot rebuild: drift checks
their artifacts on the index only, which keeps these runs fast.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lockd.images import ResolvedImage
from lockd.targets import PLATFORMS
from tests.conftest import Run
from tests.support.registry import Pusher, Registry

LockdRunner = Callable[..., Run]
AARCH64 = ["--cuda", "cpu", "--platform", "linux-aarch64", "--python", "3.12"]
TARGET = "linux-aarch64-py312-cpu"


@pytest.fixture
def run(lockd: LockdRunner, tmp_path: Path) -> LockdRunner:
    """The CLI, with an empty Docker configuration: no login of this machine leaks in."""
    (tmp_path / "requirements.in").write_text("idna==3.10\n")

    def call(*args: str) -> Run:
        return lockd(*args, env={"DOCKER_CONFIG": str(tmp_path / "docker")})

    return call


def compiled(run: LockdRunner, *args: str) -> dict[str, Any]:
    result = run("compile", *args, "--format", "json")
    assert result.returncode == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def manifest_images(tmp_path: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads((tmp_path / "locks" / "lockd.json").read_text())
    return {image["reference"]: image for image in doc["images"]}


def drift(run: LockdRunner, code: int) -> dict[str, Any]:
    result = run("drift", "--no-creep", "--format", "json")
    assert result.returncode == code, result.output
    assert "Traceback" not in result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_dockerfile_and_image_flags_record_every_base_image(
    run: LockdRunner, registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    base = pusher.index("rec/base", "3.11")  # linux/amd64 + linux/arm64/v8, with attestations
    tool = pusher.image("rec/tool", "1", "linux/amd64")
    extra = pusher.index("rec/extra", "1", docker=True)
    base_ref, tool_ref, extra_ref = (
        registry.ref("rec/base", "3.11"),
        registry.ref("rec/tool", "1"),
        registry.ref("rec/extra", "1"),
    )
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        f"ARG BASE={base_ref}\n"
        "FROM ${BASE} AS build\n"
        "RUN make\n"
        f"FROM {tool_ref} AS tool\n"
        "FROM build AS final\n"  # a stage, not an image
        "COPY --from=tool /x /x\n"
        "FROM scratch AS export\n"  # nothing to resolve
        "COPY --from=final /x /x\n"
    )
    result = compiled(
        run, *AARCH64, "--platform", "linux-x86_64", "--dockerfile", "Dockerfile",
        "--image", extra_ref,
    )  # fmt: skip
    assert result["images"] == [
        {"reference": base_ref, "digest": base.digest},
        {"reference": extra_ref, "digest": extra.digest},
        {"reference": tool_ref, "digest": tool.digest},
    ]

    # lockd.json: the index digest and every platform's, so each target knows its own.
    images = manifest_images(tmp_path)
    assert list(images) == sorted([base_ref, tool_ref, extra_ref])
    recorded = ResolvedImage.from_dict(images[base_ref])
    assert recorded.index_digest == base.digest
    assert (
        recorded.for_platform(PLATFORMS["linux-aarch64"]).digest
        == (base.children["linux/arm64/v8"])
    )
    assert recorded.for_platform(PLATFORMS["linux-x86_64"]).digest == base.children["linux/amd64"]
    assert len(recorded.platforms) == 2  # the attestations are not platforms
    doc = json.loads((tmp_path / "locks" / "lockd.json").read_text())
    assert doc["extra"]["dockerfile"] == {
        "path": "Dockerfile",
        "sha256": hashlib.sha256(dockerfile.read_bytes()).hexdigest(),
    }

    # The database: one row per image, linked to the lockset row.
    with sqlite3.connect(tmp_path / "lockd-home" / "lockd.db") as db:
        rows = db.execute(
            "SELECT l.hash, i.reference, i.registry, i.repository, i.tag, i.index_digest, "
            "i.media_type, i.platforms FROM images i JOIN locksets l ON l.id = i.lockset_id "
            "ORDER BY i.reference"
        ).fetchall()
    assert [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        (result["lockset"], base_ref, registry.host, "rec/base", "3.11", base.digest),
        (result["lockset"], extra_ref, registry.host, "rec/extra", "1", extra.digest),
        (result["lockset"], tool_ref, registry.host, "rec/tool", "1", tool.digest),
    ]
    assert rows[1][6] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert {p["digest"] for p in json.loads(rows[0][7])} == set(base.children.values())

    # show: the same records as JSON; as a table, each platform's digest with its targets.
    shown = json.loads(run("show", result["lockset"][:12], "--format", "json").stdout)
    assert shown["images"] == doc["images"]
    table = run("show", result["lockset"][:12])
    assert table.returncode == 0, table.output
    arm = next(
        line for line in table.stdout.splitlines() if base.children["linux/arm64/v8"] in line
    )
    assert "linux/arm64/v8" in arm and TARGET in arm and "x86_64" not in arm
    tool_amd = next(
        line for line in table.stdout.splitlines() if tool.digest in line and "amd64" in line
    )
    assert "linux-x86_64-py312-cpu" in tool_amd and TARGET not in tool_amd


def test_a_changed_dockerfile_resolves_again_and_diff_names_the_images(
    run: LockdRunner, registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    pusher.index("chg/base", "3.11")
    newer_base = pusher.index("chg/base", "3.12")
    tool_v1 = pusher.index("chg/tool", "1", salt="v1")
    base_311, base_312 = registry.ref("chg/base", "3.11"), registry.ref("chg/base", "3.12")
    tool_ref = registry.ref("chg/tool", "1")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"ARG BASE={base_311}\nFROM ${{BASE}}\nFROM {tool_ref}\n")
    first = compiled(run, *AARCH64, "--dockerfile", "Dockerfile")

    # A moved tag alone is not a reason to resolve again: that is drift's to find.
    tool_v2 = pusher.index("chg/tool", "1", salt="v2")
    again = compiled(run, *AARCH64, "--dockerfile", "Dockerfile")
    assert (again["status"], again["lockset"]) == ("unchanged", first["lockset"])

    # A changed Dockerfile is: every image is resolved again.
    dockerfile.write_text(dockerfile.read_text().replace(base_311, base_312))
    second = compiled(run, *AARCH64, "--dockerfile", "Dockerfile")
    assert second["status"] == "compiled"
    assert manifest_images(tmp_path)[tool_ref]["index_digest"] == tool_v2.digest
    assert [i["reference"] for i in second["image_changes"]["removed"]] == [base_311]

    # A compile without the Dockerfile records no image: said, not silent.
    dropped = run("compile", *AARCH64, "--refresh")
    assert dropped.returncode == 0, dropped.output
    assert f"image {tool_ref} dropped (was {tool_v2.digest})" in dropped.stdout
    assert "compile with the same --image or --dockerfile to keep it" in dropped.stdout

    diff = json.loads(run("diff", first["lockset"], second["lockset"], "--format", "json").stdout)
    assert diff["images"]["added"] == [{"reference": base_312, "digest": newer_base.digest}]
    assert [i["reference"] for i in diff["images"]["removed"]] == [base_311]
    [changed] = diff["images"]["changed"]
    assert (changed["reference"], changed["from"], changed["to"]) == (
        tool_ref,
        tool_v1.digest,
        tool_v2.digest,
    )
    assert changed["platforms"]["linux/arm64/v8"] == {
        "from": tool_v1.children["linux/arm64/v8"],
        "to": tool_v2.children["linux/arm64/v8"],
    }
    table = run("diff", first["lockset"][:8], second["lockset"][:8])
    assert table.returncode == 0, table.output
    assert tool_v2.digest[:19] in table.stdout and "linux/arm64/v8" in table.stdout


def test_registry_failures_leave_nothing_written_or_recorded(
    run: LockdRunner, registry: Registry, tmp_path: Path
) -> None:
    missing = run("compile", *AARCH64, "--image", registry.ref("fail/never", "1"))
    assert missing.returncode == 3, missing.output
    assert missing.stderr.startswith("error: The tag 1 of "), missing.stderr
    assert "Traceback" not in missing.output

    malformed = run("compile", *AARCH64, "--image", "Not/A:Ref:x")
    assert malformed.returncode == 2, malformed.output
    assert "is not a valid image reference" in malformed.stderr

    no_dockerfile = run("compile", *AARCH64, "--dockerfile", "Dockerfile.missing")
    assert no_dockerfile.returncode == 2, no_dockerfile.output
    assert "The Dockerfile" in no_dockerfile.stderr and "does not exist" in no_dockerfile.stderr

    # lockd.toml may come from a pull request: the Dockerfile it names stays in the project.
    secret = tmp_path.parent / f"{tmp_path.name}-secret"
    secret.write_text("FROM the-secret-first-line\n")
    (tmp_path / "lockd.toml").write_text(f'dockerfile = "../{secret.name}"\n')
    outside = run("compile", *AARCH64)
    assert outside.returncode == 2, outside.output
    assert "lies outside the project" in outside.stderr
    assert "the-secret-first-line" not in outside.output
    (tmp_path / "lockd.toml").unlink()

    assert not (tmp_path / "locks").exists()
    assert json.loads(run("history", "--format", "json").stdout) == []


def test_drift_finds_a_moved_and_a_gone_tag(
    run: LockdRunner, registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    first = pusher.index("drift/base", "stable", salt="v1")
    ref = registry.ref("drift/base", "stable")
    (tmp_path / "lockd.toml").write_text(f'images = ["{ref}"]\n')  # from the config this time
    compiled(run, *AARCH64)
    assert manifest_images(tmp_path)[ref]["index_digest"] == first.digest

    clean = drift(run, 0)
    assert clean["status"] == "clean" and clean["findings"] == [] and clean["errors"] == []
    assert clean["checks"] == [f"artifacts:{TARGET}", "images"]

    moved = pusher.index("drift/base", "stable", salt="v2")
    report = drift(run, 1)
    assert [(f["kind"], f["package"], f["expected"], f["actual"]) for f in report["findings"]] == [
        ("image-moved", ref, first.digest, moved.digest)
    ]

    pusher.delete("drift/base", moved.digest)  # distribution drops the tag with it
    report = drift(run, 1)
    assert [(f["kind"], f["package"], f["expected"], f["actual"]) for f in report["findings"]] == [
        ("image-gone", ref, first.digest, None)
    ]


def test_compile_dockerfile_build_args_and_the_empty_arg(
    run: LockdRunner, registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    cuda = pusher.image("rec/cuda", "12.4.1-runtime", salt="build-arg")
    (tmp_path / "Dockerfile").write_text(
        f"ARG CUDA\nFROM {registry.host}/rec/cuda:${{CUDA}}-runtime AS base\nFROM base\n"
    )
    empty = run("compile", *AARCH64, "--dockerfile", "Dockerfile")
    assert empty.returncode == 2, empty.output
    assert "Dockerfile line 2:" in empty.stderr and "ARG CUDA has no value" in empty.stderr
    assert not (tmp_path / "locks").exists()  # nothing written

    result = compiled(run, *AARCH64, "--dockerfile", "Dockerfile", "--build-arg", "CUDA=12.4.1")
    assert result["images"] == [
        {"reference": registry.ref("rec/cuda", "12.4.1-runtime"), "digest": cuda.digest}
    ]

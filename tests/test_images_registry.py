"""Against a real registry (Debian's docker-registry, distribution 2.8) on 127.0.0.1.

Images are pushed in code through the OCI push API; lockd then resolves them
through the library and through the ``lockd images`` commands.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lockd.errors import RegistryError
from lockd.images import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    CredentialStore,
    RegistryClient,
    RegistryOptions,
    ResolvedImage,
)
from lockd.targets import PLATFORMS
from tests.conftest import Run, hermetic_env, run_lockd
from tests.support.registry import Pusher, Registry, free_port


@pytest.fixture
def client(tmp_path: Path) -> Iterator[RegistryClient]:
    # An empty DOCKER_CONFIG: the machine's own docker login never leaks into a test.
    options = RegistryOptions(
        credentials=CredentialStore({"DOCKER_CONFIG": str(tmp_path)}), sleep=lambda _: None
    )
    with RegistryClient(options) as running:
        yield running


def lockd(tmp_path: Path, *args: str) -> Run:
    env = hermetic_env(tmp_path, DOCKER_CONFIG=str(tmp_path / "docker"))
    return run_lockd(*args, cwd=tmp_path, env=env, timeout=120)


def test_a_single_platform_image(
    registry: Registry, pusher: Pusher, client: RegistryClient
) -> None:
    pushed = pusher.image("single/app", "1.0", "linux/arm64/v8")
    image = client.resolve(registry.ref("single/app", "1.0"))
    assert image.index_digest == pushed.digest
    assert image.media_type == OCI_MANIFEST
    assert not image.is_index
    assert [(p.oci_platform, p.digest) for p in image.platforms] == [
        ("linux/arm64/v8", pushed.digest)
    ]
    assert image.for_platform(PLATFORMS["linux-aarch64"]).digest == pushed.digest
    assert (image.registry, image.repository, image.tag) == (registry.host, "single/app", "1.0")


def test_an_oci_index_records_the_index_and_each_platform(
    registry: Registry, pusher: Pusher, client: RegistryClient
) -> None:
    pushed = pusher.index("multi/app", "1.0", ("linux/amd64", "linux/arm64/v8"))
    image = client.resolve(registry.ref("multi/app", "1.0"))
    assert image.index_digest == pushed.digest
    assert image.media_type == OCI_INDEX
    # The attestation manifests (unknown/unknown) are in the index, but are not platforms.
    assert len(pushed.attestations) == 2
    assert [(p.oci_platform, p.digest) for p in image.platforms] == [
        ("linux/amd64", pushed.children["linux/amd64"]),
        ("linux/arm64/v8", pushed.children["linux/arm64/v8"]),
    ]
    assert image.for_platform(PLATFORMS["linux-x86_64"]).digest == pushed.children["linux/amd64"]
    assert (
        image.for_platform(PLATFORMS["linux-aarch64"]).digest == (pushed.children["linux/arm64/v8"])
    )
    assert ResolvedImage.from_dict(json.loads(json.dumps(image.to_dict()))) == image


def test_lockd_records_the_index_digest_where_one_accept_type_gets_a_child(
    registry: Registry, pusher: Pusher, client: RegistryClient
) -> None:
    pushed = pusher.index("list/app", "1.0", ("linux/amd64", "linux/arm64/v8"), docker=True)
    # The silent wrong answer: asked for one manifest type, the registry picks a platform.
    with httpx.Client() as raw:
        one_type = raw.get(
            f"{registry.url}/v2/list/app/manifests/1.0", headers={"Accept": DOCKER_MANIFEST}
        )
        assert one_type.headers["Docker-Content-Digest"] == pushed.children["linux/amd64"]
        pusher.index("oci/app", "1.0")
        no_index = raw.get(
            f"{registry.url}/v2/oci/app/manifests/1.0", headers={"Accept": OCI_MANIFEST}
        )
        assert no_index.status_code == 404

    image = client.resolve(registry.ref("list/app", "1.0"))
    assert image.index_digest == pushed.digest != pushed.children["linux/amd64"]
    assert image.media_type == DOCKER_MANIFEST_LIST
    assert {p.oci_platform: p.digest for p in image.platforms} == pushed.children
    assert {p.media_type for p in image.platforms} == {DOCKER_MANIFEST}
    assert client.resolve(registry.ref("oci/app", "1.0")).media_type == OCI_INDEX


def test_a_moved_tag_gets_a_new_digest(
    registry: Registry, pusher: Pusher, client: RegistryClient
) -> None:
    first = pusher.index("moving/app", "stable", salt="v1")
    ref = registry.ref("moving/app", "stable")
    assert client.digest(ref) == first.digest
    second = pusher.index("moving/app", "stable", salt="v2")
    assert second.digest != first.digest
    with RegistryClient(RegistryOptions()) as fresh:
        assert fresh.resolve(ref).index_digest == second.digest
        # The old content is still there by digest: pinned references keep working.
        pinned = fresh.resolve(f"{registry.host}/moving/app:stable@{first.digest}")
        assert pinned.index_digest == first.digest


def test_deleted_and_unknown_tags_are_clear_errors(
    registry: Registry, pusher: Pusher, client: RegistryClient
) -> None:
    pushed = pusher.image("gone/app", "old")
    ref = registry.ref("gone/app", "old")
    assert client.digest(ref) == pushed.digest
    pusher.delete("gone/app", pushed.digest)
    with RegistryClient(RegistryOptions()) as fresh, pytest.raises(RegistryError) as caught:
        fresh.resolve(ref)
    assert caught.value.message == (
        f"The tag old of {registry.host}/gone/app does not exist (never pushed, or deleted)."
    )
    with pytest.raises(RegistryError, match="The tag nope of"):
        client.resolve(registry.ref("gone/app", "nope"))
    # distribution 2.8 answers an unknown repository as an unknown tag (MANIFEST_UNKNOWN).
    with pytest.raises(RegistryError, match=r"The tag 1 of .*/never/pushed does not exist"):
        client.resolve(registry.ref("never/pushed", "1"))
    with pytest.raises(RegistryError, match=r"@sha256:0000.* does not exist"):
        client.resolve(f"{registry.host}/gone/app@sha256:" + "0" * 64)


def test_an_unreachable_registry_names_its_url(client: RegistryClient) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(RegistryError) as caught:
        client.resolve(f"127.0.0.1:{port}/app:1")
    assert f"Cannot reach the registry at http://127.0.0.1:{port}/v2/app/manifests/1" in (
        caught.value.message
    )


# -- the CLI -----------------------------------------------------------------------


def test_cli_resolve_json(registry: Registry, pusher: Pusher, tmp_path: Path) -> None:
    multi = pusher.index("cli/multi", "1")
    single = pusher.image("cli/single", "1")
    refs = [registry.ref("cli/multi", "1"), registry.ref("cli/single", "1")]
    run = lockd(tmp_path, "images", "resolve", *refs, "--format", "json")
    assert run.returncode == 0, run.output
    images = [ResolvedImage.from_dict(item) for item in json.loads(run.stdout)["images"]]
    assert [i.index_digest for i in images] == [multi.digest, single.digest]
    assert [i.reference for i in images] == refs


def test_cli_resolve_table(registry: Registry, pusher: Pusher, tmp_path: Path) -> None:
    pushed = pusher.index("cli/table", "1")
    run = lockd(tmp_path, "images", "resolve", registry.ref("cli/table", "1"))
    assert run.returncode == 0, run.output
    rows = [line.split("\t") for line in run.stdout.splitlines()]
    assert rows == [
        ["image", "platform", "digest"],
        [registry.ref("cli/table", "1"), "index", pushed.digest],
        ["", "linux/amd64", pushed.children["linux/amd64"]],
        ["", "linux/arm64/v8", pushed.children["linux/arm64/v8"]],
    ]


def test_cli_pin_shows_then_writes(registry: Registry, pusher: Pusher, tmp_path: Path) -> None:
    base = pusher.index("cli/base", "3.11-slim")
    long_name = "cli/" + "-".join(["tools"] * 16)  # a FROM past 80 characters: shown whole
    tool = pusher.image(long_name, "1")
    dockerfile = tmp_path / "Dockerfile"
    original = (
        f"ARG BASE={registry.host}/cli/base:3.11-slim\n"
        "FROM ${BASE} AS build\n"
        "RUN make\n\n"
        f"FROM {registry.host}/{long_name}:1 AS tool\n"
        "FROM build\n"
        "COPY --from=tool /x /x\n"
    )
    dockerfile.write_text(original)

    shown = lockd(tmp_path, "images", "pin", "Dockerfile")
    assert shown.returncode == 0, shown.output
    assert dockerfile.read_text() == original
    assert f"{registry.host}/cli/base:3.11-slim@{base.digest}\tpinned" in shown.stdout
    assert f"\t{registry.host}/{long_name}:1\t{registry.host}/{long_name}:1@{tool.digest}\t" in (
        shown.stdout
    )
    assert "run again with --write" in shown.stderr.lower()

    written = lockd(tmp_path, "images", "pin", "Dockerfile", "--write", "--format", "json")
    assert written.returncode == 0, written.output
    report = json.loads(written.stdout)
    assert (report["changed"], report["written"]) == (True, True)
    assert [entry["status"] for entry in report["from"]] == ["pinned", "pinned", "stage"]
    assert dockerfile.read_text() == original.replace(
        "cli/base:3.11-slim", f"cli/base:3.11-slim@{base.digest}"
    ).replace(f"{long_name}:1 ", f"{long_name}:1@{tool.digest} ")

    again = lockd(tmp_path, "images", "pin", "Dockerfile", "--write", "--format", "json")
    assert json.loads(again.stdout)["written"] is False


def test_cli_errors_are_one_paragraph_with_exit_codes(registry: Registry, tmp_path: Path) -> None:
    missing = lockd(tmp_path, "images", "resolve", registry.ref("cli/missing", "1"))
    assert missing.returncode == 3
    assert missing.stderr.startswith("error: The tag 1 of ")
    assert "Traceback" not in missing.output
    assert len(missing.stderr.strip().splitlines()) == 1

    refused = lockd(tmp_path, "images", "resolve", f"127.0.0.1:{free_port()}/x:1")
    assert refused.returncode == 3, refused.output
    assert refused.stderr.startswith("error: Cannot reach the registry at http://127.0.0.1:")
    assert "LOCKD_INSECURE_REGISTRIES" not in refused.stderr  # loopback is always http

    malformed = lockd(tmp_path, "images", "resolve", "Python:3.11")
    assert malformed.returncode == 2
    assert "is not a valid image reference" in malformed.stderr
    assert "Traceback" not in malformed.output

    (tmp_path / "Dockerfile").write_text("FROM python:3.11 AS a b\n")
    bad_from = lockd(tmp_path, "images", "pin", "Dockerfile")
    assert bad_from.returncode == 1  # nothing to resolve; the row says why
    assert "Dockerfile line 1: not pinned: 'FROM python:3.11 AS a b' is not a FROM" in (
        bad_from.stderr
    )
    assert "Traceback" not in bad_from.output

    bad_arg = lockd(tmp_path, "images", "pin", "Dockerfile", "--build-arg", "oops")
    assert bad_arg.returncode == 2
    assert "--build-arg 'oops' is not NAME=VALUE" in bad_arg.stderr


def test_cli_pin_of_invalid_references_says_how_to_write_one(tmp_path: Path) -> None:
    """A literal bad reference gets the reference's fix (not the ARG one), one full stop,
    and a FROM longer than any valid reference is cut in the table: the file is outside
    input."""
    long_name = "x" * 5000
    (tmp_path / "Dockerfile").write_text(
        f"FROM Ubuntu:22.04 AS a\nARG V=Bad\nFROM ${{V}}:1 AS b\nFROM {long_name}\n"
    )

    result = lockd(tmp_path, "images", "pin", "Dockerfile")

    assert result.returncode == 1, result.output
    assert "Traceback" not in result.output and ".." not in result.stderr
    assert len(result.output) < 3000, "the 5000-character FROM is echoed whole"
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Dockerfile line 1: not pinned: 'Ubuntu:22.04' is not a valid")
    assert lines[0].endswith(
        "with a valid reference: a lowercase repository, an optional :tag "
        "and an optional @sha256: digest of 64 hex digits."
    )
    assert "Fix: give V a valid value (an ARG default" in lines[1]
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows[3][1] == "x" * 512 + "…"  # longer than any valid reference: cut


def test_cli_pin_write_refuses_assembled_references_with_exit_1(
    registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    slim = pusher.image("cli/python", "3.11-slim", salt="python")
    runtime = pusher.image("cli/runtime", "1")
    original = (
        f"ARG REGISTRY={registry.host}\n"
        "ARG PY=3.11\n"
        "FROM ${REGISTRY}/cli/python:${PY}-slim AS build\n"
        f"FROM {registry.host}/cli/runtime:1\n"
    )
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(original)

    result = lockd(tmp_path, "images", "pin", "Dockerfile", "--write")

    assert result.returncode == 1, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows[1] == ["3", "${REGISTRY}/cli/python:${PY}-slim", "", "not pinned"]
    assert rows[2] == [
        "4",
        f"{registry.host}/cli/runtime:1",
        f"{registry.host}/cli/runtime:1@{runtime.digest}",
        "pinned",
    ]
    assert (
        "Dockerfile line 3: not pinned: ${REGISTRY}/cli/python:${PY}-slim is assembled from "
        "several pieces (REGISTRY, PY): there is no single place to put the digest. Fix: move "
        f"the whole reference into one ARG default (ARG BASE_IMAGE={registry.host}/cli/python:"
        "3.11-slim, then FROM ${BASE_IMAGE}), which lockd pins." in result.stderr
    )
    # The pinnable line was pinned; the other was left alone.
    assert dockerfile.read_text() == original.replace(
        "cli/runtime:1\n", f"cli/runtime:1@{runtime.digest}\n"
    )
    assert slim.digest not in dockerfile.read_text()

    # Done as the fix says, the whole file pins and the exit code is 0.
    dockerfile.write_text(
        f"ARG BASE_IMAGE={registry.host}/cli/python:3.11-slim\nFROM ${{BASE_IMAGE}} AS build\n"
    )
    fixed = lockd(tmp_path, "images", "pin", "Dockerfile", "--write")
    assert fixed.returncode == 0, fixed.output
    assert f"cli/python:3.11-slim@{slim.digest}" in dockerfile.read_text()


def test_cli_pin_platform_args_and_build_args(
    registry: Registry, pusher: Pusher, tmp_path: Path
) -> None:
    amd = pusher.image("cli/rocm", "6.1")
    arm = pusher.image("cli/jetpack", "6", "linux/arm64")
    # The ollama shape: one base stage per architecture, picked with ${TARGETARCH}.
    original = (
        "ARG FLAVOR=${TARGETARCH}\n"
        "ARG ROCM\n"
        f"FROM --platform=linux/amd64 {registry.host}/cli/rocm:${{ROCM}} AS base-amd64\n"
        f"FROM --platform=linux/arm64 {registry.host}/cli/jetpack:6 AS base-arm64\n"
        "FROM base-${TARGETARCH} AS base\n"
        "FROM base-${FLAVOR}\n"
    )
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(original)

    unset = lockd(tmp_path, "images", "pin", "Dockerfile", "--format", "json")
    assert unset.returncode == 1, unset.output
    entries = json.loads(unset.stdout)["from"]
    assert entries[0]["status"] == "not-pinned"
    assert "ARG ROCM has no value" in entries[0]["reason"]
    assert [e["status"] for e in entries[1:]] == ["pinned", "stage", "stage"]

    pinned = lockd(
        tmp_path,
        "images",
        "pin",
        "Dockerfile",
        "--write",
        "--format",
        "json",
        "--build-arg",
        "ROCM=6.1",
        "--platform",
        "linux/arm64",
    )
    assert pinned.returncode == 1, pinned.output  # ROCM comes from --build-arg: not in place
    entries = json.loads(pinned.stdout)["from"]
    assert (entries[0]["status"], entries[0]["pinned_reference"]) == ("not-pinned", None)
    assert entries[0]["resolved"]["index_digest"] == amd.digest  # resolved, shown, not written
    assert [e["reference"] for e in entries[2:]] == ["base-arm64", "base-arm64"]
    assert dockerfile.read_text() == original.replace("jetpack:6 ", f"jetpack:6@{arm.digest} ")
    assert amd.digest not in dockerfile.read_text()

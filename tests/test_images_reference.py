"""Image references, recorded images and the platform pick (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import lockd.images
from lockd.errors import FormatError, RegistryError, UsageError
from lockd.images import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    PlatformDigest,
    ResolvedImage,
    parse_reference,
)
from lockd.targets import PLATFORMS

D1, D2, D3, D4 = (f"sha256:{c * 64}" for c in "1234")


def test_public_api_is_pinned() -> None:
    assert lockd.images.__all__ == sorted(lockd.images.__all__, key=lambda n: (not n.isupper(), n))
    assert set(lockd.images.__all__) == {
        "ACCEPT", "DOCKER_MANIFEST", "DOCKER_MANIFEST_LIST", "IMAGE_FORMAT", "OCI_INDEX",
        "OCI_MANIFEST", "BuildOptions", "CredentialStore", "Credentials", "Dockerfile",
        "DockerfilePins", "DockerfileText", "FromInstruction", "FromKind", "Heredoc",
        "ImageInspection", "ImageManifest", "ImageRef", "ImageSource", "InspectRequest",
        "Instruction", "PinStatus", "PinnedFrom", "PlatformDigest", "RegistryClient",
        "RegistryOptions", "ResolvedImage", "SizeFinding", "SizeReport", "Stage", "VerifiedLayers",
        "inspect_image", "key_values", "local_path", "open_source", "parse_build_args",
        "parse_dockerfile", "parse_dockerfile_stages", "parse_reference", "pin_dockerfile",
        "pin_dockerfile_text", "read_dockerfile", "require_resolved", "resolve_images",
        "split_instructions", "words",
    }  # fmt: skip


def test_accept_names_all_four_manifest_types() -> None:
    for media_type in ("OCI_INDEX", "DOCKER_MANIFEST_LIST", "OCI_MANIFEST", "DOCKER_MANIFEST"):
        assert getattr(lockd.images, media_type) in lockd.images.ACCEPT


@pytest.mark.parametrize(
    ("text", "canonical", "familiar"),
    [
        ("python:3.11-slim", "docker.io/library/python:3.11-slim", "python:3.11-slim"),
        ("python", "docker.io/library/python:latest", "python:latest"),
        ("nvidia/cuda:12.4.1", "docker.io/nvidia/cuda:12.4.1", "nvidia/cuda:12.4.1"),
        ("docker.io/python:3", "docker.io/library/python:3", "python:3"),
        ("index.docker.io/library/python:3", "docker.io/library/python:3", "python:3"),
        ("registry-1.docker.io/nvidia/cuda:12", "docker.io/nvidia/cuda:12", "nvidia/cuda:12"),
        ("nvcr.io/nvidia/pytorch:24.05-py3", "nvcr.io/nvidia/pytorch:24.05-py3", None),
        ("localhost/app", "localhost/app:latest", None),
        ("127.0.0.1:5000/a/b:c", "127.0.0.1:5000/a/b:c", None),
        ("[::1]:5000/app:1", "[::1]:5000/app:1", None),
        (f"python@{D1}", f"docker.io/library/python@{D1}", f"python@{D1}"),
        (f"python:3.11@{D1}", f"docker.io/library/python:3.11@{D1}", f"python:3.11@{D1}"),
        ("Registry.Example.com/team/app:1", "registry.example.com/team/app:1", None),
    ],
)
def test_references_are_normalised(text: str, canonical: str, familiar: str | None) -> None:
    ref = parse_reference(text)
    assert str(ref) == canonical
    assert ref.familiar == (familiar or canonical)


def test_docker_hub_is_served_from_its_api_host() -> None:
    assert parse_reference("python").api_host == "registry-1.docker.io"
    assert str(parse_reference("python:3")) == "docker.io/library/python:3"
    assert parse_reference("ghcr.io/o/i").api_host == "ghcr.io"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("Python:3.11", "lowercase"),
        ("python:3.11@sha256:abc", "64 lowercase hex"),
        ("python@md5:" + "a" * 32, "sha256"),
        ("python:-bad", "not a valid tag"),
        ("team//app", "component"),
        ("-bad/app", "component"),
        ("bad_host.example.com:xx/app", "registry host"),
        ("   ", "empty"),
    ],
)
def test_malformed_references_are_usage_errors(text: str, why: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_reference(text)
    assert why in caught.value.render()
    assert caught.value.exit_code == 2
    assert "python:3.11-slim" in (caught.value.hint or "")


@pytest.mark.parametrize("text", ["/build/oci", "./build/oci", "../oci", "~/app.tar"])
def test_a_path_is_pointed_to_its_transport(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_reference(text)
    assert "is a path, not an image reference" in caught.value.message
    assert f"oci:{text}" in (caught.value.hint or "") and "docker-archive:" in (
        caught.value.hint or ""
    )


def _image(
    media_type: str = OCI_INDEX, platforms: tuple[PlatformDigest, ...] = ()
) -> ResolvedImage:
    return ResolvedImage(
        reference="python:3.11-slim",
        registry="docker.io",
        repository="library/python",
        tag="3.11-slim",
        index_digest=D1,
        media_type=media_type,
        platforms=platforms
        or (
            PlatformDigest("linux", "amd64", None, D2, OCI_MANIFEST),
            PlatformDigest("linux", "arm64", "v8", D3, OCI_MANIFEST),
            PlatformDigest("linux", "arm", "v6", D4, OCI_MANIFEST),
            PlatformDigest("linux", "arm", "v7", D1, OCI_MANIFEST),
        ),
        resolved_at=datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
    )


def test_resolved_image_round_trips_through_a_dict() -> None:
    image = _image()
    data = image.to_dict()
    assert data["resolved_at"] == "2024-06-01T12:00:00Z"
    assert data["platforms"][1] == {
        "os": "linux",
        "architecture": "arm64",
        "variant": "v8",
        "digest": D3,
        "media_type": OCI_MANIFEST,
    }
    assert ResolvedImage.from_dict(data) == image
    assert image.pinned == f"python:3.11-slim@{D1}"
    assert image.is_index


@pytest.mark.parametrize(
    "broken",
    [
        {"platforms": None},
        {"index_digest": "sha256:short"},
        {"resolved_at": "yesterday"},
        {"registry": ""},
    ],
)
def test_a_broken_record_is_a_format_error(broken: dict[str, object]) -> None:
    with pytest.raises(FormatError):
        ResolvedImage.from_dict({**_image().to_dict(), **broken})


def test_each_target_platform_knows_its_digest() -> None:
    image = _image()
    assert image.for_platform(PLATFORMS["linux-x86_64"]).digest == D2
    assert image.for_platform(PLATFORMS["linux-aarch64"]).digest == D3
    assert image.for_platform("linux/aarch64").digest == D3  # uname spelling
    assert image.for_platform("linux/arm64/v8").digest == D3
    assert image.for_platform("linux/arm/v6").digest == D4
    assert image.for_platform("linux/arm").digest == D1  # the highest variant, as runtimes pick


def test_a_missing_platform_says_what_is_offered() -> None:
    with pytest.raises(RegistryError) as caught:
        _image().for_platform(PLATFORMS["windows-x86_64"])
    message = caught.value.render()
    assert "windows/amd64" in message
    assert "linux/amd64, linux/arm64/v8, linux/arm/v6, linux/arm/v7" in message


def test_a_single_manifest_image_has_its_one_platform() -> None:
    only = PlatformDigest("linux", "amd64", None, D1, DOCKER_MANIFEST)
    image = _image(DOCKER_MANIFEST, (only,))
    assert not image.is_index
    assert image.for_platform(PLATFORMS["linux-x86_64"]) == only
    with pytest.raises(RegistryError):
        image.for_platform(PLATFORMS["linux-aarch64"])

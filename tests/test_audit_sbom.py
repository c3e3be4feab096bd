"""`lockd audit --format cyclonedx`: CycloneDX 1.6 SBOMs that validate against the schema."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from lockd.lockset import Artifact
from lockd.report.cyclonedx import BomRequest, purl_for, render_cyclonedx
from tests.test_audit import (
    CPU,
    CPU_TARGET,
    CU124,
    CU_TARGET,
    IMAGE,
    PYPI,
    Seed,
    build_seed,
    lockset,
    run_lockd,
)


@pytest.fixture
def seed(tmp_path: Path) -> Seed:
    return build_seed(tmp_path / "lockd.db")


def validate(text: str) -> dict:  # type: ignore[type-arg]
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, error
    return json.loads(text)  # type: ignore[no-any-return]


def sbom(seed: Seed, tmp_path: Path, *args: str) -> dict:  # type: ignore[type-arg]
    out = tmp_path / "sbom.json"
    run = run_lockd(
        tmp_path, "audit", "--db", seed.url, "--format", "cyclonedx", "-o", str(out), *args
    )
    assert run.returncode == 0, run.output
    return validate(out.read_text())


def test_lockset_sbom_has_the_ntia_minimum_elements(seed: Seed, tmp_path: Path) -> None:
    bom = sbom(seed, tmp_path, "--project", "ml-model")
    assert bom["specVersion"] == "1.6" and bom["bomFormat"] == "CycloneDX"
    meta = bom["metadata"]
    assert meta["timestamp"].startswith("2026-03-10T10:00:00")  # when the lockset was made
    assert meta["authors"] == [{"name": "alice"}]
    tools = {c["name"]: c.get("version") for c in meta["tools"]["components"]}
    assert tools["lockd"] == "0.1.0" and tools["uv"] == "0.13.9"
    root = meta["component"]
    assert (root["name"], root["version"], root["type"]) == (
        "ml-model",
        seed.ml[2][:12],
        "application",
    )
    props = {p["name"]: p["value"] for p in root["properties"]}
    assert props["lockd:lockset"] == seed.ml[2]
    assert props["lockd:parent"] == seed.ml[1]

    libraries = [c for c in bom["components"] if c["type"] == "library"]
    # numpy and requests are the same files in both targets: one component each
    assert sorted(c["name"] for c in libraries) == ["numpy", "requests", "torch", "torch"]
    for component in libraries:
        assert component["supplier"]["name"] in {"pypi.org", "download.pytorch.org"}
        assert component["version"] and component["purl"].startswith("pkg:pypi/")
        (digest,) = component["hashes"]
        assert digest["alg"] == "SHA-256" and len(digest["content"]) == 64
        assert component["externalReferences"][0]["type"] == "distribution"
    purls = sorted(c["purl"] for c in libraries)
    assert purls == [
        "pkg:pypi/numpy@2.1.0",
        "pkg:pypi/requests@2.32.3",
        f"pkg:pypi/torch@2.6.0%2Bcpu?repository_url={CPU}",
        f"pkg:pypi/torch@2.6.0%2Bcu124?repository_url={CU124}",
    ]
    numpy = next(c for c in libraries if c["name"] == "numpy")
    assert sorted(p["value"] for p in numpy["properties"] if p["name"] == "lockd:target") == [
        CPU_TARGET,
        CU_TARGET,
    ]

    (image,) = [c for c in bom["components"] if c["type"] == "container"]
    assert image["purl"] == (
        "pkg:oci/python@sha256:" + "d" * 64 + "?repository_url=registry-1.docker.io/library/"
        "python&tag=3.11-slim"
    )
    assert image["hashes"] == [{"alg": "SHA-256", "content": "d" * 64}]
    platforms = {p["name"]: p["value"] for p in image["properties"]}
    assert platforms["lockd:platform:linux/arm64/v8"] == "sha256:" + "f" * 64

    # relationships: root -> targets (+ image), target -> its artifacts; no package edges
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in bom["dependencies"]}
    targets = [c for c in bom["components"] if c["type"] == "application"]
    assert {t["name"] for t in targets} == {CU_TARGET, CPU_TARGET}
    assert deps[root["bom-ref"]] == {t["bom-ref"] for t in targets} | {image["bom-ref"]}
    cu = next(t for t in targets if t["name"] == CU_TARGET)
    assert len(deps[cu["bom-ref"]]) == 3
    assert all(not deps[c["bom-ref"]] for c in libraries)
    (composition,) = bom["compositions"]
    assert composition["aggregate"] == "unknown"
    assert sorted(composition["dependencies"]) == sorted(c["bom-ref"] for c in libraries)


def test_one_target_and_an_older_lockset(seed: Seed, tmp_path: Path) -> None:
    bom = sbom(seed, tmp_path, "--lockset", seed.ml[0][:10], "--target", CPU_TARGET)
    root = bom["metadata"]["component"]
    assert root["version"] == seed.ml[0][:12]
    assert {p["name"]: p["value"] for p in root["properties"]}["lockd:target"] == CPU_TARGET
    names = sorted(c["name"] for c in bom["components"])
    assert names == ["numpy", "requests", "torch"]  # no images recorded on that lockset
    deps = {d["ref"]: d.get("dependsOn", []) for d in bom["dependencies"]}
    assert len(deps[root["bom-ref"]]) == 3
    assert "2.5.1+cpu" in {c["version"] for c in bom["components"]}


def test_the_same_lockset_gives_the_same_bom(seed: Seed, tmp_path: Path) -> None:
    first = run_lockd(
        tmp_path, "audit", "--db", seed.url, "--format", "cyclonedx", "--project", "web"
    )
    second = run_lockd(
        tmp_path, "audit", "--db", seed.url, "--format", "cyclonedx", "--project", "web"
    )
    assert first.returncode == 0, first.output
    assert first.stdout == second.stdout  # serial number derived from the lockset hash
    validate(first.stdout)


def test_purls() -> None:
    def art(
        name: str, version: str, index: str, filename: str = "x.whl", kind: str = "wheel"
    ) -> Artifact:
        return Artifact(name, version, index, f"{index}/{filename}", filename, "0" * 64, kind)

    assert purl_for(art("Typing_Extensions", "4.12.2", PYPI), PYPI).to_string() == (
        "pkg:pypi/typing-extensions@4.12.2"
    )
    # pypi.org is the purl default even where it is not the lockset's default index
    assert purl_for(
        art("numpy", "2.1.0", PYPI + "/"), "https://mirror.example/simple"
    ).to_string() == ("pkg:pypi/numpy@2.1.0")
    assert purl_for(art("torch", "2.4.0+cu124", CU124), PYPI).to_string() == (
        f"pkg:pypi/torch@2.4.0%2Bcu124?repository_url={CU124}"
    )
    private = "https://pkgs.example/simple"
    assert (
        purl_for(art("acme", "1.0", private), PYPI)
        .to_string()
        .endswith("?repository_url=https://pkgs.example/simple")
    )
    assert purl_for(art("acme", "1.0", private), private).to_string() == "pkg:pypi/acme@1.0"
    conda = art(
        "pytorch",
        "2.5.1",
        "https://conda.anaconda.org/pytorch",
        "pytorch-2.5.1-py3.11_cuda12.4_cudnn9.1.0_0.tar.bz2",
        "conda",
    )
    assert purl_for(conda, PYPI).to_string() == (
        "pkg:conda/pytorch@2.5.1?build=py3.11_cuda12.4_cudnn9.1.0_0"
        "&channel=https://conda.anaconda.org/pytorch&type=tar.bz2"
    )


def test_bom_without_images_or_targets_still_validates() -> None:
    item = lockset(
        "solo", "2.6.0", "2026-05-01T00:00:00Z", None, images=(IMAGE | {"platforms": []},)
    )
    text = render_cyclonedx(BomRequest(item, item.hash, None, "0.1.0"))
    bom = validate(text)
    assert any(c["type"] == "container" for c in bom["components"])


def test_no_sbom_from_an_edited_lockset(seed: Seed, tmp_path: Path) -> None:
    with closing(sqlite3.connect(seed.path)) as conn:
        (document,) = conn.execute(
            "SELECT document FROM locksets WHERE hash = ?", (seed.web,)
        ).fetchone()
        conn.execute(
            "UPDATE locksets SET document = ? WHERE hash = ?",
            (document.replace("2.4.0+cpu", "2.4.1+cpu"), seed.web),
        )
        conn.commit()
    run = run_lockd(
        tmp_path, "audit", "--db", seed.url, "--format", "cyclonedx", "--project", "web"
    )
    assert run.returncode == 2, run.output
    assert "does not match its content hash" in run.stderr
    assert "Traceback" not in run.output

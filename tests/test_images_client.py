"""The registry client through httpx's transport seam: retries, fallbacks, auth, credentials.

The real-registry behaviour is covered in test_images_registry.py and
test_images_auth.py; here a scripted transport plays the failures a real
registry rarely shows on demand (5xx, 429, lost connections, bad digests).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from lockd.errors import RegistryError
from lockd.images import (
    ACCEPT,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    CredentialStore,
    RegistryClient,
    RegistryOptions,
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
CHILD = "sha256:" + "c" * 64
INDEX = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": CHILD,
                "size": 1,
                "platform": {"os": "linux", "architecture": "amd64"},
            }
        ],
    }
).encode()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


INDEX_DIGEST = digest_of(INDEX)

Handler = Callable[[httpx.Request], httpx.Response]


class Script:
    """A transport that records requests and answers with ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def options(self, **changes: object) -> RegistryOptions:
        values: dict[str, object] = {
            "transport": httpx.MockTransport(self),
            "sleep": self.sleeps.append,
            "clock": lambda: NOW,
            **changes,
        }
        return RegistryOptions(**values)  # type: ignore[arg-type]

    @property
    def lines(self) -> list[str]:
        return [f"{r.method} {r.url.copy_with(query=None)}" for r in self.requests]


def index_answer(request: httpx.Request) -> httpx.Response:
    headers = {"Docker-Content-Digest": INDEX_DIGEST, "Content-Type": OCI_INDEX}
    if request.method == "HEAD":
        return httpx.Response(200, headers=headers)
    return httpx.Response(200, headers=headers, content=INDEX)


def resolve(script: Script, reference: str = "python:3.11", **changes: object) -> str:
    with RegistryClient(script.options(**changes)) as client:
        return client.resolve(reference).index_digest


def test_head_for_the_digest_then_get_by_digest() -> None:
    script = Script(index_answer)
    with RegistryClient(script.options()) as client:
        image = client.resolve("python:3.11")
    assert image.index_digest == INDEX_DIGEST
    assert [p.digest for p in image.platforms] == [CHILD]
    assert image.resolved_at == NOW
    base = "https://registry-1.docker.io/v2/library/python/manifests"
    assert script.lines == [f"HEAD {base}/3.11", f"GET {base}/{INDEX_DIGEST}"]
    assert all(r.headers["Accept"] == ACCEPT for r in script.requests)


def test_get_when_head_gives_no_digest() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(405)
        return httpx.Response(200, headers={"Content-Type": OCI_INDEX}, content=INDEX)

    script = Script(handler)
    assert resolve(script) == INDEX_DIGEST
    # The body GET by tag is verified and kept: no second GET by digest.
    assert [line.split()[0] for line in script.lines] == ["HEAD", "GET"]


def test_an_index_without_media_type_is_read_from_the_header() -> None:
    body = json.dumps({"schemaVersion": 2, "manifests": []}).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": OCI_INDEX}, content=body)

    with RegistryClient(Script(handler).options()) as client:
        assert client.resolve("python:3.11").media_type == OCI_INDEX


def test_a_body_that_does_not_match_its_digest_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        header = {"Docker-Content-Digest": "sha256:" + "0" * 64}
        return httpx.Response(
            200 if request.method == "GET" else 404, headers=header, content=INDEX
        )

    with pytest.raises(RegistryError, match="does not match its digest"):
        resolve(Script(handler))
    with pytest.raises(RegistryError, match="does not match its digest"):
        resolve(Script(index_answer), "python@sha256:" + "1" * 64)


def test_an_unknown_repository_is_named_when_the_registry_says_so() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN"}]})

    with pytest.raises(RegistryError) as caught:
        resolve(Script(handler), "ghcr.io/org/nothing:1")
    assert caught.value.message == "The repository ghcr.io/org/nothing does not exist."


def test_an_unreadable_manifest_type_is_an_error() -> None:
    body = json.dumps({"mediaType": "application/vnd.docker.distribution.manifest.v1+json"})

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200 if request.method == "GET" else 405, content=body.encode())

    with pytest.raises(RegistryError, match="cannot read"):
        resolve(Script(handler))


def flaky(*statuses: int, retry_after: str | None = None) -> Script:
    """Answers ``statuses`` in turn, then the index."""
    pending = list(statuses)

    def handler(request: httpx.Request) -> httpx.Response:
        if pending:
            headers = {"Retry-After": retry_after} if retry_after else {}
            return httpx.Response(pending.pop(0), headers=headers)
        return index_answer(request)

    return Script(handler)


def test_5xx_is_retried_with_backoff() -> None:
    script = flaky(503, 502)
    assert resolve(script) == INDEX_DIGEST
    assert script.sleeps == [0.5, 1.0]


def test_429_honours_retry_after_seconds_and_dates() -> None:
    script = flaky(429, retry_after="7")
    assert resolve(script) == INDEX_DIGEST
    assert script.sleeps == [7.0]
    script = flaky(429, retry_after="Sat, 01 Jun 2024 12:00:03 GMT")
    assert resolve(script) == INDEX_DIGEST
    assert script.sleeps == [3.0]


def test_rate_limit_exhausted_is_a_clear_error() -> None:
    script = flaky(*[429] * 10, retry_after="1")
    with pytest.raises(RegistryError) as caught:
        resolve(script)
    assert "rate-limited" in caught.value.message
    assert "wait 1 s" in caught.value.message
    assert "LOCKD_REGISTRY_USERNAME" in (caught.value.hint or "")
    assert script.sleeps == [1.0, 1.0, 1.0]
    assert len(script.requests) == 4  # bounded


def test_a_retry_after_beyond_the_limit_is_not_waited_for() -> None:
    script = flaky(*[429] * 10, retry_after="3600")
    with pytest.raises(RegistryError, match="wait 3600 s"):
        resolve(script)
    assert script.sleeps == []


def test_persistent_5xx_names_the_url_and_the_attempts() -> None:
    script = flaky(*[503] * 10)
    with pytest.raises(RegistryError) as caught:
        resolve(script, "ghcr.io/org/app:1", attempts=2)
    assert caught.value.message == (
        "https://ghcr.io/v2/org/app/manifests/1 answered 503 after 2 attempts."
    )


def test_an_unreachable_registry_names_the_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    script = Script(handler)
    with pytest.raises(RegistryError) as caught:
        resolve(script, "registry.example.com/team/app:1")
    assert "Cannot reach the registry at https://registry.example.com/v2/team/app/manifests/1" in (
        caught.value.message
    )
    assert script.sleeps == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    ("reference", "insecure", "hinted"),
    [
        ("registry.example.com/team/app:1", "", True),  # https: plain http might be the cause
        ("registry.example.com/team/app:1", "registry.example.com", False),  # listed already
        ("127.0.0.1:5999/x:1", "", False),  # loopback is always http
        ("localhost:5999/x:1", "", False),
    ],
)
def test_the_insecure_registries_hint_only_where_it_can_help(
    reference: str, insecure: str, hinted: bool
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    listed = RegistryOptions.from_env({"LOCKD_INSECURE_REGISTRIES": insecure}).insecure
    with pytest.raises(RegistryError) as caught:
        resolve(Script(handler), reference, insecure=listed)
    assert ("LOCKD_INSECURE_REGISTRIES" in caught.value.render()) is hinted
    assert "Check the address, your network and proxy settings" in caught.value.render()


@pytest.mark.parametrize(
    ("reference", "insecure", "scheme"),
    [
        ("127.0.0.1:5000/app:1", "", "http"),
        ("localhost:5000/app:1", "", "http"),
        ("[::1]:5000/app:1", "", "http"),
        ("registry.internal:5000/app:1", "registry.internal:5000", "http"),
        ("registry.internal/app:1", "registry.internal", "http"),
        ("registry.internal/app:1", "", "https"),
        ("python:3", "", "https"),
    ],
)
def test_plain_http_only_for_loopback_and_listed_registries(
    reference: str, insecure: str, scheme: str
) -> None:
    script = Script(index_answer)
    options = RegistryOptions.from_env({"LOCKD_INSECURE_REGISTRIES": insecure})
    resolve(script, reference, insecure=options.insecure)
    assert {r.url.scheme for r in script.requests} == {scheme}


def env_store(tmp_path: Path, **env: str) -> CredentialStore:
    return CredentialStore({"DOCKER_CONFIG": str(tmp_path), **env})


def test_a_basic_challenge_is_answered_with_credentials(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != "Basic " + base64.b64encode(b"bob:pw").decode():
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="corp"'})
        return index_answer(request)

    store = env_store(
        tmp_path,
        LOCKD_REGISTRY_USERNAME="bob",
        LOCKD_REGISTRY_PASSWORD="pw",
        LOCKD_REGISTRY_HOST="registry.example.com",
    )
    script = Script(handler)
    assert resolve(script, "registry.example.com/app:1", credentials=store) == INDEX_DIGEST
    # Without credentials the 401 is reported with the way to give them.
    with pytest.raises(RegistryError) as caught:
        resolve(Script(handler), "registry.example.com/app:1", credentials=env_store(tmp_path))
    assert "needs credentials" in caught.value.message
    assert "LOCKD_REGISTRY_HOST=registry.example.com" in (caught.value.hint or "")


def test_secrets_never_travel_over_plain_http_to_a_remote_realm(tmp_path: Path) -> None:
    token_requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example.com":
            token_requests.append(request)
            return httpx.Response(200, json={"access_token": "t0k"})
        if request.headers.get("Authorization") != "Bearer t0k":
            challenge = 'Bearer realm="http://auth.example.com/token",service="reg"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return index_answer(request)

    store = env_store(tmp_path, LOCKD_REGISTRY_USERNAME="bob", LOCKD_REGISTRY_PASSWORD="pw")
    assert resolve(Script(handler), "python:3", credentials=store) == INDEX_DIGEST
    assert len(token_requests) == 1  # fetched once, then reused for the GET
    assert "Authorization" not in token_requests[0].headers
    assert dict(token_requests[0].url.params) == {
        "scope": "repository:library/python:pull",
        "service": "reg",
    }


def test_credentials_from_the_environment_go_to_one_registry_only(tmp_path: Path) -> None:
    env = {"LOCKD_REGISTRY_USERNAME": "bob", "LOCKD_REGISTRY_PASSWORD": "pw"}
    store = env_store(tmp_path, **env)
    hub = store.lookup("docker.io")
    assert hub is not None
    assert (hub.username, hub.password) == ("bob", "pw")
    assert store.lookup("ghcr.io") is None
    assert env_store(tmp_path, **env, LOCKD_REGISTRY_HOST="ghcr.io").lookup("docker.io") is None


def test_docker_config_auths_are_read_from_docker_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw1").decode()},
                    "ghcr.io": {"username": "gh", "password": "pw2"},
                    "https://registry.example.com:5000/v2/": {"auth": "not base64!"},
                }
            }
        )
    )
    store = env_store(tmp_path)
    hub, ghcr = store.lookup("docker.io"), store.lookup("ghcr.io")
    assert hub is not None
    assert ghcr is not None
    assert (hub.username, hub.password, hub.source) == ("hub", "pw1", str(tmp_path / "config.json"))
    assert (ghcr.username, ghcr.password) == ("gh", "pw2")
    assert store.lookup("registry.example.com:5000") is None
    (tmp_path / "config.json").write_text("{not json")
    assert env_store(tmp_path).lookup("docker.io") is None


def test_credential_helpers_are_asked_like_docker_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-fake"
    helper.write_text(
        "#!/bin/sh\n"
        "read server\n"
        'if [ "$server" = "https://index.docker.io/v1/" ]; then\n'
        '  echo \'{"ServerURL": "x", "Username": "helper-user", "Secret": "helper-pw"}\'\n'
        "else\n"
        "  echo 'credentials not found in native keychain'; exit 1\n"
        "fi\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "fake"}))
    store = env_store(tmp_path)
    found = store.lookup("docker.io")
    assert found is not None
    assert (found.username, found.password, found.source) == (
        "helper-user",
        "helper-pw",
        "docker-credential-fake",
    )
    assert store.lookup("ghcr.io") is None
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {"ghcr.io": "missing"}}))
    assert env_store(tmp_path).lookup("ghcr.io") is None


def test_no_repr_shows_a_secret(tmp_path: Path) -> None:
    store = env_store(tmp_path, LOCKD_REGISTRY_USERNAME="bob", LOCKD_REGISTRY_PASSWORD="hunter2")
    creds = store.lookup("docker.io")
    options = RegistryOptions(credentials=store)
    with RegistryClient(options) as client:
        shown = " ".join(map(repr, (creds, store, options, client)))
    assert "hunter2" not in shown
    assert base64.b64encode(b"bob:hunter2").decode() not in shown


def test_a_single_manifest_records_its_platform_from_the_config() -> None:
    config = json.dumps({"os": "linux", "architecture": "arm64", "variant": "v8"}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        if "/blobs/" in request.url.path:
            # Blobs usually live behind a redirect to storage.
            if request.url.host != "storage.example.com":
                return httpx.Response(
                    307, headers={"Location": "https://storage.example.com/blobs/x"}
                )
            return httpx.Response(200, content=config)
        headers = {"Docker-Content-Digest": digest_of(manifest), "Content-Type": DOCKER_MANIFEST}
        return httpx.Response(200, headers=headers, content=manifest)

    with RegistryClient(Script(handler).options()) as client:
        image = client.resolve("ghcr.io/org/app:1")
    assert [(p.oci_platform, p.digest) for p in image.platforms] == [
        ("linux/arm64/v8", digest_of(manifest))
    ]

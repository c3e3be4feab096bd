"""Registry auth against a real registry with ``auth: token`` and a token server on 127.0.0.1.

The registry (distribution 2.8) challenges with ``WWW-Authenticate: Bearer
realm=…,service=…,scope=…`` and verifies the JWTs the token server signs, as
Docker Hub and auth.docker.io do. ``private/*`` needs a user; the rest is public.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockd.errors import RegistryError
from lockd.images import CredentialStore, RegistryClient, RegistryOptions
from tests.conftest import Run, hermetic_env, run_lockd
from tests.support.registry import PushedImage, Pusher, Registry, TokenServer, run_registry

USER, PASSWORD = "alice", "correct-horse-battery-staple"


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    server = TokenServer(tmp_path_factory.mktemp("token"), {USER: PASSWORD}).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry(
    tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer
) -> Iterator[Registry]:
    with run_registry(tmp_path_factory.mktemp("auth-registry"), auth=token_server.auth()) as reg:
        yield reg


@pytest.fixture(scope="session")
def images(registry: Registry, token_server: TokenServer) -> dict[str, PushedImage]:
    pusher = Pusher(registry.url, token=token_server.issue)
    try:
        return {
            "public": pusher.index("public/app", "1.0"),
            "private": pusher.image("private/app", "1.0"),
        }
    finally:
        pusher.close()


def resolver(tmp_path: Path, **env: str) -> RegistryClient:
    store = CredentialStore({"DOCKER_CONFIG": str(tmp_path), **env})
    return RegistryClient(RegistryOptions(credentials=store, sleep=lambda _: None))


def env_credentials(registry: Registry, password: str = PASSWORD) -> dict[str, str]:
    return {
        "LOCKD_REGISTRY_USERNAME": USER,
        "LOCKD_REGISTRY_PASSWORD": password,
        "LOCKD_REGISTRY_HOST": registry.host,
    }


def lockd(tmp_path: Path, registry: Registry, password: str, *args: str) -> Run:
    env = hermetic_env(tmp_path, DOCKER_CONFIG=str(tmp_path), **env_credentials(registry, password))
    return run_lockd(*args, cwd=tmp_path, env=env, timeout=120)


def test_anonymous_bearer_token_for_a_public_image(
    registry: Registry, token_server: TokenServer, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    seen = len(token_server.requests)
    with resolver(tmp_path) as client:
        image = client.resolve(registry.ref("public/app", "1.0"))
    assert image.index_digest == images["public"].digest
    (request,) = token_server.requests[seen:]  # one token, reused for HEAD and GET
    assert request.scopes == ["repository:public/app:pull"]
    assert request.service == TokenServer.service
    assert request.authorization is None


def test_the_access_token_spelling_is_understood(
    registry: Registry, token_server: TokenServer, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    token_server.token_field = "access_token"
    try:
        with resolver(tmp_path) as client:
            digest = client.digest(registry.ref("public/app", "1.0"))
    finally:
        token_server.token_field = "token"
    assert digest == images["public"].digest


def test_a_private_image_without_credentials_says_how_to_log_in(
    registry: Registry, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    with resolver(tmp_path) as client, pytest.raises(RegistryError) as caught:
        client.resolve(registry.ref("private/app", "1.0"))
    assert caught.value.message == (
        f"The registry refused to let lockd pull {registry.host}/private/app (401): the "
        "repository does not exist or needs credentials."
    )
    hint = caught.value.hint or ""
    assert f"docker login {registry.host}" in hint
    assert f"LOCKD_REGISTRY_HOST={registry.host}" in hint


def test_credentials_from_the_environment(
    registry: Registry, token_server: TokenServer, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    seen = len(token_server.requests)
    with resolver(tmp_path, **env_credentials(registry)) as client:
        image = client.resolve(registry.ref("private/app", "1.0"))
    assert image.index_digest == images["private"].digest
    users = {r.user for r in token_server.requests[seen:]}
    assert users == {USER}  # sent to the realm as basic auth, as docker does


def test_credentials_from_docker_config(
    registry: Registry, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    with resolver(tmp_path) as client:
        assert client.digest(registry.ref("private/app", "1.0")) == images["private"].digest


def test_a_wrong_password_is_refused_by_the_token_service(
    registry: Registry, token_server: TokenServer, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    with (
        resolver(tmp_path, **env_credentials(registry, "not-the-pw-42")) as client,
        pytest.raises(RegistryError) as caught,
    ):
        client.resolve(registry.ref("private/app", "1.0"))
    assert caught.value.message == (
        f"The token service {token_server.realm} refused the credentials from "
        f"LOCKD_REGISTRY_USERNAME/PASSWORD to pull {registry.host}/private/app (401)."
    )
    assert "not-the-pw-42" not in caught.value.render()


def test_credentials_never_appear_in_any_output(
    registry: Registry, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    ref = registry.ref("private/app", "1.0")
    (tmp_path / "Dockerfile").write_text(f"FROM {ref}\n")
    runs = [
        lockd(tmp_path, registry, PASSWORD, "images", "resolve", ref, "--format", "json"),
        lockd(tmp_path, registry, PASSWORD, "images", "pin", "Dockerfile"),
        lockd(
            tmp_path,
            registry,
            PASSWORD,
            "images",
            "resolve",
            registry.ref("private/app", "missing"),
        ),
        lockd(tmp_path, registry, "x" + PASSWORD, "images", "resolve", ref),
    ]
    assert [r.returncode for r in runs] == [0, 0, 3, 3]
    assert images["private"].digest in runs[0].stdout
    assert images["private"].digest in runs[1].stdout
    secrets = (PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    for run in runs:
        assert "Traceback" not in run.output
        for secret in secrets:
            assert secret not in run.output

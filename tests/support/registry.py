"""A real OCI registry on 127.0.0.1, images pushed to it in code, and a token server.

* ``run_registry`` starts Debian's ``docker-registry`` (distribution 2.8) on a
  free loopback port with a throw-away config and storage, waits until
  ``/v2/`` answers (polling, with a deadline), and stops it afterwards.
* ``Pusher`` builds tiny real images (a gzip tar layer, an image config, a
  manifest) and pushes them through the OCI push API: ``POST`` + ``PUT`` blob
  uploads, then ``PUT`` of the manifest, index or manifest list.
* ``TokenServer`` is the registry's ``auth: token`` service, as Docker Hub's
  auth.docker.io is: it checks basic credentials and issues RS256 JWTs with an
  ``x5c`` certificate the registry trusts through ``rootcertbundle``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import secrets
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import yaml

from tests.support.pyindex import QuietHTTPServer

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
IN_TOTO = "application/vnd.in-toto+json"

READY_DEADLINE_S = 30.0


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the registry ----------------------------------------------------------------


@dataclass
class Registry:
    host: str  # "127.0.0.1:PORT", as image references name it
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def ref(self, repository: str, tag: str = "latest") -> str:
        return f"{self.host}/{repository}:{tag}"


@dataclass(frozen=True)
class TokenAuth:
    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


def registry_binary() -> str:
    binary = shutil.which("docker-registry")
    if binary is None:
        # Not a skip: CI installs it (.ci/run), and a silent skip would hide the registry tests.
        raise RuntimeError(
            "docker-registry is not installed; run `apt-get install docker-registry` "
            "(Debian's distribution 2.8 package; .ci/run installs it)."
        )
    return binary


@contextmanager
def run_registry(workdir: Path, *, auth: TokenAuth | None = None) -> Iterator[Registry]:
    """A registry on 127.0.0.1 with its storage in ``workdir``; stopped on exit."""
    binary = registry_binary()
    port = free_port()
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "storage")},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    if auth is not None:
        config["auth"] = {
            "token": {
                "realm": auth.realm,
                "service": auth.service,
                "issuer": auth.issuer,
                "rootcertbundle": str(auth.rootcertbundle),
            }
        }
    config_path = workdir / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    log = workdir / "registry.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "serve", str(config_path)], stdout=out, stderr=subprocess.STDOUT
        )
    registry = Registry(f"127.0.0.1:{port}", process, log)
    try:
        _wait_ready(registry)
        yield registry
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(registry: Registry) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if registry.process.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited ({registry.process.returncode}):\n"
                    + registry.log.read_text(errors="replace")
                )
            try:
                if client.get(f"{registry.url}/v2/").status_code in (200, 401):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling interval, not a wait for readiness
    raise RuntimeError(
        f"docker-registry did not answer within {READY_DEADLINE_S} s:\n"
        + registry.log.read_text(errors="replace")
    )


# -- images, pushed through the OCI push API ---------------------------------------


@dataclass(frozen=True)
class PushedImage:
    digest: str  # what the tag points at
    children: dict[str, str] = field(default_factory=dict)  # "os/arch[/variant]" -> digest
    attestations: tuple[str, ...] = ()


def layer_for(text: str) -> tuple[bytes, str]:
    """A real gzip'd tar with one file; returns (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = text.encode()
        info = tarfile.TarInfo("etc/lockd-test")
        info.size, info.mtime = len(data), 0
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0), digest_of(raw.getvalue())


class Pusher:
    """Pushes blobs and manifests; ``token(scope)`` gives a bearer token when auth is on."""

    def __init__(self, base_url: str, token: Callable[[str], str] | None = None) -> None:
        self.base = base_url.rstrip("/")
        self._token = token
        self._http = httpx.Client(timeout=10.0)

    def close(self) -> None:
        self._http.close()

    def _headers(self, repo: str, **extra: str) -> dict[str, str]:
        if self._token is not None:
            extra["Authorization"] = "Bearer " + self._token(f"repository:{repo}:pull,push,delete")
        return extra

    def blob(self, repo: str, data: bytes, media_type: str) -> dict[str, Any]:
        digest = digest_of(data)
        started = self._http.post(
            f"{self.base}/v2/{repo}/blobs/uploads/", headers=self._headers(repo)
        )
        assert started.status_code == 202, started.text
        location = httpx.URL(urljoin(f"{self.base}/", started.headers["Location"]))
        # The upload URL carries state in its query; the digest is added to it, not swapped in.
        done = self._http.put(
            location.copy_merge_params({"digest": digest}),
            content=data,
            headers=self._headers(repo, **{"Content-Type": "application/octet-stream"}),
        )
        assert done.status_code == 201, done.text
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def manifest(self, repo: str, reference: str, document: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(document, indent=2).encode()
        media_type = document["mediaType"]
        response = self._http.put(
            f"{self.base}/v2/{repo}/manifests/{reference}",
            content=body,
            headers=self._headers(repo, **{"Content-Type": media_type}),
        )
        assert response.status_code == 201, response.text
        assert response.headers["Docker-Content-Digest"] == digest_of(body)
        return {"mediaType": media_type, "digest": digest_of(body), "size": len(body)}

    def platform_manifest(
        self, repo: str, platform: str, *, docker: bool = False, salt: str = ""
    ) -> dict[str, Any]:
        """Push one platform's image (config + layer + manifest) by digest."""
        os_, arch, *variant = platform.split("/")
        layer, diff_id = layer_for(f"{platform} {salt}")
        config: dict[str, Any] = {
            "architecture": arch,
            "os": os_,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "config": {"Env": ["PATH=/usr/bin"]},
        }
        if variant:
            config["variant"] = variant[0]
        config_desc = self.blob(
            repo, json.dumps(config).encode(), DOCKER_CONFIG if docker else OCI_CONFIG
        )
        layer_desc = self.blob(repo, layer, DOCKER_LAYER if docker else OCI_LAYER)
        document = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": config_desc,
            "layers": [layer_desc],
        }
        return self.manifest(repo, digest_of(json.dumps(document, indent=2).encode()), document)

    def image(
        self, repo: str, tag: str, platform: str = "linux/amd64", *, salt: str = ""
    ) -> PushedImage:
        """A single-platform image: the tag points at its manifest."""
        os_, arch, *variant = platform.split("/")
        layer, diff_id = layer_for(f"{platform} {salt}")
        config = {
            "architecture": arch,
            "os": os_,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        if variant:
            config["variant"] = variant[0]
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.blob(repo, json.dumps(config).encode(), OCI_CONFIG),
            "layers": [self.blob(repo, layer, OCI_LAYER)],
        }
        return PushedImage(self.manifest(repo, tag, document)["digest"], {platform: ""})

    def index(
        self,
        repo: str,
        tag: str,
        platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64/v8"),
        *,
        docker: bool = False,
        attestation: bool = True,
        salt: str = "",
    ) -> PushedImage:
        """A multi-platform image: an OCI index (with BuildKit-style attestations) or a
        Docker manifest list; the tag points at the index."""
        entries: list[dict[str, Any]] = []
        children: dict[str, str] = {}
        attestations: list[str] = []
        for platform in platforms:
            desc = self.platform_manifest(repo, platform, docker=docker, salt=salt)
            os_, arch, *variant = platform.split("/")
            entry = {**desc, "platform": {"architecture": arch, "os": os_}}
            if variant:
                entry["platform"]["variant"] = variant[0]
            entries.append(entry)
            children[platform] = desc["digest"]
            if attestation and not docker:
                att = self._attestation(repo, desc["digest"])
                attestations.append(att["digest"])
                entries.append(
                    {
                        **att,
                        "platform": {"architecture": "unknown", "os": "unknown"},
                        "annotations": {
                            "vnd.docker.reference.digest": desc["digest"],
                            "vnd.docker.reference.type": "attestation-manifest",
                        },
                    }
                )
        document = {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST if docker else OCI_INDEX,
            "manifests": entries,
        }
        return PushedImage(
            self.manifest(repo, tag, document)["digest"], children, tuple(attestations)
        )

    def _attestation(self, repo: str, subject: str) -> dict[str, Any]:
        statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "subject": subject})
        config = {
            "architecture": "unknown",
            "os": "unknown",
            "rootfs": {"type": "layers", "diff_ids": []},
        }
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.blob(repo, json.dumps(config).encode(), OCI_CONFIG),
            "layers": [self.blob(repo, statement.encode(), IN_TOTO)],
        }
        return self.manifest(repo, digest_of(json.dumps(document, indent=2).encode()), document)

    def delete(self, repo: str, digest: str) -> None:
        """Delete a manifest; distribution removes the tags that point at it too."""
        response = self._http.delete(
            f"{self.base}/v2/{repo}/manifests/{digest}", headers=self._headers(repo)
        )
        assert response.status_code == 202, response.text


# -- the token server ---------------------------------------------------------------


@dataclass
class TokenRequest:
    scopes: list[str]
    service: str | None
    user: str | None  # None: anonymous
    authorization: str | None  # the raw header, to check what a client sent


class TokenServer:
    """Docker-Hub-style token service on 127.0.0.1 for a registry with ``auth: token``.

    Repositories under ``private/`` need a known user; others are public.
    """

    issuer = "lockd-test-issuer"
    service = "lockd-test-registry"

    def __init__(self, workdir: Path, users: dict[str, str]) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.users = users
        self.requests: list[TokenRequest] = []
        # Docker Hub answers "token"; "access_token" is the OAuth spelling.
        self.token_field = "token"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lockd test token issuer")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.bundle = workdir / "token-ca.pem"
        self.bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._httpd = QuietHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def realm(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/token"

    def auth(self) -> TokenAuth:
        return TokenAuth(self.realm, self.service, self.issuer, self.bundle)

    def start(self) -> TokenServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def issue(self, scope: str, subject: str = "admin") -> str:
        """A signed token granting ``scope`` (``repository:name:a,b``), for test setup."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        kind, name, actions = scope.split(":")
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": [{"type": kind, "name": name, "actions": actions.split(",")}]
            if actions
            else [],
        }
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def _grant(self, scope: str, user: str | None) -> str:
        kind, name, actions = [*scope.split(":"), "", ""][:3]
        allowed = [a for a in actions.split(",") if a == "pull"]
        if name.startswith("private/") and user is None:
            allowed = []
        return f"{kind}:{name}:{','.join(allowed)}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                header = self.headers.get("Authorization")
                user: str | None = None
                if header:
                    scheme, _, value = header.partition(" ")
                    name, _, password = base64.b64decode(value).decode().partition(":")
                    if scheme.lower() != "basic" or server.users.get(name) != password:
                        server.requests.append(
                            TokenRequest(query.get("scope", []), None, None, header)
                        )
                        self._answer(401, {"details": "incorrect username or password"})
                        return
                    user = name
                scopes = query.get("scope", [])
                server.requests.append(
                    TokenRequest(scopes, (query.get("service") or [None])[0], user, header)
                )
                if (query.get("service") or [None])[0] != server.service:
                    self._answer(400, {"details": "unknown service"})
                    return
                scope = server._grant(scopes[0], user) if scopes else ":::"
                token = (
                    server.issue(scope, subject=user or "")
                    if scopes
                    else server.issue("registry:catalog:")
                )
                self._answer(200, {server.token_field: token, "expires_in": 300})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

"""An OCI distribution client on httpx: tag -> digest, index -> platform digests.

Per reference: ``HEAD /v2/<name>/manifests/<tag>`` for the digest (HEAD does
not count against Docker Hub's pull limit), falling back to ``GET`` when a
registry gives no ``Docker-Content-Digest``; then ``GET`` the manifest *by
digest*, so the body read is the one the tag pointed at, and check its sha256.
A single-platform manifest's platform comes from its config blob.

Auth follows the registry's challenge: an anonymous or credentialed bearer
token from the ``realm`` (Docker Hub's flow), or basic credentials. 5xx and 429
answers are retried a bounded number of times, honouring ``Retry-After``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx

from lockd import __version__
from lockd.errors import ImageNotFoundError, RegistryError, excerpt
from lockd.settings import deadline, env_default
from lockd.transport import DEADLINE_VARIABLE, deadline_client, exceeded
from lockd.urls import shown

from ._auth import Credentials, CredentialStore, parse_challenge
from ._manifest import (
    ACCEPT,
    IMAGE_CONFIG_TYPES,
    INDEX_TYPES,
    PlatformDigest,
    ResolvedImage,
    config_platform,
    index_platforms,
    parse_manifest,
    select_platform,
    sha256_digest,
)
from ._reference import DIGEST_RE, ImageRef, parse_reference

_RETRIED = frozenset({429, 500, 502, 503, 504})


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """How to talk to registries. ``sleep``, ``clock`` and ``transport`` are test seams."""

    insecure: frozenset[str] = frozenset()  # hosts spoken to over http besides loopback
    credentials: CredentialStore | None = None  # None: anonymous only
    timeout: float = 30.0  # per network operation
    deadline: float = 300.0  # per request, whatever the server's pace (LOCKD_HTTP_DEADLINE)
    attempts: int = 4  # per request, for 5xx, 429 and connection failures
    backoff: float = 0.5  # first wait; doubles each attempt
    max_wait: float = 60.0  # a longer Retry-After gives up instead of waiting
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], datetime] = _now
    transport: httpx.BaseTransport | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RegistryOptions:
        """Options from ``LOCKD_*`` variables and Docker's credential configuration."""
        env = os.environ if environ is None else environ
        hosts = env_default("LOCKD_INSECURE_REGISTRIES", env) or ""
        return cls(
            insecure=frozenset(h.strip().lower() for h in hosts.split(",") if h.strip()),
            credentials=CredentialStore(env),
            deadline=deadline(DEADLINE_VARIABLE, env),
        )


class RegistryClient:
    """Resolves image references against OCI registries. Use as a context manager."""

    def __init__(self, options: RegistryOptions | None = None) -> None:
        self._options = options or RegistryOptions()
        self._http = deadline_client(
            self._options.deadline,
            timeout=self._options.timeout,
            transport=self._options.transport,
            follow_redirects=True,  # blobs live behind redirects; httpx drops auth across hosts
            headers={"User-Agent": f"lockd/{__version__}"},
        )
        self._auth: dict[tuple[str, str], str] = {}  # (host, repository) -> Authorization
        self._used: dict[tuple[str, str], Credentials] = {}
        # (host, repository, digest) -> (media type, document): content-addressed, so final.
        self._documents: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = {}

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RegistryClient(insecure={sorted(self._options.insecure)!r})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def digest(self, reference: str | ImageRef) -> str:
        """The digest the reference points at now (for a tag: one HEAD when possible)."""
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        if ref.digest:
            return self._manifest(ref, ref.digest)[0]
        tag = ref.tag or "latest"
        response = self._call(ref, "HEAD", f"/manifests/{tag}", accept=ACCEPT)
        header = str(response.headers.get("Docker-Content-Digest", ""))
        if response.status_code == 200 and DIGEST_RE.fullmatch(header):
            return header
        if response.status_code in _RETRIED or response.status_code in (401, 403):
            self._fail(ref, response)  # a GET would only repeat (and count) the failure
        # No digest header, HEAD refused, or a 404 whose reason only a GET body tells.
        return self._manifest(ref, tag)[0]

    def resolve(self, reference: str) -> ResolvedImage:
        """Resolve a reference to its digest and its platforms' digests."""
        ref = parse_reference(reference)
        digest = self.digest(ref)
        _, media_type, document = self._manifest(ref, digest)
        if media_type in INDEX_TYPES:
            platforms = index_platforms(document)
        else:
            platforms = self._config_platform(ref, digest, media_type, document)
        return ResolvedImage(
            reference=reference.strip(),
            registry=ref.registry,
            repository=ref.repository,
            tag=ref.tag,
            index_digest=digest,
            media_type=media_type,
            platforms=platforms,
            resolved_at=self._options.clock(),
        )

    def image_manifest(
        self, reference: str | ImageRef, platform: str | None
    ) -> tuple[str | None, str, dict[str, Any]]:
        """(index digest or ``None``, manifest digest, manifest) of one platform's image.

        An index is narrowed to ``platform`` (``linux/arm64``), or to its only
        platform, or to this machine's; a single manifest is taken as it is.
        """
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        digest = self.digest(ref)
        _, media_type, document = self._manifest(ref, digest)
        if media_type not in INDEX_TYPES:
            return None, digest, document
        chosen = select_platform(index_platforms(document), platform, _full(ref))
        _, child_type, child = self._manifest(ref, chosen.digest)
        if child_type in INDEX_TYPES:
            raise RegistryError(
                f"{_full(ref)}@{chosen.digest} is an index inside an index, which lockd "
                "does not read.",
                hint="Name the platform's manifest digest directly (REF@sha256:…).",
            )
        return digest, chosen.digest, child

    def blob(self, reference: str | ImageRef, digest: str, *, limit: int) -> bytes:
        """A small blob (an image config), read whole and checked against its digest."""
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        with self.blob_chunks(ref, digest, limit) as chunks:
            data = b"".join(chunks)
        if sha256_digest(data) != digest:
            raise RegistryError(
                f"The blob {digest} of {_full(ref)} does not match its digest.",
                hint="A proxy or the registry altered it; try again.",
            )
        return data

    @contextmanager
    def blob_chunks(
        self, reference: str | ImageRef, digest: str, size: int
    ) -> Iterator[Iterator[bytes]]:
        """The raw bytes of a blob as chunks, at most ``size`` of them.

        A connection that breaks mid-blob, or a request that reaches its overall
        deadline (``LOCKD_HTTP_DEADLINE``: a layer of gigabytes can outlast one), is
        resumed with a ``Range`` request; only attempts that bring no new byte
        count against ``attempts``. The caller checks the digest: the bytes pass
        through once and are never held whole.
        """
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        if not DIGEST_RE.fullmatch(digest):
            raise RegistryError(f"{_full(ref)} names a blob with a bad digest {digest!r}.")
        opened: list[httpx.Response] = []

        def chunks() -> Iterator[bytes]:
            received = 0
            failures = 0
            while True:
                before = received
                extra = {"Range": f"bytes={received}-"} if received else {}
                response = self._call(ref, "GET", f"/blobs/{digest}", extra=extra, stream=True)
                opened.append(response)
                if response.status_code not in (200, 206):
                    self._fail(ref, response, digest)
                skip = received if response.status_code == 200 else 0  # Range ignored
                try:
                    for piece in response.iter_bytes():  # as received: resumable from there
                        cut = min(skip, len(piece))
                        chunk, skip = piece[cut:], skip - cut
                        received += len(chunk)
                        if received > size:
                            raise RegistryError(
                                f"The blob {digest} of {_full(ref)} is longer than the "
                                f"{size} bytes its manifest declares.",
                                hint="The registry serves something else than the image "
                                "describes; nothing from it was used.",
                            )
                        if chunk:
                            yield chunk
                    return
                except httpx.TransportError as exc:  # deadlines are ReadTimeouts too
                    failures = 0 if received > before else failures + 1
                    if failures >= self._options.attempts:
                        raise RegistryError(
                            f"The download of blob {digest} of {_full(ref)} broke off after "
                            f"{received} bytes, {failures} times: {exc or type(exc).__name__}.",
                            hint="Check the network and try again.",
                        ) from None
                finally:
                    response.close()

        try:
            yield chunks()
        finally:
            for response in opened:
                response.close()

    # -- manifests and blobs -------------------------------------------------

    def _manifest(self, ref: ImageRef, reference: str) -> tuple[str, str, dict[str, Any]]:
        """GET a manifest by tag or digest: (digest, media type, document), verified."""
        cached = self._documents.get((ref.api_host, ref.repository, reference))
        if cached is not None:
            return (reference, *cached)
        response = self._call(ref, "GET", f"/manifests/{reference}", accept=ACCEPT)
        if response.status_code != 200:
            self._fail(ref, response, reference)
        digest = sha256_digest(response.content)
        header = str(response.headers.get("Docker-Content-Digest", ""))
        expected = reference if reference.startswith("sha256:") else header
        if expected.startswith("sha256:") and expected != digest:
            raise RegistryError(
                f"The manifest of {_full(ref)} does not match its digest: "
                f"expected {expected}, the bytes hash to {digest}.",
                hint="A proxy or the registry altered it; try again, or report it to "
                "the registry's operator.",
            )
        media_type, document = parse_manifest(
            response.content, response.headers.get("Content-Type"), _full(ref)
        )
        self._documents[(ref.api_host, ref.repository, digest)] = (media_type, document)
        return digest, media_type, document

    def image_config(self, reference: str, platform: str) -> dict[str, Any]:
        """The image config (``Env``, ``User``, labels…) of ``reference`` for ``platform``.

        ``platform`` is ``os/arch``; an index is narrowed to that platform's manifest.
        ``{}`` for an artifact that is not a runnable image.
        """
        image = self.resolve(reference)
        ref = parse_reference(reference)
        digest = image.for_platform(platform).digest if image.is_index else image.index_digest
        _, _, document = self._manifest(ref, digest)
        return self._config_blob(ref, document) or {}

    def _config_platform(
        self, ref: ImageRef, digest: str, media_type: str, document: Mapping[str, Any]
    ) -> tuple[PlatformDigest, ...]:
        data = self._config_blob(ref, document)
        return config_platform(data, digest, media_type) if data is not None else ()

    def _config_blob(self, ref: ImageRef, document: Mapping[str, Any]) -> dict[str, Any] | None:
        """The config blob a manifest names, verified; ``None`` when it names none."""
        config = document.get("config")
        if not isinstance(config, dict) or config.get("mediaType") not in IMAGE_CONFIG_TYPES:
            return None  # an artifact, not a runnable image
        blob = str(config.get("digest", ""))
        if not DIGEST_RE.fullmatch(blob):
            return None
        response = self._call(ref, "GET", f"/blobs/{blob}")
        if response.status_code != 200:
            self._fail(ref, response, blob)
        if sha256_digest(response.content) != blob:
            raise RegistryError(
                f"The config blob {blob} of {_full(ref)} does not match its digest.",
                hint="A proxy or the registry altered it; try again.",
            )
        try:
            data = json.loads(response.content)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    # -- HTTP, auth and retries ----------------------------------------------

    def _call(
        self,
        ref: ImageRef,
        method: str,
        path: str,
        *,
        accept: str | None = None,
        extra: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        url = f"{self._scheme(ref.api_host)}://{ref.api_host}/v2/{ref.repository}{path}"
        key = (ref.api_host, ref.repository)
        headers = {**({"Accept": accept} if accept else {}), **(extra or {})}
        response = self._send(method, url, {**headers, **self._auth_header(key)}, stream=stream)
        # Once more after answering a challenge (or replacing a refused cached token).
        if response.status_code == 401 and self._authenticate(ref, response):
            response = self._send(method, url, {**headers, **self._auth_header(key)}, stream=stream)
        return response

    def _auth_header(self, key: tuple[str, str]) -> dict[str, str]:
        return {"Authorization": self._auth[key]} if key in self._auth else {}

    def _authenticate(self, ref: ImageRef, response: httpx.Response) -> bool:
        """Answer a 401's challenge; ``False`` when there is nothing more to try."""
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        key = (ref.api_host, ref.repository)
        creds = self._credentials(ref)
        if challenge is None:
            return False
        if challenge.scheme == "bearer":
            token, creds = self._token(ref, challenge.params, creds)
            header = f"Bearer {token}"
        elif (
            challenge.scheme == "basic"
            and creds is not None
            and self._may_send_secret(response.request.url)
        ):
            header = creds.basic()
        else:
            return False
        if self._auth.get(key) == header:
            return False  # the same answer was already refused
        self._auth[key] = header
        if creds is not None:
            self._used[key] = creds
        return True

    def _token(
        self, ref: ImageRef, params: Mapping[str, str], creds: Credentials | None
    ) -> tuple[str, Credentials | None]:
        """A bearer token from the challenge's realm, and the credentials that were sent."""
        realm = params.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(
                f"{ref.registry} asked for a token without a usable realm ({excerpt(realm)})."
            )
        query = {"scope": f"repository:{ref.repository}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        headers: dict[str, str] = {}
        if creds is not None and self._may_send_secret(httpx.URL(realm)):
            headers["Authorization"] = creds.basic()
        else:
            creds = None
        response = self._send("GET", realm, headers, query)
        if response.status_code in (401, 403):
            who = f"the credentials from {creds.source}" if creds else "anonymous access"
            raise RegistryError(
                f"The token service {shown(realm)} refused {who} to pull {_full(ref)} "
                f"({response.status_code}).",
                hint=_login_hint(ref, creds),
            )
        if response.status_code != 200:
            self._fail(ref, response)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        # Docker Hub answers "token"; OAuth-style services answer "access_token".
        token = (
            answer.get("token") or answer.get("access_token") if isinstance(answer, dict) else None
        )
        if not isinstance(token, str) or not token:
            raise RegistryError(f"The token service {shown(realm)} answered without a token.")
        return token, creds

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        *,
        stream: bool = False,
    ) -> httpx.Response:
        """One request, retried on connection failures, 5xx and 429 (bounded).

        With ``stream`` a 200/206 answer comes back with its body unread (the caller
        closes it); any other answer is read whole, as without.
        """
        options = self._options
        attempt = 0
        while True:
            attempt += 1
            delay = min(options.backoff * 2 ** (attempt - 1), options.max_wait)
            try:
                request = self._http.build_request(method, url, headers=headers, params=params)
                response = self._http.send(request, stream=stream)
                if stream and response.status_code not in (200, 206):
                    response.read()  # an error body is small; messages need it
                    response.close()
            except httpx.TransportError as exc:
                if attempt >= options.attempts or exceeded(exc):  # a trickle trickles again
                    raise RegistryError(
                        f"Cannot reach the registry at {url}: {exc or type(exc).__name__}.",
                        hint=f"The registry answers too slowly; allow more time with "
                        f"{DEADLINE_VARIABLE}."
                        if exceeded(exc)
                        else self._unreachable_hint(url),
                    ) from None
                options.sleep(delay)
                continue
            if response.status_code not in _RETRIED or attempt >= options.attempts:
                return response
            if response.status_code == 429:
                after = _retry_after(response, options.clock())
                if after is not None and after > options.max_wait:
                    return response  # waiting that long is the user's decision, not ours
                delay = delay if after is None else after
            options.sleep(delay)

    def _credentials(self, ref: ImageRef) -> Credentials | None:
        store = self._options.credentials
        return store.lookup(ref.registry) if store is not None else None

    def _scheme(self, host: str) -> str:
        return "http" if self._is_insecure(host) else "https"

    def _is_insecure(self, host: str) -> bool:
        hostname = urlsplit(f"//{host}").hostname or ""
        if host.lower() in self._options.insecure or hostname in self._options.insecure:
            return True
        if hostname == "localhost":
            return True
        try:
            return ipaddress.ip_address(hostname).is_loopback
        except ValueError:
            return False

    def _unreachable_hint(self, url: str) -> str:
        """Name LOCKD_INSECURE_REGISTRIES only where it could help: an https host that is
        neither loopback (always http) nor listed there already."""
        hint = "Check the address, your network and proxy settings"
        parts = urlsplit(url)
        if parts.scheme == "https" and not self._is_insecure(parts.netloc):
            hint += (
                "; a registry served over plain http must be listed in LOCKD_INSECURE_REGISTRIES"
            )
        return hint + "."

    def _may_send_secret(self, url: httpx.URL) -> bool:
        """Secrets travel over https, or to a loopback / explicitly insecure host."""
        host = url.host if url.port is None else f"{url.host}:{url.port}"
        return url.scheme == "https" or self._is_insecure(host)

    # -- errors ----------------------------------------------------------------

    def _fail(self, ref: ImageRef, response: httpx.Response, what: str | None = None) -> NoReturn:
        status = response.status_code
        url = str(response.request.url.copy_with(query=None))
        what = what or ref.tag or ref.digest or "latest"
        if status == 404:
            if "NAME_UNKNOWN" in _error_codes(response):
                raise ImageNotFoundError(
                    f"The repository {_full(ref)} does not exist.",
                    hint="Check the image name (and the registry host in front of it).",
                )
            raise ImageNotFoundError(
                f"{_full(ref)}@{what} does not exist."
                if what.startswith("sha256:")
                else f"The tag {what} of {_full(ref)} does not exist (never pushed, or deleted).",
                hint="Check the tag on the registry; a deleted tag must be replaced by another.",
            )
        if status in (401, 403):
            raise RegistryError(
                f"The registry refused to let lockd pull {_full(ref)} ({status}): the "
                "repository does not exist or needs credentials.",
                hint=_login_hint(ref, self._used.get((ref.api_host, ref.repository))),
            )
        if status == 429:
            after = response.headers.get("Retry-After")
            wait = f" (the registry asks to wait {after} s)" if after else ""
            raise RegistryError(
                f"The registry {ref.registry} rate-limited lockd's requests for {_full(ref)} "
                f"and the retries ran out{wait}.",
                hint="Log in for a higher limit (docker login, or LOCKD_REGISTRY_USERNAME and "
                "LOCKD_REGISTRY_PASSWORD), or try again later.",
            )
        tries = f" after {self._options.attempts} attempts" if status in _RETRIED else ""
        raise RegistryError(
            f"{url} answered {status}{tries}.",
            hint="The registry is failing or refuses the request; try again later.",
        )


def resolve_images(
    references: Iterable[str], options: RegistryOptions | None = None
) -> tuple[ResolvedImage, ...]:
    """Resolve each distinct reference, in order (the ``lockd images resolve`` use case)."""
    unique = list(dict.fromkeys(r.strip() for r in references))
    for reference in unique:
        parse_reference(reference)  # every reference is checked before any request
    with RegistryClient(options) as client:
        return tuple(client.resolve(reference) for reference in unique)


def _full(ref: ImageRef) -> str:
    """``docker.io/library/python``: the registry and repository, unambiguous in messages."""
    return f"{ref.registry}/{ref.repository}"


def _login_hint(ref: ImageRef, creds: Credentials | None) -> str:
    if creds is not None:
        return f"Check the credentials from {creds.source}: they may be wrong or lack pull access."
    return (
        f"If the image is private, log in (docker login {ref.registry}) or set "
        f"LOCKD_REGISTRY_USERNAME, LOCKD_REGISTRY_PASSWORD and LOCKD_REGISTRY_HOST={ref.registry}; "
        "otherwise check the image name."
    )


def _retry_after(response: httpx.Response, now: datetime) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError):
        return None


def _error_codes(response: httpx.Response) -> set[str]:
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return set()
    return {str(e.get("code")) for e in errors if isinstance(e, dict)}

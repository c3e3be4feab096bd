"""``lockd snapshot --post``: send a snapshot to a lockd server, read back the drift report.

The stdlib probe (:mod:`lockd.snapshot._probe`) can post on its own from an
image that has nothing but a Python; this use case sends lockd's full snapshot
(system facts included) the same way, with lockd's own HTTP client: the whole
exchange ends within ``LOCKD_HTTP_DEADLINE`` however slowly a server answers,
and an answer larger than ``MAX_ANSWER`` is not read. The probe's ``outcome``
turns the answer into an exit code and one line, for both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import (
    EXIT_USAGE,
    ConfigError,
    ServerError,
    ServerRefusedError,
    UsageError,
    excerpt,
    sentence,
)
from ..settings import deadline
from ..snapshot import Snapshot
from ..snapshot._probe import outcome
from ..transport import deadline_client
from ..urls import redact, shown

CONNECT_TIMEOUT_S = 30.0
MAX_ANSWER = 64 << 20  # a drift report is a few KiB; a server that sends more is not lockd


@dataclass(frozen=True, slots=True)
class PostRequest:
    url: str
    project: str
    target: str
    deployment: str
    lockset: str | None = None


def check_post_request(request: PostRequest, environ: Mapping[str, str] | None = None) -> str:
    """The token to send; a usage error when a flag or ``LOCKD_TOKEN`` is missing."""
    env = os.environ if environ is None else environ
    missing = [
        flag
        for flag, value in (
            ("--project", request.project),
            ("--target", request.target),
            ("--deployment", request.deployment),
        )
        if not value
    ]
    if missing:
        raise UsageError(
            "--post needs " + ", ".join(missing) + ".",
            hint="Name the project, the target this environment runs and this deployment.",
        )
    if not request.url.startswith(("http://", "https://")):
        raise UsageError(
            f"--post takes the server's http(s) URL, not {excerpt(request.url)}.",
            hint="For example --post https://lockd.example/.",
        )
    if "@" in urlsplit(request.url).netloc:
        raise UsageError(
            "The --post URL carries credentials (user:password@), which would replace the "
            "token: lockd authenticates with LOCKD_TOKEN only.",
            hint="Remove them from the URL, for example --post https://lockd.example/.",
        )
    token = env.get("LOCKD_TOKEN", "")
    if not token:
        raise ConfigError(
            "--post needs a token in LOCKD_TOKEN.",
            hint="Create one with `lockd tokens create NAME --scope ingest` on the server.",
        )
    return token


def post_snapshot(
    snapshot: Snapshot, request: PostRequest, environ: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    """(exit code 0 or 1, the report JSON, one line for a person); ``ServerRefusedError`` when
    the server refuses the request, ``ServerError`` when there is no report to read."""
    token = check_post_request(request, environ)
    query = {"project": request.project, "target": request.target, "deployment": request.deployment}
    if request.lockset:
        query["lockset"] = request.lockset
    body = json.dumps(snapshot.to_dict()).encode()
    seconds = deadline("LOCKD_HTTP_DEADLINE", environ)
    status, answer = _post(request.url, body, query, token, seconds)
    code, line = outcome(status, answer)
    message = sentence(line[:1].upper() + line[1:])
    if code == EXIT_USAGE:
        raise ServerRefusedError(
            message,
            hint="Check LOCKD_TOKEN: posting needs a token with the ingest scope "
            "(`lockd tokens create NAME --scope ingest` on the server)."
            if status in (401, 403)
            else None,
        )
    if code not in (0, 1):
        raise ServerError(message)
    return code, json.dumps(json.loads(answer), indent=2, sort_keys=True) + "\n", line


def _post(
    url: str, body: bytes, query: dict[str, str], token: str, seconds: float
) -> tuple[int, bytes]:
    """(HTTP status, answer body); status 0 when there was no answer (the body says why).

    The token travels in the Authorization header only and is never part of a message.
    """
    import httpx

    endpoint = url.rstrip("/") + "/api/v1/snapshots"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    timeout = httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT_S))
    try:
        with (
            deadline_client(seconds, timeout=timeout) as client,
            client.stream("POST", endpoint, params=query, content=body, headers=headers) as answer,
        ):
            received = bytearray()
            for chunk in answer.iter_bytes():
                received += chunk
                if len(received) > MAX_ANSWER:
                    return 0, f"{shown(url)} answered more than {MAX_ANSWER >> 20} MiB".encode()
            return answer.status_code, bytes(received)
    except httpx.HTTPError as exc:
        return 0, f"{shown(url)}: {redact(str(exc))}".encode()

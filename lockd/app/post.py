"""``lockd snapshot --post``: send a snapshot to a lockd server, read back the drift report.

The protocol lives in the stdlib probe (:mod:`lockd.snapshot._probe`), which
can post on its own from an image that has nothing but a Python; this use
case sends lockd's full snapshot (system facts included) through it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError, UsageError
from ..snapshot import Snapshot
from ..snapshot._probe import outcome, post

TIMEOUT_S = 60.0


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
            f"--post takes the server's http(s) URL, not {request.url[:100]!r}.",
            hint="For example --post https://lockd.example/.",
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
    """(exit code, the report JSON or "", one line for a person)."""
    token = check_post_request(request, environ)
    query = {"project": request.project, "target": request.target, "deployment": request.deployment}
    if request.lockset:
        query["lockset"] = request.lockset
    body = json.dumps(snapshot.to_dict()).encode()
    status, answer = post(request.url, body, query, token, TIMEOUT_S)
    code, line = outcome(status, answer)
    report = (
        json.dumps(json.loads(answer), indent=2, sort_keys=True) + "\n" if status == 200 else ""
    )
    return code, report, line

"""Starting ``lockd serve``: uvicorn with one process or several over one database.

The store is opened (and migrated) before uvicorn listens, so a bad database
is a one-paragraph error. With ``workers > 1`` the workers are new processes
that read their configuration from the environment, each listening on its own
socket (``workers``), and prometheus-client's multiprocess mode keeps their
metrics in a scratch directory lockd owns.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import UsageError, excerpt
from ..settings import ServerSettings

if TYPE_CHECKING:
    from ..store import Store

_FACTORY = "lockd.server:from_environment"  # each worker's application, built from the environment


@dataclass(frozen=True, slots=True)
class ServeRequest:
    database_url: str
    host: str = "127.0.0.1"
    port: int = 8080
    public_read: bool = False
    workers: int = 1
    log_level: str = "info"


def serve(request: ServeRequest) -> None:
    """Serve until SIGTERM or Ctrl-C, then shut down gracefully (30 s at most)."""
    import uvicorn

    from ..scratch import scratch_dir
    from ..store import Store
    from .app import create_app, log_config, steady_heap
    from .workers import BalancedWorkers, balanced_workers_supported, bind_listeners

    settings = ServerSettings.from_env()
    if request.public_read:
        settings = replace(settings, public_read=True)
    _check_address(request.host, request.port)
    store = Store(request.database_url)  # migrated before listening
    _warn_without_tokens(store)
    # uvicorn shuts down on SIGTERM and SIGINT, then raises the signal again: let it end
    # the process as a signal does, not as the CLI's "resolvers stopped" interruption.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    options: dict[str, Any] = {
        "host": request.host,
        "port": request.port,
        "log_config": log_config(request.log_level),
        "access_log": False,  # lockd writes its own JSON access lines
        "server_header": False,
        "timeout_graceful_shutdown": 30,
    }
    if request.workers == 1:
        app = create_app(store, settings)
        steady_heap()
        uvicorn.run(app, **options)
        return
    store.close()
    os.environ["LOCKD_DATABASE_URL"] = request.database_url
    os.environ["LOCKD_SERVE_PUBLIC_READ"] = "1" if settings.public_read else "0"
    with scratch_dir("metrics") as metrics:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics))
        if not balanced_workers_supported():
            uvicorn.run(_FACTORY, factory=True, workers=request.workers, **options)
            return
        config = uvicorn.Config(_FACTORY, factory=True, workers=request.workers, **options)
        try:
            listeners = bind_listeners(request.host, request.port, request.workers, config.backlog)
        except OSError as exc:  # taken since _check_address looked
            raise _cannot_listen(request.host, request.port, exc) from None
        scheme_host = f"[{request.host}]" if ":" in request.host else request.host
        logging.getLogger("uvicorn.error").info(
            "lockd serve running on http://%s:%d (%d workers, a socket each)",
            scheme_host,
            request.port,
            request.workers,
        )
        try:
            BalancedWorkers(config, listeners).run()
        finally:
            for listener in listeners:
                listener.close()


def _warn_without_tokens(store: Store) -> None:
    """A server whose database holds no usable token refuses every write (and every read
    without --public-read): likely a new database at a mistyped --db. Said once, at start."""
    now = datetime.now(UTC)
    if any(token.state(now) == "active" for token in store.tokens()):
        return
    sys.stderr.write(
        f"warning: the database {store.where} holds no active token: every request that "
        "needs one will be refused (a new database? check --db / LOCKD_DATABASE_URL). "
        "Create one with `lockd tokens create NAME --scope ingest --db URL`.\n"
    )


def _check_address(host: str, port: int) -> None:
    """Refuse, in one paragraph, an address the server could not listen on (in use, not ours).

    uvicorn would log the error as JSON and exit; a user needs to read what to change.
    """
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise UsageError(
            f"--host {excerpt(host)} is not an address this machine has ({exc.strerror or exc}).",
            hint="Use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface).",
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise _cannot_listen(host, port, exc) from None


def _cannot_listen(host: str, port: int, exc: OSError) -> UsageError:
    import errno

    why = {
        errno.EADDRINUSE: "something else already listens there",
        errno.EACCES: "ports below 1024 need privileges",
        errno.EADDRNOTAVAIL: "this machine has no such address",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    return UsageError(
        f"lockd serve cannot listen on {host}:{port}: {why}.",
        hint="Pick another --port (or --host), or stop what listens there.",
    )

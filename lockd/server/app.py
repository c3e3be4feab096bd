"""The FastAPI application: configuration, error answers, access log and metrics.

``create_app`` takes an open ``Store`` (``lockd serve`` opens and migrates it
before uvicorn starts, so a bad database is a one-paragraph error, not a
traceback in a server log) and closes it when the server shuts down.
"""

from __future__ import annotations

import gc
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..app.fleet import Fleet
from ..app.tokens import PREFIX as TOKEN_PREFIX
from ..errors import FormatError, LockdError, NotFoundError, StoreError, UsageError
from ..settings import ServerSettings
from ..store import Store
from ..urls import redact
from .auth import Guard, Refused, require
from .limits import BodyLimit, BodyTooLarge, RateLimiter
from .metrics import CONTENT_TYPE, Metrics

access_log = logging.getLogger("lockd.access")
error_log = logging.getLogger("lockd.server")

# Query parameters whose values never reach a log line, should a client put a secret there.
_SECRET_PARAMS = ("token", "password", "secret", "key", "auth")
_TOKEN = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{16,}")  # a token's shape


def create_app(store: Store, settings: ServerSettings) -> FastAPI:
    """The service over ``store``; the store is closed when the application shuts down."""
    from . import api, dashboard

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(
        title="lockd",
        version=__version__,
        description="Locks, drift reports and the fleet's snapshots of lockd's record.",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.fleet = Fleet(store, settings.stale_after)
    app.state.guard = Guard(
        store, RateLimiter(settings.rate_limit), public_read=settings.public_read
    )
    app.state.metrics = Metrics(store.deployment_counts, settings.stale_after)
    app.include_router(api.ingestion)  # first: see api.ingestion
    app.include_router(api.router)
    app.include_router(dashboard.router)
    _probe_routes(app)
    _error_answers(app)
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET"],
            allow_headers=["Authorization"],
        )
    app.add_middleware(BodyLimit, limit=settings.body_limit)
    app.add_middleware(Observe, metrics=app.state.metrics)
    return app


def from_environment() -> FastAPI:
    """The application of one worker process of ``lockd serve --workers N``.

    ``lockd serve`` migrated the database and put its flags in the environment
    (``LOCKD_DATABASE_URL``, ``LOCKD_SERVE_PUBLIC_READ``) before starting the workers.
    """
    from ..settings import Settings

    app = create_app(Store(Settings.from_env().database_url), ServerSettings.from_env())
    steady_heap()
    return app


# Collections of the youngest generation after this many new objects (Python's default:
# 700). Parsing one posted snapshot makes some 10,000 short-lived objects.
GC_THRESHOLD = (20_000, 10, 10)


def steady_heap() -> None:
    """Tune the garbage collector of a server process once its application is built.

    What exists by then (modules, the application, SQLAlchemy's statement caches)
    lives as long as the process: frozen, the collector never scans it again. And
    with the default threshold it ran a dozen times per posted snapshot; together
    that was a fifth of the CPU time of an ingestion. Cycles are still collected,
    only less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def _probe_routes(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=True, summary="The process answers")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="The database answers and its schema is current")
    async def readyz(request: Request) -> JSONResponse:
        store: Store = request.app.state.store
        ready = await run_in_threadpool(store.schema_current)
        return JSONResponse(
            {"status": "ready" if ready else "not ready"}, status_code=200 if ready else 503
        )

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> Response:
        await run_in_threadpool(require("read"), request)
        body = await run_in_threadpool(request.app.state.metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    @app.get("/probe.py", summary="The stdlib-only probe and poster", response_class=Response)
    def probe() -> Response:
        from importlib import resources

        source = resources.files("lockd.snapshot").joinpath("_probe.py").read_bytes()
        return Response(source, media_type="text/x-python; charset=utf-8")


_STATUS = (
    (NotFoundError, 404),
    (FormatError, 400),
    (UsageError, 400),
    (StoreError, 503),
)


def _error_answers(app: FastAPI) -> None:
    def answer(request: Request, status: int, message: str, headers: dict[str, str]) -> Response:
        if _wants_html(request):
            from .dashboard import error_page

            return error_page(request, status, message, headers)
        return JSONResponse({"detail": message}, status_code=status, headers=headers)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return answer(request, exc.status, exc.message, exc.headers)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge) -> Response:
        return answer(request, exc.status_code, exc.detail, {})

    @app.exception_handler(LockdError)
    async def lockd_error(request: Request, exc: LockdError) -> Response:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
        return answer(request, status, served_message(exc, request.app.state.store), {})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        # Say which parameter and why, without echoing what was sent. A 400, as for every
        # other bad parameter (a `since` that is not a time is lockd's own check).
        problems = [
            f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', 'invalid')}"
            for error in exc.errors()
        ]
        return answer(request, 400, "Invalid request: " + "; ".join(problems) + ".", {})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        error_log.error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
        return answer(request, 500, "Internal error; the server log has the details.", {})


def served_message(exc: LockdError, store: Store) -> str:
    """An error as the server tells it: the CLI's message without the database's location
    (any reader would learn where the server keeps it) and without a hint that names a
    ``lockd`` command (an API client cannot run one; the CLI keeps both)."""
    message = exc.message
    for shown in dict.fromkeys((store.where, store.url)):
        message = message.replace(f"The database {shown}", "This server's database")
        message = message.replace(f"the database {shown}", "this server's database")
        message = message.replace(shown, "this server's database")
    hint = exc.hint if exc.hint and "`lockd" not in exc.hint else None
    return redact(f"{message} {hint}" if hint else message)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/metrics", "/healthz", "/readyz"))


class Observe:
    """Times every request: the latency histogram and one JSON access log line.

    The line holds the method, path, query (secret-looking values redacted),
    status, duration, client and the *name* of the token used; never a header.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.latency.labels(scope["method"], route, str(status)).observe(elapsed)
            caller = (scope.get("state") or {}).get("caller")
            access_log.info(
                "request",
                extra={
                    "http": {
                        "method": scope["method"],
                        "path": scope["path"],
                        "query": _safe_query(scope.get("query_string", b"")),
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "client": (scope.get("client") or ("", 0))[0],
                        "token": getattr(caller, "name", None),
                    }
                },
            )


def _safe_query(raw: bytes) -> str:
    if not raw:
        return ""
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    return urlencode(
        [(_TOKEN.sub("***", k), "***" if _secret(k) else _TOKEN.sub("***", v)) for k, v in pairs]
    )


def _secret(key: str) -> bool:
    """A parameter whose name says it holds a secret (a lockd token anywhere in the query,
    key or value, is masked by its shape)."""
    return any(s in key.lower() for s in _SECRET_PARAMS)


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging configuration: every line one JSON object on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "lockd.server.logs.JsonFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            name: {"handlers": ["stderr"], "level": level.upper(), "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "lockd.access", "lockd.server")
        },
    }

"""The FastAPI application over a :class:`~personae.store.PersonaStore`: the routers of
:mod:`personae.service.routes`, the error answers (one table, :data:`personae.errors.ERROR_KINDS`),
the request guard and the metrics.

No ``from __future__ import annotations`` here: FastAPI reads annotations at definition time.
"""

import contextlib
import logging
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

from personae.errors import PersonaeError, ServiceError, service_error
from personae.lm import CostMeter
from personae.runs import redact, register_secrets
from personae.service._admission import REASONS, TENANT_ADMISSION, Admission, McpAdmission
from personae.service._models import ErrorBody, ErrorDetail, FieldError
from personae.service.deps import ServiceSettings, ServiceState, documented
from personae.store import PersonaStore

try:
    import anyio
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as exc:  # pragma: no cover - the extra is named in the error
    from personae.errors import MissingExtraError

    raise MissingExtraError("service", "the HTTP service") from exc

__all__ = ["ServiceSettings", "create_app", "openapi_schema"]

logger = logging.getLogger("personae.service")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
T = TypeVar("T")

class _Metrics:
    """Prometheus counters of one app: requests, latencies, LM calls and tokens, the job queue,
    admission's refusals and the judge's queue."""

    def __init__(self, store: PersonaStore, meter: CostMeter, admission: Admission) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("personae_http_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("personae_http_request_duration_seconds", "time to answer a request",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
        refused = Counter("personae_requests_refused", "requests refused by admission, by reason (rate_limit, "
                          "tenant_concurrency: 429; queue_full, queue_timeout: 503)", ["reason"],
                          registry=self.registry)
        for reason in REASONS:
            refused.labels(reason)
        admission.refused = lambda reason: refused.labels(reason).inc()
        for name, text, read in (
                ("personae_judge_queue_depth", "judge requests waiting for a slot (every tenant)",
                 lambda: admission.queue.depth),
                ("personae_judge_in_flight", "judgments running (every tenant)", lambda: admission.queue.running),
                ("personae_requests_in_flight", "admitted /v1 and /mcp requests not yet answered (every tenant)",
                 lambda: admission.requests_in_flight)):
            Gauge(name, text, registry=self.registry).set_function(read)
        queue: dict[str, Any] = {"at": 0.0, "counts": {}}

        counters = (("personae_lm_calls", "lm_calls", "LM requests that reached a model"),
                    ("personae_lm_prompt_tokens", "prompt_tokens", "prompt tokens"),
                    ("personae_lm_completion_tokens", "completion_tokens", "completion tokens"))

        class _Live:
            def describe(self) -> Any:
                # Registration asks a collector for its names: answering here keeps it from calling
                # collect(), which would cache the empty queue's counts for the first scrape.
                for name, _, text in counters:
                    yield CounterMetricFamily(name, text)
                yield GaugeMetricFamily("personae_update_jobs", "update jobs by status (every tenant)",
                                        labels=["status"])

            def collect(self) -> Any:
                cost = meter.cost
                for name, attr, text in counters:
                    family = CounterMetricFamily(name, text)
                    family.add_metric([], getattr(cost, attr))
                    yield family
                if time.monotonic() - queue["at"] > 1.0:
                    try:
                        queue["counts"] = store.job_counts()
                    except Exception as exc:  # a scrape must not fail because the database is busy
                        logger.warning("metrics: job counts unavailable: %s", type(exc).__name__)
                    queue["at"] = time.monotonic()
                jobs = GaugeMetricFamily("personae_update_jobs", "update jobs by status (every tenant)",
                                         labels=["status"])
                for status, n in sorted(queue["counts"].items()):
                    jobs.add_metric([status], n)
                yield jobs

        self.registry.register(_Live())

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


def _error_response(error: ServiceError, request_id: str | None, secrets: tuple[str, ...]) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(type=error.kind, message=redact(error.message, secrets), field=error.field,
                                       record=error.record, errors=error.errors, retry_after=error.retry_after,
                                       failure=error.failure, request_id=request_id))
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body.model_dump(exclude_none=True), status_code=error.status, headers=headers)


class _Guard:
    """Outermost layer: a request id, the body size limit, and the request metrics."""

    METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

    def __init__(self, app: ASGIApp, settings: ServiceSettings, metrics: _Metrics, secrets: tuple[str, ...]) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.secrets = secrets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        status = [500]
        started = [False]

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                started[0] = True
                status[0] = int(message["status"])
                elapsed = f"app;dur={1000 * (time.perf_counter() - start):.2f}".encode()   # arrival to answer
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode()),
                                      (b"server-timing", elapsed)]
            await send(message)

        try:
            limit = self.settings.max_body_bytes
            declared = dict(scope.get("headers") or []).get(b"content-length")
            too_large = declared is not None and declared.isdigit() and int(declared) > limit
            if not too_large and scope.get("method") in ("POST", "PUT", "PATCH"):
                chunks, size, more = [], 0, True
                with anyio.move_on_after(self.settings.body_timeout_s) as reading:
                    while more and size <= limit:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            status[0] = 499   # the client went away before its body arrived
                            return
                        chunks.append(message.get("body", b""))
                        size += len(chunks[-1])
                        more = bool(message.get("more_body"))
                if reading.cancelled_caught:   # a body trickled in too slowly: the connection is not held
                    response = _error_response(ServiceError(408, "timeout", "the request body did not arrive "
                                                            f"within {self.settings.body_timeout_s:g} s"),
                                               request_id, self.secrets)
                    await response(scope, receive, send_marked)
                    return
                too_large = size > limit
                body = b"".join(chunks)
                sent = [False]
                arrived = receive   # replay's own: ``receive`` names replay below

                async def replay() -> Message:
                    if not sent[0]:
                        sent[0] = True
                        return {"type": "http.request", "body": body, "more_body": False}
                    return await arrived()   # after the body: the client's disconnect

                receive = replay
            if too_large:
                response = _error_response(ServiceError(413, "payload_too_large",
                                                        f"the request body is over {limit} bytes"),
                                           request_id, self.secrets)
                await response(scope, receive, send_marked)
                return
            try:
                await self.app(scope, receive, send_marked)
            except Exception:   # a bug: answered here, so no traceback with unredacted text reaches any log
                logger.error("request %s (%s %s) failed on a bug:\n%s", request_id, scope.get("method"),
                             scope.get("path"), redact(traceback.format_exc(), self.secrets))
                if not started[0]:
                    response = _error_response(ServiceError(500, "internal", "internal error; the server log has "
                                                            "the details under this request id"),
                                               request_id, self.secrets)
                    await response(scope, receive, send_marked)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = str(scope.get("method"))
            self.metrics.observe(method if method in self.METHODS else "other", template, status[0],
                                 time.perf_counter() - start)


def create_app(store: PersonaStore, *, settings: ServiceSettings | None = None,
               meter: CostMeter | None = None) -> FastAPI:
    """The HTTP API over ``store`` (its root view; each token's tenant gets its own view): the
    routers of :mod:`personae.service.routes` over the store, guarded and measured.

    ``meter`` counts the LM calls the metrics report (the ``serve-api`` command installs one
    for the whole process, updates included); without one, the app counts those its requests make.
    """
    from personae import __version__
    from personae.service.routes import ROUTERS, operations

    settings = settings or ServiceSettings()
    secrets = tuple(s for s in settings.secrets if s)
    register_secrets(*secrets)   # the store's job records and logs redact them too
    own_meter = meter is None
    meter = meter or CostMeter()
    admission = Admission(settings)
    metrics = _Metrics(store, meter, admission)
    store.tokens.cache_s = settings.token_cache_s

    from personae.service.mcp import McpGate, create_mcp, current_caller, current_store

    mcp = create_mcp(current_store, secrets=secrets, caller_for=current_caller)
    mcp_app = mcp.streamable_http_app(streamable_http_path="/", stateless_http=True, json_response=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = max(1, settings.threads)
        async with mcp.session_manager.run():
            yield

    app = FastAPI(title="personae", version=__version__, root_path=settings.root_path,
                  description="Personas and personalized judges for an application's users, kept current from "
                              "their pairwise preferences. The same store is an MCP server at /mcp.",
                  lifespan=lifespan,
                  responses=documented("unauthorized", "forbidden", "payload_too_large", "invalid_request",
                                       "store_unavailable",
                                       store_unavailable="the store's database is unavailable"))
    app.state.service = ServiceState(store, settings, meter, own_meter, secrets)
    app.state.admission = admission

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [FieldError(loc=[str(p) if not isinstance(p, int) else p for p in e.get("loc", ())],
                             msg=str(e.get("msg", "")), type=str(e.get("type", ""))) for e in exc.errors()]
        first = errors[0] if errors else None
        where = ".".join(str(p) for p in first.loc) if first else None
        message = f"{where}: {first.msg}" if first else "malformed request"
        loc = first.loc if first else []
        record = loc[2] + 1 if len(loc) > 2 and loc[:2] == ["body", "preferences"] and isinstance(loc[2], int) \
            else None
        return _error_response(ServiceError(422, "invalid_request", message, field=where, errors=errors[:20],
                                            record=record), getattr(request.state, "request_id", None), secrets)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "no_route", 405: "method_not_allowed"}   # "not_found" is for users and jobs
        if exc.status_code == 400:   # a body that is not JSON, or not UTF-8: malformed like any other
            error = ServiceError(422, "invalid_request", f"body: {exc.detail}", field="body")
        else:
            error = ServiceError(exc.status_code, kinds.get(exc.status_code, "invalid_request"), str(exc.detail))
        response = _error_response(error, getattr(request.state, "request_id", None), secrets)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return _error_response(exc, getattr(request.state, "request_id", None), secrets)

    @app.exception_handler(PersonaeError)
    async def _personae_error(request: Request, exc: PersonaeError) -> JSONResponse:
        return await _mapped(request, exc)

    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    async def _mapped(request: Request, exc: BaseException) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)
        error = service_error(exc, retry_after_s=settings.retry_after_s)
        if error is None:
            logger.error("request %s (%s %s) failed on a bug:\n%s", request_id, request.method, request.url.path,
                         redact("".join(traceback.format_exception(exc)), secrets))
            error = ServiceError(500, "internal", "internal error; the server log has the details under this "
                                                  "request id")
        elif error.status >= 500:
            logger.warning("request %s (%s %s): %d %s", request_id, request.method, request.url.path, error.status,
                           redact(error.message, secrets))
        return _error_response(error, request_id, secrets)

    for database_error in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(database_error, _mapped)
    # no handler for Exception: a bug is answered (500, redacted log) by _Guard, outermost

    for router in ROUTERS:   # health, readiness and metrics are never refused
        guarded = router is not operations.router
        app.include_router(router, dependencies=[TENANT_ADMISSION] if guarded else None,
                           responses=documented("rate_limited") if guarded else None)
    app.mount("/mcp", McpGate(McpAdmission(mcp_app, admission, lambda: current_store().tenant), app.state.service))
    if settings.console:
        from personae.web import ConsoleAccess, mount_console

        service: ServiceState = app.state.service

        def view(tenant: str) -> PersonaStore:   # the same tenant views the API's routes use
            found = service.views.get(tenant)
            if found is None:
                found = service.views[tenant] = store.for_tenant(tenant)
            return found

        mount_console(app, store, ConsoleAccess.tokens(store) if settings.auth else ConsoleAccess.open(), view)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"], expose_headers=["X-Request-ID",
                                                                                            "Retry-After"])
    if not settings.auth:   # one tenant, no tokens: only loopback names, against DNS rebinding from a browser
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"])
    app.add_middleware(_Guard, settings=settings, metrics=metrics, secrets=secrets)
    app.state.metrics = metrics
    app.state.meter = meter
    return app


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI schema the service serves at ``/openapi.json``, from an app over a throwaway
    store (for the docs and the TypeScript client's generated types)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder, \
            PersonaStore(str(Path(folder) / "schema.db"), background=False) as store:
        return create_app(store).openapi()

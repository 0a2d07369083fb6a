"""The FastAPI application over a :class:`~personae.store.PersonaStore`.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations, which
name types local to :func:`create_app`, at definition time.
"""

import dataclasses
import logging
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from personae.errors import ConfigError, DataError, LMCallError, PersonaeError, ServiceError
from personae.lm import CostMeter
from personae.programs import Verdict
from personae.runs import redact, register_secrets
from personae.service._models import (
    USER_ID_PATTERN,
    AddPreferencesRequest,
    ErrorBody,
    ErrorDetail,
    FieldError,
    Forgotten,
    GenerationPrompt,
    Health,
    HistoryOut,
    JudgeRequest,
    PreferenceList,
    RankRequest,
    StoredPreference,
    UserList,
    prompt_text,
)
from personae.signatures import generation_system_prompt
from personae.store import AddResult, Job, PersonaState, PersonaStore, Ranking, UnknownUserError

try:
    import anyio
    from fastapi import Depends, FastAPI, Path, Query, Request, Response, Security
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as exc:  # pragma: no cover - the extra is named in the error
    from personae.errors import MissingExtraError

    raise MissingExtraError("service", "the HTTP service") from exc

__all__ = ["ServiceSettings", "create_app"]

logger = logging.getLogger("personae.service")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
T = TypeVar("T")

@dataclass
class ServiceSettings:
    """How the service guards itself.

    ``auth``: bearer tokens bound to tenants (off only for a single-tenant service on loopback;
    every request is then the ``default`` tenant). ``max_body_bytes``: larger bodies get 413.
    ``cors_origins``: origins a browser may call from (none by default: CORS stays off).
    ``threads``: request threads for the store's blocking calls. ``token_cache_s``: how long a
    token lookup is trusted (a revoked token stops working within it). ``secrets``: strings (an LM key)
    that must never appear in a response or log line, besides the environment's keys and tokens.
    """

    auth: bool = True
    max_body_bytes: int = 1 << 20
    cors_origins: list[str] = field(default_factory=list)
    threads: int = 64
    secrets: tuple[str, ...] = ()
    retry_after_s: int = 5
    token_cache_s: float = 5.0
    body_timeout_s: float = 30.0
    root_path: str = ""


_LM_UNAVAILABLE = frozenset({"timeout", "rate_limit", "server", "transport", "lm"})


def _from_exception(exc: BaseException, retry_after_s: int) -> ServiceError | None:
    """The answer to an exception a route raised; None for a bug (it becomes a bare 500)."""
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, UnknownUserError):
        return ServiceError(404, "not_found", f"no user {exc.user_id!r}")
    if isinstance(exc, LMCallError):
        if exc.kind in _LM_UNAVAILABLE:
            wait = 2 * retry_after_s if exc.kind == "rate_limit" else retry_after_s
            return ServiceError(503, "lm_unavailable", f"the judge's model did not answer ({exc.kind}): {exc.reason}",
                                retry_after=wait, failure=exc.kind)
        if exc.kind in ("context_window", "invalid_request"):
            return ServiceError(422, "invalid_request", f"the judge's model refused the request ({exc.kind}): "
                                f"{exc.reason}", field="body", failure=exc.kind)
        return ServiceError(502, "lm_bad_answer", f"the judge's model gave no usable answer ({exc.kind}): "
                            f"{exc.reason}", retry_after=1, failure=exc.kind)
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)):
        return ServiceError(503, "store_unavailable", "the persona store's database is busy or unreachable",
                            retry_after=1)
    if isinstance(exc, DataError):
        return None  # a stored row that cannot be read (bad request bodies are mapped where they are read)
    if isinstance(exc, ConfigError):
        cause = exc.__cause__
        if cause is not None and type(cause).__module__.startswith("dspy"):
            # the LM rejects the service's own configuration (a bad key): nothing the client can mend
            return ServiceError(503, "lm_unavailable", "the judge's model is misconfigured on the server",
                                retry_after=10 * retry_after_s)
        return ServiceError(422, "invalid_request", str(exc))
    if isinstance(exc, PersonaeError):
        return ServiceError(422, "invalid_request", str(exc))
    return None


class _Metrics:
    """Prometheus counters of one app: requests, latencies, LM calls and tokens, the job queue."""

    def __init__(self, store: PersonaStore, meter: CostMeter) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("personae_http_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("personae_http_request_duration_seconds", "time to answer a request",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
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
                                       errors=error.errors, retry_after=error.retry_after, failure=error.failure,
                                       request_id=request_id))
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

                async def replay() -> Message:
                    if not sent[0]:
                        sent[0] = True
                        return {"type": "http.request", "body": body, "more_body": False}
                    return await receive()

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
    """The HTTP API over ``store`` (its root view; each token's tenant gets its own view).

    ``meter`` counts the LM calls the metrics report (the ``serve-api`` command installs one
    for the whole process, updates included); without one, the app counts those its requests make.
    """
    from personae import __version__

    settings = settings or ServiceSettings()
    secrets = tuple(s for s in settings.secrets if s)
    register_secrets(*secrets)   # the store's job records and logs redact them too
    own_meter = meter is None
    meter = meter or CostMeter()
    metrics = _Metrics(store, meter)
    store.tokens.cache_s = settings.token_cache_s
    views: dict[str, PersonaStore] = {}
    bearer = HTTPBearer(auto_error=False, description="a token from `personae serve-api tokens create --tenant T`")

    async def startup() -> None:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = max(1, settings.threads)

    app = FastAPI(title="personae", version=__version__, root_path=settings.root_path,
                  description="Personas and personalized judges for an application's users, kept current from "
                              "their pairwise preferences.",
                  on_startup=[startup],
                  responses={401: {"model": ErrorBody, "description": "no or an unknown bearer token"},
                             413: {"model": ErrorBody, "description": "the body is too large"},
                             422: {"model": ErrorBody, "description": "a malformed request; the field is named"},
                             503: {"model": ErrorBody, "description": "the store's database is unavailable"}})

    async def tenant_store(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None,
                                                                    Security(bearer)]) -> PersonaStore:
        # async: a cached token costs no thread hop; only a lookup in the database runs in a thread
        if not settings.auth:
            tenant = "default"
        else:
            if credentials is None:
                raise ServiceError(401, "unauthorized", "a bearer token is required in the Authorization header")
            known, found = store.tokens.cached(credentials.credentials)
            if not known:
                import anyio.to_thread

                found = await anyio.to_thread.run_sync(store.tokens.tenant_of, credentials.credentials)
            if found is None:
                raise ServiceError(401, "unauthorized", "the bearer token is unknown or revoked")
            tenant = found
        request.state.tenant = tenant
        view = views.get(tenant)
        if view is None:
            view = views[tenant] = store.for_tenant(tenant)
        return view

    def timed(response: Response, call: Callable[[], T]) -> T:
        """``call()``, counted by the meter, its duration in a Server-Timing header."""
        start = time.perf_counter()
        try:
            if not own_meter:
                return call()
            with meter.track():
                return call()
        finally:
            response.headers["Server-Timing"] = f"store;dur={1000 * (time.perf_counter() - start):.2f}"

    Tenant = Annotated[PersonaStore, Depends(tenant_store)]
    UserId = Annotated[str, Path(pattern=USER_ID_PATTERN, max_length=128, description="the application's user id")]
    LM_ERRORS: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorBody, "description": "no such user (in this token's tenant)"},
        502: {"model": ErrorBody, "description": "the judge's model answered unusably"},
        503: {"model": ErrorBody, "description": "the judge's model or the database is unavailable; see Retry-After"}}
    NOT_FOUND: dict[int | str, dict[str, Any]] = {404: LM_ERRORS[404]}

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [FieldError(loc=[str(p) if not isinstance(p, int) else p for p in e.get("loc", ())],
                             msg=str(e.get("msg", "")), type=str(e.get("type", ""))) for e in exc.errors()]
        first = errors[0] if errors else None
        where = ".".join(str(p) for p in first.loc) if first else None
        message = f"{where}: {first.msg}" if first else "malformed request"
        return _error_response(ServiceError(422, "invalid_request", message, field=where, errors=errors[:20]),
                               getattr(request.state, "request_id", None), secrets)

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
        error = _from_exception(exc, settings.retry_after_s)
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

    # -- operations -----------------------------------------------------------------------------
    @app.get("/healthz", response_model=Health, tags=["operations"])
    async def healthz() -> Health:
        """The process answers."""
        return Health("ok", {})

    @app.get("/readyz", response_model=Health, tags=["operations"],
             responses={503: {"model": ErrorBody, "description": "not ready"}})
    def readyz() -> Health:
        """The store's database answers with a current schema, and a judge is loaded."""
        if store.backend is None:
            raise ServiceError(503, "store_unavailable", "no judge backend is configured", retry_after=10)
        try:
            revision = store.ping()
        except Exception as exc:
            raise ServiceError(503, "store_unavailable", f"the persona store is not ready: {type(exc).__name__}",
                               retry_after=1) from None
        return Health("ready", {"schema": revision, "judge": store.backend.name})

    @app.get("/metrics", tags=["operations"], response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text format"}})
    async def metrics_text() -> Response:
        """Prometheus metrics: requests and latencies by route, LM calls and tokens, update jobs."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.text(), media_type=CONTENT_TYPE_LATEST)

    # -- users ----------------------------------------------------------------------------------
    @app.get("/v1/users", response_model=UserList, tags=["users"])
    def list_users(tenant: Tenant, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                   after: Annotated[str | None, Query(pattern=USER_ID_PATTERN, max_length=128)] = None) -> UserList:
        """This tenant's users, in id order, a page at a time (pass ``next_after`` as ``after``)."""
        found = tenant.users(limit=limit + 1, after=after)
        page = found[:limit]
        return UserList(page, page[-1] if len(found) > limit else None)

    @app.post("/v1/users/{user_id}/preferences", response_model=AddResult, status_code=202, tags=["users"],
              responses={200: {"model": AddResult, "description": "nothing new: every preference was stored already"},
                         202: {"description": "stored; an update job is queued (job_id, Location)"}})
    def add_preferences(user_id: UserId, body: AddPreferencesRequest, tenant: Tenant, response: Response) -> AddResult:
        """Store preferences (at most 256 a request). Idempotent by client ``id`` (else by content):
        a retry reports them as ``duplicates`` and queues nothing."""
        records = [item.to_record() for item in body.preferences]
        try:
            result = timed(response, lambda: tenant.add_preferences(user_id, records))
        except DataError as exc:
            field = {"record_id": "id"}.get(exc.field or "", exc.field)
            where = f"body.preferences.{exc.record - 1}" if exc.record else "body.preferences"
            raise ServiceError(422, "invalid_request", exc.message,
                               field=f"{where}.{field}" if field else where) from None
        if result.job_id is None:
            response.status_code = 200
        else:
            response.headers["Location"] = f"{settings.root_path}/v1/jobs/{result.job_id}"
        return result

    @app.get("/v1/users/{user_id}/preferences", response_model=PreferenceList, tags=["users"], responses=NOT_FOUND)
    def preferences(user_id: UserId, tenant: Tenant) -> PreferenceList:
        """The user's stored preferences, in the order they arrived."""
        return PreferenceList([StoredPreference(
            r.record_id, [{"role": t.role, "content": t.content} for t in r.context], r.chosen, r.rejected,
            None if r.metadata.get("conversation_id") in (None, "") else str(r.metadata["conversation_id"]))
            for r in tenant.preferences(user_id)])

    @app.get("/v1/users/{user_id}/persona", response_model=PersonaState, tags=["users"], responses=NOT_FOUND)
    def persona(user_id: UserId, tenant: Tenant) -> PersonaState:
        """The current persona, its version, pairs seen, prequential accuracy and confidence."""
        return tenant.persona(user_id)

    @app.get("/v1/users/{user_id}/persona/history", response_model=HistoryOut, tags=["users"], responses=NOT_FOUND)
    def history(user_id: UserId, tenant: Tenant) -> HistoryOut:
        """Every persona version, oldest first, with how it was made and how it did since."""
        return HistoryOut(tenant.history(user_id))

    @app.get("/v1/users/{user_id}/export", tags=["users"], response_model=dict[str, Any],
             responses={**NOT_FOUND, 409: {"model": ErrorBody, "description": "no persona yet"}})
    def export(user_id: UserId, tenant: Tenant,
               version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None) -> dict[str, Any]:
        """The user's fitted judge: the same JSON that ``personae fit`` writes."""
        judge = tenant.fitted_judge(user_id, version)
        if judge is None:
            if not tenant.exists(user_id):
                raise UnknownUserError(user_id, tenant.tenant)
            raise ServiceError(409, "conflict", "no persona version yet" if version is None
                               else f"no persona version {version}")
        return judge.to_dict()

    @app.post("/v1/users/{user_id}/judge", response_model=Verdict, tags=["judging"], responses=LM_ERRORS)
    def judge(user_id: UserId, body: JudgeRequest, tenant: Tenant, response: Response) -> Verdict:
        """Which response the user prefers ("A" or "B"), with its probability, by the current persona.
        ``Server-Timing: store;dur=MS`` says how long the store and its judge took."""
        return timed(response, lambda: tenant.judge(user_id, prompt_text(body.prompt), body.response_a,
                                                    body.response_b, abstain_below=body.abstain_below))

    @app.post("/v1/users/{user_id}/rank", response_model=Ranking, tags=["judging"], responses=LM_ERRORS)
    def rank(user_id: UserId, body: RankRequest, tenant: Tenant, response: Response) -> Ranking:
        """The best of several drafts for the user, and their order (``Server-Timing`` as for judge)."""
        return timed(response, lambda: tenant.rank(user_id, prompt_text(body.prompt), body.candidates))

    @app.get("/v1/users/{user_id}/generation-prompt", response_model=GenerationPrompt, tags=["judging"],
             responses=NOT_FOUND)
    def generation_prompt(user_id: UserId, tenant: Tenant) -> GenerationPrompt:
        """A system prompt for writing responses this user prefers (chat messages)."""
        state = tenant.persona(user_id)   # one read: the prompt and its version agree
        return GenerationPrompt([{"role": "system", "content": generation_system_prompt(state.persona)}],
                                state.version, state.personalization)

    @app.delete("/v1/users/{user_id}", response_model=Forgotten, tags=["users"], responses=NOT_FOUND)
    def forget(user_id: UserId, tenant: Tenant) -> Forgotten:
        """Remove everything stored on the user: preferences, personas, judgments, jobs."""
        return Forgotten(user_id, tenant.forget(user_id))

    @app.get("/v1/jobs/{job_id}", response_model=Job, tags=["jobs"],
             responses={404: {"model": ErrorBody, "description": "no such job in this tenant"}})
    def job(job_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")], tenant: Tenant) -> Job:
        """An update job: pending, running, done (with what it did) or failed (with why)."""
        found = tenant.job(job_id)
        if found is None:
            raise ServiceError(404, "not_found", f"no job {job_id!r}")
        return dataclasses.replace(found, error=redact(found.error, secrets)) if found.error else found

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

"""What every route of the service depends on, declared once: the tenant's store view from the
bearer token (holding the scope the route's store method needs, :data:`personae.store.API_SCOPES`),
the user id in a path, the timer around a store call, and the error answers a route documents.
Routes are a few lines over the store (see :mod:`personae.service.routes`).

No ``from __future__ import annotations`` here: FastAPI reads the annotations at definition time.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from personae.errors import ERROR_KINDS, ServiceError
from personae.lm import CostMeter
from personae.service._models import USER_ID_PATTERN, ErrorBody
from personae.specs import ServiceSettings
from personae.store import API_SCOPES, AccessTokens, PersonaStore, TokenGrant
from personae.store._audit import set_actor

try:
    from fastapi import Depends, Path, Request, Response, Security
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
except ImportError as exc:  # pragma: no cover - the extra is named in the error
    from personae.errors import MissingExtraError

    raise MissingExtraError("service", "the HTTP service") from exc

__all__ = ["LM_ERRORS", "NOT_FOUND", "ServiceSettings", "ServiceState", "Timed", "Timer", "UserId", "documented",
           "forbidden", "ops_access", "serves", "service_state", "tenant_store", "timer", "token_grant", "token_tenant"]

T = TypeVar("T")


@dataclass
class ServiceState:
    """What the app serves (``app.state.service``): the store's root view, the settings, the
    meter counting LM calls (``own_meter``: the app counts its requests' calls itself), the
    tenants' views made so far, and the secrets no answer may carry."""

    store: PersonaStore
    settings: ServiceSettings
    meter: CostMeter
    own_meter: bool
    secrets: tuple[str, ...]
    views: dict[str, PersonaStore] = field(default_factory=dict)


def service_state(request: Request) -> ServiceState:
    """The app's :class:`ServiceState`."""
    state: ServiceState = request.app.state.service
    return state


bearer = HTTPBearer(auto_error=False, description="a token from `personae serve-api tokens create --tenant T`; each "
                                                  "operation names the one scope it needs (read, write, admin: admin "
                                                  "also does what read and write do; ops: /metrics and /readyz "
                                                  "under --private-ops)")


async def token_grant(tokens: AccessTokens, secret: str) -> TokenGrant | None:
    """What a bearer token grants (None: unknown, revoked or expired). Async: a cached token costs
    no thread hop; only a lookup in the database runs in a thread."""
    known, grant = tokens.cached_grant(secret)
    if not known:
        import anyio.to_thread

        grant = await anyio.to_thread.run_sync(tokens.grant_of, secret)
    return grant


def forbidden(needed: str) -> ServiceError:
    """The 403 answer to a token without the scope ``needed``."""
    return ServiceError(403, "forbidden", f"the bearer token lacks the {needed!r} scope this needs")


async def _granted(service: ServiceState, credentials: HTTPAuthorizationCredentials | None,
                   needed: str) -> TokenGrant:
    if credentials is None:
        raise ServiceError(401, "unauthorized", "a bearer token is required in the Authorization header")
    grant = await token_grant(service.store.tokens, credentials.credentials)
    if grant is None:
        raise ServiceError(401, "unauthorized", "the bearer token is unknown, revoked or expired")
    if not grant.allows(needed):
        raise forbidden(needed)
    return grant


async def token_tenant(request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> str:
    """The tenant of the request's token (401 without a live one), whatever its scopes: what
    admission counts a request against before the route checks the scope it needs."""
    service = service_state(request)
    if not service.settings.auth:
        return "default"
    if credentials is None:
        raise ServiceError(401, "unauthorized", "a bearer token is required in the Authorization header")
    grant = await token_grant(service.store.tokens, credentials.credentials)
    if grant is None:
        raise ServiceError(401, "unauthorized", "the bearer token is unknown, revoked or expired")
    return grant.tenant


async def tenant_store(request: Request, required: SecurityScopes,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> PersonaStore:
    """The store as the bearer token's tenant sees it: 401 without a live token, 403 when it lacks
    the one scope the route declares (:func:`serves`). Exports and forgets of the request are
    audited as the token's (``token <id>``, with the request id)."""
    service = service_state(request)
    if len(required.scopes) != 1:   # a route that declares no scope, or several: a bug, never an open door
        raise RuntimeError(f"route {request.url.path} must declare exactly one scope, not {required.scopes}")
    if not service.settings.auth:
        tenant, actor = "default", "anonymous (--no-auth)"
    else:
        grant = await _granted(service, credentials, required.scopes[0])
        tenant, actor = grant.tenant, f"token {grant.id}"
    # set in this async dependency, the actor reaches the endpoint's worker thread (a copy of this
    # context); the context is the request's own task, so it ends with the request
    set_actor(actor, getattr(request.state, "request_id", None))
    request.state.tenant = tenant
    view = service.views.get(tenant)
    if view is None:
        view = service.views[tenant] = service.store.for_tenant(tenant)
    return view


class Timer:
    """Runs a store call counted by the service's meter, its duration in a ``Server-Timing`` header."""

    def __init__(self, response: Response, service: ServiceState) -> None:
        self.response = response
        self.service = service

    def __call__(self, call: Callable[[], T]) -> T:
        """``call()``, timed and counted."""
        start = time.perf_counter()
        try:
            if not self.service.own_meter:
                return call()
            with self.service.meter.track():
                return call()
        finally:
            self.response.headers["Server-Timing"] = f"store;dur={1000 * (time.perf_counter() - start):.2f}"


def timer(request: Request, response: Response) -> Timer:
    """The :class:`Timer` of this request."""
    return Timer(response, service_state(request))


def serves(method: str) -> Any:
    """The dependency of a route that serves the declared store ``method``: the store view of the
    token's tenant, once the token holds the scope :data:`~personae.store.API_SCOPES` gives the
    method (``tenant: Annotated[PersonaStore, serves("persona")]``)."""
    return Security(tenant_store, scopes=[API_SCOPES[method]])


async def ops_access(request: Request,
                     credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> None:
    """``/readyz`` and ``/metrics``: open, or with ``--private-ops`` only to a token holding the
    ``ops`` scope (401 without a live token, 403 without the scope)."""
    service = service_state(request)
    if service.settings.private_ops:
        await _granted(service, credentials, "ops")
UserId = Annotated[str, Path(pattern=USER_ID_PATTERN, max_length=128, description="the application's user id")]
"""A user id in a path."""
Timed = Annotated[Timer, Depends(timer)]
"""The request's timer around a store call."""


def documented(*kinds: str, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI error answers of a route: each kind's status with its meaning from the error table
    (``descriptions`` say it for this route instead, by kind)."""
    out: dict[int | str, dict[str, Any]] = {}
    for kind in kinds:
        entry = ERROR_KINDS[kind]
        meaning = descriptions.get(kind, entry.meaning)
        if entry.status in out:
            meaning = f"{out[entry.status]['description']}; or {meaning}"
        out[entry.status] = {"model": ErrorBody, "description": meaning}
    return out


NOT_FOUND = documented("not_found", not_found="no such user (in this token's tenant)")
"""What a route on one user documents."""
LM_ERRORS = documented("not_found", "lm_bad_answer", "lm_unavailable", "store_unavailable", "overloaded",
                       not_found="no such user (in this token's tenant)")
"""What a route that asks the judge documents."""

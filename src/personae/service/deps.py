"""What every route of the service depends on, declared once: the tenant's store view from the
bearer token, the user id in a path, the timer around a store call, and the error answers a
route documents. Routes are a few lines over the store (see :mod:`personae.service.routes`).

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
from personae.store import PersonaStore

try:
    from fastapi import Depends, Path, Request, Response, Security
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
except ImportError as exc:  # pragma: no cover - the extra is named in the error
    from personae.errors import MissingExtraError

    raise MissingExtraError("service", "the HTTP service") from exc

__all__ = ["LM_ERRORS", "NOT_FOUND", "ServiceSettings", "ServiceState", "Tenant", "Timed", "Timer", "UserId",
           "documented", "service_state", "tenant_store", "timer"]

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


bearer = HTTPBearer(auto_error=False, description="a token from `personae serve-api tokens create --tenant T`")


async def tenant_store(request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> PersonaStore:
    """The store as the bearer token's tenant sees it (401 without a known token)."""
    # async: a cached token costs no thread hop; only a lookup in the database runs in a thread
    service = service_state(request)
    if not service.settings.auth:
        tenant = "default"
    else:
        if credentials is None:
            raise ServiceError(401, "unauthorized", "a bearer token is required in the Authorization header")
        known, found = service.store.tokens.cached(credentials.credentials)
        if not known:
            import anyio.to_thread

            found = await anyio.to_thread.run_sync(service.store.tokens.tenant_of, credentials.credentials)
        if found is None:
            raise ServiceError(401, "unauthorized", "the bearer token is unknown or revoked")
        tenant = found
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


Tenant = Annotated[PersonaStore, Depends(tenant_store)]
"""The store view of the request's tenant."""
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

"""Operations: is the process up, is the store ready, what do the metrics say.

No ``from __future__ import annotations`` here: FastAPI reads the annotations at definition time.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, Security

from personae.errors import ServiceError
from personae.service._models import Health
from personae.service.deps import ServiceState, documented, ops_access, service_state

__all__ = ["router"]

router = APIRouter(tags=["operations"])

OPS = [Security(ops_access, scopes=["ops"])]
"""What /readyz and /metrics depend on: a token with the ``ops`` scope under ``--private-ops``."""
OPS_ERRORS = documented("unauthorized", "forbidden", unauthorized="with --private-ops: no token, or an unknown, "
                        "revoked or expired one", forbidden="with --private-ops: the token lacks the ops scope")


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process answers (liveness: always open, even with ``--private-ops``)."""
    return Health("ok", {})


@router.get("/readyz", response_model=Health, dependencies=OPS,
            responses={**OPS_ERRORS, **documented("store_unavailable", store_unavailable="not ready")})
async def readyz(request: Request, service: Annotated[ServiceState, Depends(service_state)]) -> Health:
    """The store's database answers with a current schema, and a judge is loaded (with ``--private-ops``:
    to a token with the ``ops`` scope)."""
    import anyio.to_thread

    store = service.store
    if store.backend is None:
        raise ServiceError(503, "store_unavailable", "no judge backend is configured", retry_after=10)
    try:   # on threads of its own: busy request threads do not make the service look unready
        revision = await anyio.to_thread.run_sync(store.ping, limiter=request.app.state.admission.health)
    except Exception as exc:
        raise ServiceError(503, "store_unavailable", f"the persona store is not ready: {type(exc).__name__}",
                           retry_after=1) from None
    return Health("ready", {"schema": revision, "judge": store.backend.name})


@router.get("/metrics", response_class=Response, dependencies=OPS,
            responses={**OPS_ERRORS, 200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text format"}})
async def metrics_text(request: Request) -> Response:
    """Prometheus metrics: requests and latencies by route, LM calls and tokens, update jobs (with
    ``--private-ops``: to a token with the ``ops`` scope)."""
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(request.app.state.metrics.text(), media_type=CONTENT_TYPE_LATEST)

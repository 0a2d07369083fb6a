"""The audit log: who exported or forgot which user of a tenant, and when.

The store writes the row itself (:meth:`~personae.store.PersonaStore.export` and
:meth:`~personae.store.PersonaStore.forget`), so no surface can skip it; a forget writes its
row in the transaction that deletes the user. Who acts is the caller's context:
:func:`acting_as` names it (the service: ``token <id>`` with the request id; the console,
``personae store``, ``personae mcp``); plain Python is ``python``. A row holds ids, never any
text of the user's.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from personae.errors import ConfigError
from personae.store._schema import audit

__all__ = ["ACTIONS", "AuditEntry", "acting_as", "current_actor"]

ACTIONS = ("export", "forget")
DEFAULT_ACTOR = "python"

_ACTOR: contextvars.ContextVar[tuple[str, str | None] | None] = contextvars.ContextVar("personae_actor", default=None)


@dataclass(frozen=True)
class AuditEntry:
    """One audited action: ``action`` (export or forget) of ``user_id`` in ``tenant`` by ``actor``
    (``token <id>``, ``console token <id>``, ``console operator``, ``cli``, ``python``...) at
    ``at`` (seconds since the epoch), in the service's request ``request_id`` when there was one."""

    id: int
    tenant: str
    user_id: str
    action: str
    actor: str
    at: float
    request_id: str | None = None


@contextmanager
def acting_as(actor: str, *, request_id: str | None = None) -> Iterator[None]:
    """Exports and forgets in this block (this thread or task, and what it starts) are audited
    as done by ``actor``, within ``request_id`` when given. ``actor`` says who, never with a
    secret in it: ``token <id>``, not the token."""
    if not isinstance(actor, str) or not actor.strip() or len(actor) > 128:
        raise ConfigError(f"an actor is a non-empty name of at most 128 characters, got {actor!r:.80}")
    token = _ACTOR.set((actor, request_id))
    try:
        yield
    finally:
        _ACTOR.reset(token)


def set_actor(actor: str, request_id: str | None = None) -> None:
    """Name the actor for the rest of the current context (a request's task: the service's own
    dependency, whose context ends with the request)."""
    _ACTOR.set((actor, request_id))


def current_actor() -> tuple[str, str | None]:
    """Who acts now and in which request: the innermost :func:`acting_as`, else ``python``."""
    return _ACTOR.get() or (DEFAULT_ACTOR, None)


def write(conn: sa.Connection, tenant: str, user_id: str, action: str) -> None:
    """The audit row of ``action`` on the user, in the caller's transaction."""
    actor, request_id = current_actor()
    conn.execute(audit.insert().values(tenant=tenant, user_id=user_id, action=action, actor=actor, at=time.time(),
                                       request_id=request_id))


def read(conn: sa.Connection, tenant: str, limit: int) -> list[AuditEntry]:
    """The tenant's audit rows, newest first, at most ``limit``."""
    rows = conn.execute(sa.select(audit).where(audit.c.tenant == tenant).order_by(audit.c.id.desc()).limit(limit))
    return [AuditEntry(int(r.id), r.tenant, r.user_id, r.action, r.actor, float(r.at), r.request_id) for r in rows]

"""A tenant's users: their preferences, personas and judges; forgetting them.

No ``from __future__ import annotations`` here: FastAPI reads the annotations at definition time.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from personae.service._models import (
    USER_ID_PATTERN,
    AddPreferencesRequest,
    Forgotten,
    HistoryOut,
    PreferenceList,
    StoredPreference,
    UserList,
)
from personae.service.deps import NOT_FOUND, Timed, UserId, documented, serves, service_state
from personae.store import AddResult, PersonaState, PersonaStore

__all__ = ["router"]

router = APIRouter(tags=["users"])


@router.get("/v1/users", response_model=UserList)
def list_users(tenant: Annotated[PersonaStore, serves("users")], limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               after: Annotated[str | None, Query(pattern=USER_ID_PATTERN, max_length=128)] = None) -> UserList:
    """This tenant's users, in id order, a page at a time (pass ``next_after`` as ``after``)."""
    found = tenant.users(limit=limit + 1, after=after)
    page = found[:limit]
    return UserList(page, page[-1] if len(found) > limit else None)


@router.post("/v1/users/{user_id}/preferences", response_model=AddResult, status_code=202,
             responses={200: {"model": AddResult, "description": "nothing new: every preference was stored already"},
                        202: {"description": "stored; an update job is queued (job_id, Location)"}})
def add_preferences(user_id: UserId, body: AddPreferencesRequest,
                    tenant: Annotated[PersonaStore, serves("add_preferences")], timed: Timed, request: Request,
                    response: Response) -> AddResult:
    """Store preferences (at most 256 a request). Idempotent by client ``id`` (else by content):
    a retry reports them as ``duplicates`` and queues nothing."""
    records = [item.to_record() for item in body.preferences]
    result = timed(lambda: tenant.add_preferences(user_id, records))  # a bad record: 422 naming it
    if result.job_id is None:
        response.status_code = 200
    else:
        response.headers["Location"] = f"{service_state(request).settings.root_path}/v1/jobs/{result.job_id}"
    return result


@router.get("/v1/users/{user_id}/preferences", response_model=PreferenceList, responses=NOT_FOUND)
def preferences(user_id: UserId, tenant: Annotated[PersonaStore, serves("preferences")]) -> PreferenceList:
    """The user's stored preferences, in the order they arrived."""
    return PreferenceList([StoredPreference(
        r.record_id, [{"role": t.role, "content": t.content} for t in r.context], r.chosen, r.rejected,
        None if r.metadata.get("conversation_id") in (None, "") else str(r.metadata["conversation_id"]))
        for r in tenant.preferences(user_id)])


@router.get("/v1/users/{user_id}/persona", response_model=PersonaState, responses=NOT_FOUND)
def persona(user_id: UserId, tenant: Annotated[PersonaStore, serves("persona")]) -> PersonaState:
    """The current persona, its version, pairs seen, prequential accuracy and confidence."""
    return tenant.persona(user_id)


@router.get("/v1/users/{user_id}/persona/history", response_model=HistoryOut, responses=NOT_FOUND)
def history(user_id: UserId, tenant: Annotated[PersonaStore, serves("history")]) -> HistoryOut:
    """Every persona version, oldest first, with how it was made and how it did since."""
    return HistoryOut(tenant.history(user_id))


@router.get("/v1/users/{user_id}/export", response_model=dict[str, Any],
            responses={**NOT_FOUND, **documented("conflict", conflict="no persona yet")})
def export(user_id: UserId, tenant: Annotated[PersonaStore, serves("export")],
           version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None) -> dict[str, Any]:
    """The user's fitted judge: the same JSON that ``personae fit`` writes."""
    return tenant.export(user_id, version=version).to_dict()


@router.delete("/v1/users/{user_id}", response_model=Forgotten, responses=NOT_FOUND)
def forget(user_id: UserId, tenant: Annotated[PersonaStore, serves("forget")]) -> Forgotten:
    """Remove everything stored on the user: preferences, personas, judgments, jobs."""
    return Forgotten(user_id, tenant.forget(user_id))

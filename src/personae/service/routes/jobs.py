"""Update jobs: pending, running, done or failed, with why.

No ``from __future__ import annotations`` here: FastAPI reads the annotations at definition time.
"""

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Path, Request

from personae.errors import ServiceError
from personae.runs import redact
from personae.service.deps import documented, serves, service_state
from personae.store import Job, PersonaStore

__all__ = ["router"]

router = APIRouter(tags=["jobs"])


@router.get("/v1/jobs/{job_id}", response_model=Job,
            responses=documented("not_found", not_found="no such job in this tenant"))
def job(job_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")], tenant: Annotated[PersonaStore, serves("job")],
        request: Request) -> Job:
    """An update job: pending, running, done (with what it did) or failed (with why)."""
    found = tenant.job(job_id)
    if found is None:
        raise ServiceError(404, "not_found", f"no job {job_id!r}")
    return dataclasses.replace(found, error=redact(found.error, service_state(request).secrets)) if found.error \
        else found

"""The service's routes: each a few lines over the tenant's store view (:mod:`personae.service.deps`).

``operations`` (health, readiness, metrics), ``users`` (preferences, personas, export, forget),
``judging`` (judge, rank, the generation prompt), ``jobs`` (update jobs).
"""

from personae.service.routes import jobs, judging, operations, users

ROUTERS = (operations.router, users.router, judging.router, jobs.router)
"""Every router, in the order the app includes them."""

__all__ = ["ROUTERS", "jobs", "judging", "operations", "users"]

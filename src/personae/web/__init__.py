"""personae's pages: the store console (``/console`` of ``personae serve-api``, or ``personae store
console``) and the run viewer (``personae view``). Rendered on the server from the package's
templates, with Chart.js shipped in the package: no Node at install time, no CDN, works offline.
Needs the ``service`` extra (``pip install 'personae[service]'``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from personae.web.console import ConsoleAccess, Sessions, console_router

if TYPE_CHECKING:
    from fastapi import FastAPI

    from personae.store import PersonaStore

__all__ = ["ConsoleAccess", "Sessions", "console_app", "console_router", "mount_console"]


def mount_console(app: FastAPI, store: PersonaStore, access: ConsoleAccess,
                  view: Callable[[str], PersonaStore] | None = None) -> None:
    """Serve the console's pages at ``/console`` of ``app`` over ``store`` (tenants' views from
    ``view`` when given: the service's own)."""
    from personae.web._pages import static_files

    app.include_router(console_router(store, access, view))
    app.mount("/console/static", static_files(), name="console-static")


def console_app(store: PersonaStore, access: ConsoleAccess, **fastapi: Any) -> FastAPI:
    """An app serving the console alone (``personae store console``), for one operator on loopback."""
    from fastapi import FastAPI
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import RedirectResponse

    app = FastAPI(title="personae console", openapi_url=None, docs_url=None, redoc_url=None, **fastapi)
    mount_console(app, store, access)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/users", status_code=303)

    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"])
    return app

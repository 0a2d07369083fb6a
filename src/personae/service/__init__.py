"""The persona service: the persona store over HTTP, for applications in any language.

``personae serve-api --store personae.db --judge reward-model:rm/`` serves :func:`create_app`
on uvicorn (the ``service`` extra: ``pip install 'personae[service]'``). Routes live under
``/v1``; every request carries a bearer token bound to one tenant
(``personae serve-api tokens create --tenant T``), and a token never sees another tenant's
users. :class:`personae.client.PersonaeClient` speaks to it with the store's own methods.
The same store is an MCP server (:mod:`personae.service.mcp`): at ``/mcp`` on the service, or
on stdio with ``personae mcp --store personae.db``.
"""

from typing import Any

__all__ = ["REWARD_MODEL_PREFIX", "ServiceSettings", "create_app", "create_mcp", "is_loopback", "judge_backend",
           "open_store", "openapi_schema", "run_app", "serve"]

_APP = ("ServiceSettings", "create_app", "openapi_schema")


def __getattr__(name: str) -> Any:  # FastAPI is imported only when the app is built
    if name in _APP:
        from personae.service import _app

        return getattr(_app, name)
    if name == "create_mcp":
        from personae.service import mcp

        return mcp.create_mcp
    if name in __all__:
        from personae.service import _serve

        return getattr(_serve, name)
    raise AttributeError(name)

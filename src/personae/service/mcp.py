"""The persona store as an MCP server: what an agent can do with a user's persona, declared once.

:data:`TOOLS` declares each tool: its name, what it tells the agent, its input (the HTTP
routes' own request model, so an MCP call is validated as a REST body is) and its store call.
:func:`create_mcp` builds an ``MCPServer`` (the official ``mcp`` SDK) from that table over any
store view: ``personae mcp --store URL`` serves it on stdio (what desktop agents and IDEs
launch), and ``personae serve-api`` mounts it at ``/mcp`` (streamable HTTP) behind the same
bearer tokens and tenants as ``/v1``: each tool needs the scope its store method needs
(:data:`personae.store.API_SCOPES`), and a forget is audited as the token's. A tool that
fails answers a tool error that starts with its kind (``not_found: ...``, ``forbidden: ...``,
``invalid_request: ...``, ``lm_unavailable: ...``), never a crashed session; no key or token
is in any answer.

Besides the tools: a resource per user's persona (``persona://{user_id}``) and a prompt,
``write_for_user``, that asks for a response written for the user.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from personae.errors import MissingExtraError, PersonaeError, service_error
from personae.runs import redact
from personae.service._models import (
    USER_ID_PATTERN,
    Forgotten,
    GenerationPrompt,
    HistoryOut,
    JudgeRequest,
    PreferenceIn,
    RankRequest,
    prompt_text,
)
from personae.store import API_SCOPES, acting_as
from personae.store._tokens import SCOPES, grants

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.shared.exceptions import MCPError
except ImportError as exc:  # pragma: no cover - the extra is named in the error
    raise MissingExtraError("service", "the MCP server") from exc

__all__ = ["TOOLS", "Caller", "McpGate", "ToolSpec", "create_mcp", "current_caller", "current_store"]

logger = logging.getLogger(__name__)

FORBIDDEN_CODE = -32003
"""The JSON-RPC error code of a resource or prompt the caller's token may not read (a server error)."""

StoreFor = Callable[[], Any]
"""Gives the store view of the caller (its tenant's), for each call."""


@dataclass(frozen=True)
class Caller:
    """Who calls a tool: the store view of its token's tenant, the scopes the token holds, and who
    it is in the audit log (``token <id>``, never the secret), in which request."""

    store: Any
    scopes: tuple[str, ...] = SCOPES
    actor: str = "mcp"
    request_id: str | None = None


CallerFor = Callable[[], "Caller | None"]
"""Gives the caller of each call (None: the process's own operator, who may do everything)."""

UserIdArg = Annotated[str, Field(pattern=USER_ID_PATTERN, max_length=128,
                                 description="the user's id in your application (letters, digits, ._:@+=-)")]


@dataclass(frozen=True)
class ToolSpec:
    """One tool: ``name`` and ``description`` as the agent reads them, the ``body`` model its
    inputs are validated with (None: the user id alone), the declared store ``method`` it serves
    (its :attr:`scope` comes from :data:`~personae.store.API_SCOPES`), and the store ``call`` it makes."""

    name: str
    description: str
    body: type[BaseModel] | None
    method: str
    call: Callable[[Any, str, Any], Any]

    @property
    def scope(self) -> str:
        """The token scope the tool needs: its store method's."""
        return API_SCOPES[self.method]


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "record_choice",
        "Record that the user chose one draft over another for a prompt. Call it whenever the user "
        "picks, prefers or keeps one of two responses. Give an `id` (your event id) so a retry is not "
        "stored twice. The user's persona updates from these choices in the background.",
        PreferenceIn, "add_preferences", lambda store, user, body: store.add_preferences(user, [body.to_record()])),
    ToolSpec(
        "get_persona",
        "The user's current persona: a short description of what they prefer, its version, how many "
        "choices it has seen, and how well it predicted their recent choices (prequential accuracy, "
        "with its confidence). Read it before writing for the user.",
        None, "persona", lambda store, user, body: store.persona(user)),
    ToolSpec(
        "judge_drafts",
        "Which of two drafts this user would prefer, 'A' or 'B', with the probability and the reasoning. "
        "Use it to choose between two candidate responses before showing one.",
        JudgeRequest, "judge", lambda store, user, body: store.judge(
            user, prompt_text(body.prompt), body.response_a, body.response_b, abstain_below=body.abstain_below)),
    ToolSpec(
        "rank_drafts",
        "Order several drafts for this user, best first (best-of-n for this user).",
        RankRequest, "rank", lambda store, user, body: store.rank(user, prompt_text(body.prompt), body.candidates)),
    ToolSpec(
        "system_prompt",
        "A system prompt (chat messages) for writing responses this user prefers, from their persona.",
        None, "generation_messages", lambda store, user, body: _generation_prompt(store, user)),
    ToolSpec(
        "persona_history",
        "Every persona version of the user, oldest first: how each was made (first fit, revision, refit), "
        "on how many choices, and how well it predicted the choices after it.",
        None, "history", lambda store, user, body: HistoryOut(store.history(user))),
    ToolSpec(
        "forget_user",
        "Remove everything stored about the user: their choices, personas, judgments and jobs. Only when "
        "the user asks to be forgotten; it cannot be undone.",
        None, "forget", lambda store, user, body: Forgotten(user, store.forget(user))),
)
"""The tools, declared once: :func:`create_mcp` generates each from its entry."""


def _generation_prompt(store: Any, user_id: str) -> GenerationPrompt:
    state = store.persona(user_id)   # one read: the prompt and its version agree
    return GenerationPrompt(state.generation_messages(), state.version, state.personalization)


def _plain(value: Any) -> Any:
    """A store answer as JSON values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return TypeAdapter(type(value)).dump_python(value, mode="json")


def _signature(spec: ToolSpec) -> inspect.Signature:
    """``user_id`` and the body's fields, as keyword parameters: what the tool's input schema shows."""
    params = [inspect.Parameter("user_id", inspect.Parameter.KEYWORD_ONLY, annotation=UserIdArg)]
    for name, info in (spec.body.model_fields if spec.body is not None else {}).items():
        annotation: Any = Annotated[info.annotation, info] if info.metadata or info.description else info.annotation
        default = inspect.Parameter.empty if info.is_required() else info.default
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default))
    return inspect.Signature(params, return_annotation=dict[str, Any])


def _forbidden(caller: Caller | None, scope: str, what: str) -> ToolError | None:
    """The tool error for a caller whose token lacks ``scope`` (None: it may)."""
    if caller is None or grants(caller.scopes, scope):
        return None
    return ToolError(f"forbidden: the bearer token lacks the {scope!r} scope {what} needs")


def _refuse_unless(caller: Caller | None, scope: str, what: str) -> None:
    """For a resource or a prompt: a JSON-RPC error that says ``forbidden: ...`` (the SDK would
    turn any other exception into a bare "error rendering" and a traceback in the log)."""
    refused = _forbidden(caller, scope, what)
    if refused is not None:
        raise MCPError(FORBIDDEN_CODE, str(refused))


def _tool(spec: ToolSpec, store_for: StoreFor, caller_for: CallerFor,
          secrets: tuple[str, ...]) -> Callable[..., dict[str, Any]]:
    def run(**arguments: Any) -> dict[str, Any]:
        user_id = arguments.pop("user_id")
        caller = caller_for()
        refused = _forbidden(caller, spec.scope, spec.name)
        if refused is not None:
            raise refused
        acting = acting_as(caller.actor, request_id=caller.request_id) if caller is not None \
            else contextlib.nullcontext()
        try:
            body = spec.body.model_validate(arguments) if spec.body is not None else None
            with acting:
                answer: dict[str, Any] = _plain(spec.call(store_for(), user_id, body))
            return answer
        except ValidationError as exc:
            fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise ToolError(f"invalid_request: {redact(fields, secrets)}") from None
        except PersonaeError as exc:
            error = service_error(exc)
            if error is None:
                raise _internal(spec, exc, secrets) from None
            where = f" (field {error.field})" if error.field else ""
            retry = f"; retry after {error.retry_after} s" if error.retry_after else ""
            raise ToolError(f"{error.kind}: {redact(error.message, secrets)}{where}{retry}") from None
        except Exception as exc:  # a bug: the session goes on, the log has the details
            raise _internal(spec, exc, secrets) from None

    run.__name__ = spec.name
    run.__doc__ = spec.description
    signature = _signature(spec)
    run.__signature__ = signature  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    return run


def _internal(spec: ToolSpec, exc: BaseException, secrets: tuple[str, ...]) -> ToolError:
    request_id = uuid.uuid4().hex[:12]
    logger.error("mcp tool %s failed (request %s): %s", spec.name, request_id,
                 redact(f"{type(exc).__name__}: {exc}", secrets))
    return ToolError(f"internal: the tool failed; the server's log has request {request_id}")


_VALIDATION = re.compile(r"^\d+ validation errors? for \w+\n")
_UNION_TAG = re.compile(r"^(constrained-\w+|list\[.*\]|str|int|float|bool|none|function-\w+.*)$")


def _argument_errors(text: str) -> str:
    """The SDK's account of arguments the schema refused, as ``invalid_request: field: what``."""
    lines = [line for line in text.splitlines()[1:] if not line.strip().startswith("For further information")]
    found: dict[str, str] = {}
    for loc, message in zip(lines[::2], lines[1::2], strict=False):
        field = ".".join(part for part in loc.strip().split(".") if not _UNION_TAG.match(part))
        found.setdefault(field, message.strip().split(" [type=", 1)[0])
    return "invalid_request: " + "; ".join(f"{field}: {message}" for field, message in found.items())


async def _kinds_first(ctx: Any, call_next: Any) -> Any:
    """Every tool error as ``KIND: message``: the SDK's prefix off, its argument errors in the
    service's words (the middleware of :func:`create_mcp`)."""
    result = await call_next(ctx)
    if ctx.method != "tools/call" or not isinstance(result, dict) or not result.get("isError"):
        return result
    for part in result.get("content") or []:
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            text = re.sub(r"^Error executing tool \w+: ", "", part["text"])
            part["text"] = _argument_errors(text) if _VALIDATION.match(text) else text
    return result


def create_mcp(store_for: StoreFor, *, secrets: tuple[str, ...] = (), name: str = "personae",
               caller_for: CallerFor | None = None) -> MCPServer:
    """An MCP server over the store view ``store_for()`` gives for each call: every tool of
    :data:`TOOLS`, the ``persona://{user_id}`` resource and the ``write_for_user`` prompt.
    ``caller_for()`` says who calls (:class:`Caller`: a tool its token's scopes do not allow
    answers ``forbidden: ...``); without it every call is allowed (``personae mcp`` on stdio)."""
    callers: CallerFor = caller_for or (lambda: None)
    from personae import __version__

    server = MCPServer(name, version=__version__, middleware=[_kinds_first], instructions=(
        "personae learns what each user prefers from the choices they make between two drafts, and keeps a "
        "persona per user. Record each choice with record_choice; read get_persona or system_prompt before "
        "writing for a user; use judge_drafts or rank_drafts to pick the draft the user would prefer."))
    tools = {spec.name: _tool(spec, store_for, callers, secrets) for spec in TOOLS}
    for spec in TOOLS:
        server.add_tool(tools[spec.name], name=spec.name, description=spec.description)
    read_persona = tools["get_persona"]

    @server.resource("persona://{user_id}", name="persona", mime_type="application/json",
                     description="The user's current persona, as get_persona returns it.")
    def persona_resource(user_id: str) -> str:
        _refuse_unless(callers(), API_SCOPES["persona"], "the persona resource")
        return json.dumps(read_persona(user_id=user_id))

    @server.prompt(name="write_for_user",
                   description="Write a response to a request, for one user's taste.")
    def write_for_user(user_id: str, request: str) -> str:
        _refuse_unless(callers(), API_SCOPES["persona"], "write_for_user")
        try:
            state = store_for().persona(user_id)
            persona = state.persona or "(no persona yet: write plainly)"
        except PersonaeError:
            persona = "(the store does not know this user yet: write plainly)"
        return (f"Write a response to the request below for a user described by this persona.\n\n"
                f"Persona: {persona}\n\nRequest: {request}")

    return server


_CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("personae_mcp_caller", default=None)


def current_caller() -> Caller | None:
    """The caller of ``/mcp`` (set by :class:`McpGate`)."""
    return _CALLER.get()


def current_store() -> Any:
    """The store view of the caller of ``/mcp``: its token's tenant (set by :class:`McpGate`)."""
    caller = _CALLER.get()
    if caller is None:  # pragma: no cover - the gate always sets it
        raise PersonaeError("no caller: /mcp is reached through its gate only")
    return caller.store


class McpGate:
    """``/mcp`` behind the service's bearer tokens: a request without a live token gets 401 (as
    ``/v1`` does), one with a token reaches the MCP app as a :class:`Caller`: its tenant's store
    view alone, and its scopes (each tool checks its own)."""

    def __init__(self, app: Any, state: Any) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Answer 401, or pass the request on as the token's tenant."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = await self._grant(dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1"))
        if found is None:
            body = json.dumps({"error": {"type": "unauthorized",
                                         "message": "a known bearer token is required in the Authorization header"}})
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
            await send({"type": "http.response.body", "body": body.encode()})
            return
        tenant, scopes, actor = found
        view = self.state.views.get(tenant)
        if view is None:
            view = self.state.views[tenant] = self.state.store.for_tenant(tenant)
        request_id = (scope.get("state") or {}).get("request_id")
        token = _CALLER.set(Caller(view, scopes, actor, request_id))
        try:
            await self.app(scope, receive, send)
        finally:
            _CALLER.reset(token)

    async def _grant(self, authorization: str) -> tuple[str, tuple[str, ...], str] | None:
        """The tenant, scopes and audit name of the request's token (None: no live token)."""
        if not self.state.settings.auth:
            return "default", SCOPES, "anonymous (--no-auth)"
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return None
        from personae.service.deps import token_grant

        grant = await token_grant(self.state.store.tokens, secret.strip())
        return None if grant is None else (grant.tenant, grant.scopes, f"token {grant.id}")


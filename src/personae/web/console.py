"""The store console: a tenant's users, each user's persona versions with the evidence behind
each change, prequential accuracy over time, jobs, a judging playground, export and forget.

Pages are rendered on the server (Jinja2, every value escaped) and work without JavaScript
except the charts. Sign-in takes a tenant's token holding the ``admin`` scope (``personae
serve-api``: the console exports and forgets) or the token that ``personae store console``
makes for its run and prints; exports and forgets are audited as the session's
(``console token <id>``, ``console operator``); the session lives in the server's
memory behind an HttpOnly, SameSite=Strict cookie, and every form that changes something
carries the session's CSRF token and must come from this site.

No ``from __future__ import annotations`` here: FastAPI reads annotations at definition time.
"""

import contextlib
import hmac
import json
import logging
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from personae.errors import NoPersonaError, PersonaeError, UnknownUserError
from personae.evaluation import wilson_interval
from personae.runs import describe_error
from personae.store import PersonaStore, acting_as
from personae.web._pages import chart, page, word_diff

try:
    import anyio.to_thread
    from fastapi import APIRouter, Request
    from starlette.responses import RedirectResponse, Response
except ImportError as exc:  # pragma: no cover - the extra is named in the error
    from personae.errors import MissingExtraError

    raise MissingExtraError("service", "the store console") from exc

__all__ = ["COOKIE", "ConsoleAccess", "Sessions", "SignIn", "console_router"]

logger = logging.getLogger("personae.console")

COOKIE = "personae_console"
PAGE_SIZES = (50, 200, 1000)
MAX_DRAFTS = 6
T = TypeVar("T")


@dataclass
class Session:
    """A signed-in browser: its tenant, its CSRF token, the token it signed in with (checked again
    on every request, so a revoked or expired token ends the session), when it expires, who it is
    in the audit log, and a message for its next page."""

    id: str
    tenant: str
    csrf: str
    token: str | None
    expires: float
    actor: str = "console"
    flash: str | None = None


class Sessions:
    """Sessions in the server's memory (a restart signs everyone out), at most ``limit`` at once."""

    def __init__(self, ttl_s: float = 12 * 3600, limit: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.limit = limit
        self._items: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, tenant: str, token: str | None, actor: str = "console") -> Session:
        """A new session for ``tenant``, audited as ``actor``."""
        now = time.time()
        session = Session(secrets.token_urlsafe(32), tenant, secrets.token_urlsafe(32), token, now + self.ttl_s,
                          actor)
        with self._lock:
            if len(self._items) >= self.limit:   # drop the expired, then the oldest
                for key in [k for k, s in self._items.items() if s.expires < now] or list(self._items)[:1]:
                    del self._items[key]
            self._items[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this id, if any."""
        if not session_id:
            return None
        with self._lock:
            session = self._items.get(session_id)
            if session is not None and session.expires < time.time():
                del self._items[session_id]
                return None
            return session

    def close(self, session_id: str) -> None:
        """End a session."""
        with self._lock:
            self._items.pop(session_id, None)


@dataclass(frozen=True)
class SignIn:
    """What a sign-in token opens: its ``tenant``, who the session is in the audit log
    (``actor``), and whether the token may use the console at all (``allowed``: a tenant token
    needs the ``admin`` scope, for the console exports and forgets)."""

    tenant: str
    actor: str
    allowed: bool = True


@dataclass
class ConsoleAccess:
    """Who may sign in. ``check`` reads a token (None: unknown, refused); with ``open_tenant`` no
    token is asked for (a single-tenant service on loopback without tokens)."""

    check: Callable[[str], SignIn | None] | None = None
    open_tenant: str | None = None
    what: str = "a tenant token"
    sessions: Sessions = field(default_factory=Sessions)
    link_sign_in: bool = False

    @classmethod
    def tokens(cls, store: PersonaStore) -> "ConsoleAccess":
        """Sign-in with a token of the store's tenants that holds the ``admin`` scope (``personae
        serve-api tokens create``), typed into the sign-in form (never taken from an address, where
        logs and history keep it)."""
        tokens = store.tokens

        def check(token: str) -> SignIn | None:
            grant = tokens.grant_of(token)   # a recent answer costs no database lookup
            return None if grant is None else SignIn(grant.tenant, f"console token {grant.id}", grant.allows("admin"))

        return cls(check=check, what="a tenant token with the admin scope (personae serve-api tokens create)")

    @classmethod
    def operator(cls, token: str, tenant: str) -> "ConsoleAccess":
        """Sign-in with the token made for one ``personae store console`` run, into one tenant;
        the address it prints carries the token (``/console/login?token=``)."""
        def check(given: str) -> SignIn | None:
            return SignIn(tenant, "console operator") if hmac.compare_digest(given.encode(), token.encode()) \
                else None

        return cls(check=check, what="the token personae store console printed", link_sign_in=True)

    @classmethod
    def open(cls, tenant: str = "default") -> "ConsoleAccess":
        """No sign-in: every browser that reaches the console works in ``tenant``."""
        return cls(open_tenant=tenant)


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _seg(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def console_router(store: PersonaStore, access: ConsoleAccess,
                   view: Callable[[str], PersonaStore] | None = None) -> APIRouter:
    """The console's pages under ``/console`` over ``store`` (its root view); each session works
    in its tenant's view, from ``view`` (the service's own views) or made here."""
    router = APIRouter(prefix="/console", include_in_schema=False)
    views: dict[str, PersonaStore] = {}

    def own_view(tenant: str) -> PersonaStore:
        found = views.get(tenant)
        if found is None:
            found = views[tenant] = store.for_tenant(tenant)
        return found

    view = view or own_view

    def base(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}/console"

    def sign_in(request: Request, tenant: str, token: str | None, to: str, actor: str) -> Response:
        session = access.sessions.open(tenant, token, actor)
        response = RedirectResponse(to, status_code=303)
        secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
        response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", path=base(request),
                            secure=secure, max_age=int(access.sessions.ttl_s))
        logger.info("console: a session signed in to tenant %s", tenant)
        return response

    async def session_of(request: Request) -> Session:
        """The request's session, else a redirect to the sign-in page."""
        session = access.sessions.get(request.cookies.get(COOKIE))
        if session is not None and session.token is not None and access.check is not None:
            token, check = session.token, access.check
            found = await anyio.to_thread.run_sync(lambda: check(token))
            if found is None or found.tenant != session.tenant or not found.allowed:   # revoked or expired meanwhile
                access.sessions.close(session.id)
                session = None
        if session is None:
            if access.open_tenant is not None:   # a form posted without a session goes nowhere: start over
                to = str(request.url.path) + (f"?{request.url.query}" if request.url.query else "") \
                    if request.method == "GET" else f"{base(request)}/users"
                raise _Refused(sign_in(request, access.open_tenant, None, to, "console (no sign-in)"))
            raise _Refused(RedirectResponse(f"{base(request)}/login", status_code=303))
        return session

    def same_origin(request: Request) -> bool:
        """A state-changing request must come from this site (CSRF): browsers say where a form
        was posted from in ``Sec-Fetch-Site`` and ``Origin``. The origin's host is compared with
        the request's ``Host`` (a proxy ending TLS changes the scheme, not the host)."""
        if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        if origin is None:
            return True
        return urllib.parse.urlsplit(origin).netloc == request.headers.get("host", request.url.netloc)

    async def form_of(request: Request, session: Session | None) -> dict[str, str]:
        """The posted form (URL-encoded), checked for origin and, with a session, its CSRF token."""
        if not same_origin(request):
            raise _Refused(_message(request, 403, "Refused", "This form was posted from another site."))
        body = (await request.body()).decode("utf-8", "replace")
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(body, keep_blank_values=True).items()}
        if session is not None and not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode()):
            raise _Refused(_message(request, 403, "Refused", "The form's security token is missing or stale; "
                                                             "reload the page and try again."))
        return form

    def _message(request: Request, status: int, title: str, text: str) -> Response:
        return page("message.html", status_code=status, base=base(request), session=None, title=title, text=text)

    async def call(function: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(function)

    async def act(session: Session, function: Callable[[], T]) -> T:
        """``function`` in a worker thread, its exports and forgets audited as the session's."""
        def run() -> T:
            with acting_as(session.actor):
                return function()

        return await anyio.to_thread.run_sync(run)

    def guarded(handler: Callable[..., Any]) -> Callable[..., Any]:
        async def run(request: Request) -> Response:
            try:
                result: Response = await handler(request)
                return result
            except _Refused as refused:
                return refused.response
            except UnknownUserError as exc:
                return page("message.html", status_code=404, base=base(request),
                            session=access.sessions.get(request.cookies.get(COOKIE)), title="No such user",
                            text=f"This tenant holds nothing on user {exc.user_id!r} (forgotten, or never added).")
        run.__name__ = handler.__name__
        return run

    # -- sign-in ------------------------------------------------------------------------------
    @router.get("")
    @router.get("/")
    async def home(request: Request) -> Response:
        return RedirectResponse(f"{base(request)}/users", status_code=303)

    async def login_page(request: Request) -> Response:
        if access.open_tenant is not None:
            return sign_in(request, access.open_tenant, None, f"{base(request)}/users", "console (no sign-in)")
        token = request.query_params.get("token")
        if token and access.link_sign_in:   # the address personae store console prints
            return await _check_token(request, token)
        return page("login.html", base=base(request), session=None, what=access.what, error=None)

    async def _check_token(request: Request, token: str) -> Response:
        check = access.check
        found = None if check is None else await call(lambda: check(token.strip()))
        if found is None:
            logger.info("console: a sign-in was refused (unknown, revoked or expired token)")
            return page("login.html", status_code=401, base=base(request), session=None, what=access.what,
                        error="That token is unknown, revoked or expired.")
        if not found.allowed:
            logger.info("console: a sign-in was refused (%s lacks the admin scope)", found.actor)
            return page("login.html", status_code=403, base=base(request), session=None, what=access.what,
                        error="That token lacks the admin scope the console needs (the console can export and "
                              "forget users). Sign in with a token created with --scope admin.")
        return sign_in(request, found.tenant, token.strip(), f"{base(request)}/users", found.actor)

    async def login(request: Request) -> Response:
        form = await form_of(request, None)
        return await _check_token(request, form.get("token", ""))

    async def logout(request: Request) -> Response:
        session = await session_of(request)
        await form_of(request, session)
        access.sessions.close(session.id)
        response = RedirectResponse(f"{base(request)}/login", status_code=303)
        response.delete_cookie(COOKIE, path=base(request))
        return response

    # -- users --------------------------------------------------------------------------------
    async def users(request: Request) -> Response:
        session = await session_of(request)
        params = request.query_params
        query = params.get("q", "").strip()[:256]
        after = params.get("after") or None
        try:
            limit = int(params.get("limit", PAGE_SIZES[0]))
        except ValueError:
            limit = PAGE_SIZES[0]
        limit = limit if limit in PAGE_SIZES else PAGE_SIZES[0]
        tenant = view(session.tenant)
        rows = await call(lambda: tenant.user_summaries(search=query or None, after=after, limit=limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        next_link = None
        if more:
            next_link = "?" + urllib.parse.urlencode({"q": query, "after": rows[-1].user_id, "limit": limit})
        flash, session.flash = session.flash, None
        return page("users.html", base=base(request), session=session, rows=rows, q=query, after=after,
                    limit=limit, sizes=PAGE_SIZES, next_link=next_link, seg=_seg, flash=flash)

    async def user(request: Request, user_id: str | None = None, *, playground: dict[str, Any] | None = None,
                   error: str | None = None, status: int = 200) -> Response:
        session = await session_of(request)
        user_id = user_id if user_id is not None else request.query_params.get("id") or ""
        tenant = view(session.tenant)
        data = await call(lambda: _user_data(tenant, user_id))
        a, b = _versions_to_compare(request, [v.version for v in data["versions"]])
        by_version = {v.version: v for v in data["versions"]}
        diff = word_diff(by_version[a].persona, by_version[b].persona) if a is not None and b is not None else None
        return page("user.html", status_code=status, base=base(request), session=session, user_id=user_id,
                    seg=_seg, a=a, b=b, diff=diff, playground=playground, error=error, max_drafts=MAX_DRAFTS,
                    **data)

    async def user_page(request: Request) -> Response:
        return await user(request)

    async def try_judge(request: Request) -> Response:
        session = await session_of(request)
        form = await form_of(request, session)
        user_id = form.get("user_id", "")
        prompt = form.get("prompt", "").strip()
        drafts = [form.get(f"draft_{i}", "").strip() for i in range(1, MAX_DRAFTS + 1)]
        drafts = [d for d in drafts if d]
        state: dict[str, Any] = {"user_id": user_id, "prompt": prompt, "drafts": drafts,
                                 "mode": form.get("mode", "judge"), "verdict": None, "ranking": None,
                                 "failure": None}
        if not prompt or len(drafts) < 2:
            return await user(request, user_id, playground=state, error="Give a prompt and at least two drafts.",
                              status=422)
        tenant = view(session.tenant)
        # in the service, the playground's judgments wait for a judge slot like the API's (its
        # admission: rate, requests in flight, the fair queue); the console alone has none
        admission = getattr(request.app.state, "admission", None)
        try:
            async with contextlib.AsyncExitStack() as admitted:
                if admission is not None:
                    admitted.enter_context(admission.tenant(session.tenant))
                    await admitted.enter_async_context(admission.judging(session.tenant))
                if state["mode"] == "rank":
                    state["ranking"] = await call(lambda: tenant.rank(user_id, prompt, drafts))
                else:
                    state["verdict"] = await call(lambda: tenant.judge(user_id, prompt, drafts[0], drafts[1]))
        except UnknownUserError:
            raise
        except PersonaeError as exc:   # the judge's model failed: said on the page, nothing crashes
            state["failure"] = describe_error(exc)
        return await user(request, user_id, playground=state)

    async def export(request: Request) -> Response:
        session = await session_of(request)
        user_id = request.query_params.get("id") or ""
        tenant = view(session.tenant)
        try:
            judge = await act(session, lambda: tenant.export(user_id))
        except NoPersonaError as exc:
            return _message(request, 409, "Nothing to export yet", str(exc))
        body = json.dumps(judge.to_dict(), ensure_ascii=False, indent=1)
        name = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in user_id)[:100] or "user"
        full = urllib.parse.quote(f"{user_id}.json", safe="")
        logger.info("console: tenant %s exported a user's judge", session.tenant)
        return Response(body, media_type="application/json", headers={
            "Content-Disposition": f"attachment; filename=\"{name}.json\"; filename*=UTF-8''{full}",
            "Cache-Control": "no-store"})

    async def forget(request: Request) -> Response:
        session = await session_of(request)
        form = await form_of(request, session)
        user_id = form.get("user_id", "")
        if form.get("confirm", "") != user_id:
            return await user(request, user_id, error="To forget this user, type the user id exactly.", status=422)
        tenant = view(session.tenant)
        removed = await act(session, lambda: tenant.forget(user_id))
        logger.info("console: tenant %s forgot a user (%s)", session.tenant,
                    ", ".join(f"{n} {table}" for table, n in removed.items()))
        session.flash = f"Forgot {user_id}: " + ", ".join(f"{n} {table}" for table, n in removed.items()) \
            + " removed."
        return RedirectResponse(f"{base(request)}/users", status_code=303)

    for path, handler, methods in (("/login", login_page, ["GET"]), ("/login", login, ["POST"]),
                                   ("/logout", logout, ["POST"]), ("/users", users, ["GET"]),
                                   ("/user", user_page, ["GET"]), ("/user/playground", try_judge, ["POST"]),
                                   ("/user/export", export, ["GET"]), ("/user/forget", forget, ["POST"])):
        router.add_api_route(path, guarded(handler), methods=methods)
    return router


def _versions_to_compare(request: Request, versions: list[int]) -> tuple[int | None, int | None]:
    """The two versions to diff: ``a`` and ``b`` from the query, else the last two."""
    def pick(name: str, default: int | None) -> int | None:
        try:
            value = int(request.query_params.get(name, ""))
        except ValueError:
            return default
        return value if value in versions else default

    if len(versions) < 2:
        return None, None
    return pick("a", versions[-2]), pick("b", versions[-1])


def _user_data(store: PersonaStore, user_id: str) -> dict[str, Any]:
    """Everything the user's page shows, read in one thread."""
    state = store.persona(user_id)
    versions = store.history(user_id)
    evidence = store.evidence(user_id)
    jobs = store.jobs(user_id=user_id, limit=50)
    by_id = {e.pref_id: e for e in evidence}
    changes = []
    previous: set[str] = set()
    for v in versions:
        used = list(v.preference_ids)
        new = [by_id[p] for p in used if p not in previous and p in by_id]
        judged = [e for e in evidence if e.judged and e.arrived_version == v.version]
        changes.append({"version": v, "new": new, "judged": judged, "fitted_on": len(used)})
        previous = set(used)
    judged_all = [e for e in evidence if e.judged]
    cold = [e for e in judged_all if e.arrived_version == 0]
    points, right = [], 0
    for k, e in enumerate(judged_all, start=1):
        right += bool(e.correct)
        lo, hi = wilson_interval(right, k) or (None, None)
        points.append((k, right / k, lo, hi, e.arrived_version))
    accuracy_chart = chart("line", [p[0] for p in points], [
        {"label": "95% interval (low)", "data": [p[2] for p in points], "pointRadius": 0, "borderWidth": 0,
         "fill": False, "legendHidden": True},
        {"label": "95% interval", "data": [p[3] for p in points], "pointRadius": 0, "borderWidth": 0,
         "fill": "-1", "backgroundColor": "rgba(47, 91, 211, 0.18)"},
        {"label": "prequential accuracy", "data": [p[1] for p in points], "borderColor": "#2f5bd3",
         "backgroundColor": "#2f5bd3", "pointRadius": 0 if len(points) > 60 else 2, "fill": False},
    ], x_title="preferences judged, in arrival order", y_title="right before learning") if points else None
    return {"state": state, "versions": versions, "changes": changes, "cold": cold, "jobs": jobs,
            "pairs": len(evidence), "accuracy_chart": accuracy_chart}

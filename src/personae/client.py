"""A client of the persona service (``personae serve-api``) with the persona store's own methods.

::

    from personae.client import PersonaeClient            # instead of PersonaStore(...)

    store = PersonaeClient("http://127.0.0.1:8000", token="pst_...")   # or $PERSONAE_TOKEN
    store.add_preferences("u1", [PreferenceRecord([Turn("user", q)], chosen=a, rejected=b)])
    store.judge("u1", q, draft_1, draft_2).preferred

The methods take and return what :class:`personae.store.PersonaStore`'s do (``AddResult``,
``PersonaState``, ``Verdict``, ``Ranking``, ...) and raise the same errors:
:class:`~personae.store.UnknownUserError` for a user the tenant does not hold,
:class:`~personae.errors.DataError` naming the record and field of a rejected preference,
:class:`~personae.errors.LMCallError` when the judge's model failed. What only a remote call
can hit raises :class:`ServiceError` (a bad token, a body too large, a server that stays
unavailable). Every route is idempotent (preferences by their id or content), so a dropped
connection, a 429 (the tenant's rate) or a 502-504 is retried ``retries`` times, waiting what
``Retry-After`` says (at most ``max_wait`` seconds).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from personae.data import PreferenceRecord, Turn
from personae.errors import ERROR_KINDS, ConfigError, DataError, ServiceError, store_error
from personae.programs import PersonalizedJudge, Verdict, judge_path
from personae.store import AddResult, Job, PersonaState, PersonaVersion, Ranking

__all__ = ["AsyncPersonaeClient", "PersonaeClient", "ServiceError"]

T = TypeVar("T")
# what the service's error table marks retryable (429 rate_limited, 502, 503), and a proxy's 504
_RETRIED_STATUS = frozenset({504} | {kind.status for kind in ERROR_KINDS.values() if kind.retry})
# failures before the request reached the service, or a connection it dropped: safe to send again.
# A read timeout is not among them: the service may still be judging, and a resend would pay twice.
_RETRIED_TRANSPORT = (httpx.NetworkError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.RemoteProtocolError)
"""Sent again: the connection was refused, reset or closed before the answer (every route is
idempotent). A read timeout is not: the service took the request and did not answer in time."""


@cache
def _adapter(kind: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(kind)


def _read(kind: Any, data: Any) -> Any:
    """JSON into the store's result type (dataclasses validated by pydantic, as the server wrote them)."""
    return _adapter(kind).validate_python(data)


def _preference(item: PreferenceRecord | Mapping[str, Any], index: int, user_id: str) -> dict[str, Any]:
    if isinstance(item, Mapping):
        if "context" not in item and isinstance(item.get("prompt"), str) and "record_id" not in item:
            return dict(item)   # already the API's form
        data = dict(item)
        if "context" not in data and isinstance(data.get("prompt"), str):
            data["context"] = [{"role": "user", "content": data.pop("prompt")}]
        try:
            item = PreferenceRecord.from_dict(data)
        except DataError as exc:
            raise DataError(exc.message, source=f"add_preferences({user_id!r})", record=index, field=exc.field) \
                from None
    if not isinstance(item, PreferenceRecord):
        raise DataError(f"expected a PreferenceRecord, got {type(item).__name__}",
                        source=f"add_preferences({user_id!r})", record=index)
    if item.user_id not in (None, "", user_id):
        raise DataError(f"the record belongs to user {item.user_id!r}, not {user_id!r}",
                        source=f"add_preferences({user_id!r})", record=index, field="user_id")
    conversation = item.metadata.get("conversation_id")
    return {"id": item.record_id or None, "context": [{"role": t.role, "content": t.content} for t in item.context],
            "chosen": item.chosen, "rejected": item.rejected,
            **({"conversation_id": str(conversation)} if conversation not in (None, "") else {})}


@dataclass(frozen=True)
class _Call:
    """One request and how to read its answer; ``missing`` is what a 404 means."""

    method: str
    path: str
    parse: Callable[[Any], Any]
    json: Any = None
    params: dict[str, Any] | None = None
    user_id: str | None = None
    missing: Callable[[], Any] | None = None
    conflict: Callable[[], Any] | None = None   # what a 409 means, when it means a value


def _raise_for(call: _Call, response: httpx.Response) -> Any:
    """The store's error for an error answer (:func:`~personae.errors.store_error`, the one table
    the service answers from), or the value a 404 or 409 stands for in this call."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    answer = ServiceError(response.status_code, str(error.get("type") or "http_error"),
                          str(error.get("message") or response.reason_phrase or ""), field=error.get("field"),
                          retry_after=error.get("retry_after"), request_id=response.headers.get("x-request-id"),
                          failure=error.get("failure"), errors=error.get("errors"), record=error.get("record"))
    if answer.kind == "not_found" and call.missing is not None:   # not "no_route": a wrong URL is no missing user
        return call.missing()
    if answer.kind == "conflict" and call.conflict is not None:
        return call.conflict()
    raise store_error(answer, call=f"{call.method} {call.path}", user_id=call.user_id)


def _wait(response: httpx.Response | None, attempt: int, max_wait: float) -> float:
    header = response.headers.get("retry-after") if response is not None else None
    try:
        wanted = float(header) if header is not None else 0.5 * 2 ** attempt
    except ValueError:
        wanted = 1.0
    return min(max(wanted, 0.0), max_wait)


def _exchange(call: _Call, retries: int, max_wait: float,
              base_url: str) -> Generator[float | None, httpx.Response | Exception | None, Any]:
    """One call's conversation with the service, the one request core of both clients: it yields
    None to have the request sent (and receives the response, or the transport error that kept
    it from arriving) or the seconds to wait before sending it again, and returns the call's
    value or raises its error. Every route is idempotent, so a dropped connection, a 429 or a
    502-504 is sent again ``retries`` times, waiting what ``Retry-After`` says (at most ``max_wait``)."""
    resent = False
    for attempt in range(retries + 1):
        outcome = yield None
        if isinstance(outcome, Exception):
            resent = True
            if attempt >= retries:
                raise ServiceError(0, "unreachable", f"{base_url}: {type(outcome).__name__}: {outcome}") from outcome
            yield _wait(None, attempt, max_wait)
            continue
        if outcome is None:
            raise TypeError("the request core was sent nothing for a request")
        if outcome.status_code in _RETRIED_STATUS and attempt < retries:
            resent = True
            yield _wait(outcome, attempt, max_wait)
            continue
        if outcome.is_success:
            return call.parse(outcome.json())
        if resent and call.method == "DELETE" and outcome.status_code == 404:
            return call.parse({"removed": {}})   # an earlier attempt did it; its answer was lost or an error
        return _raise_for(call, outcome)
    raise AssertionError("unreachable")  # the loop returns or raises


class _Routes:
    """The requests behind the store's methods (shared by the sync and async clients)."""

    @staticmethod
    def user(user_id: str) -> str:
        if not isinstance(user_id, str) or not user_id:
            raise ConfigError(f"user_id must be a non-empty string, got {user_id!r:.80}")
        return f"/v1/users/{quote(user_id, safe='')}"

    def add_preferences(self, user_id: str, records: Iterable[PreferenceRecord | Mapping[str, Any]]) -> _Call:
        items = [_preference(r, i, user_id) for i, r in enumerate(records, 1)]
        return _Call("POST", f"{self.user(user_id)}/preferences", lambda d: _read(AddResult, d),
                     json={"preferences": items}, user_id=user_id)

    def preferences(self, user_id: str) -> _Call:
        def records(data: Any) -> list[PreferenceRecord]:
            return [PreferenceRecord([Turn(t["role"], t["content"]) for t in p["context"]], p["chosen"], p["rejected"],
                                     user_id=user_id, record_id=p["id"],
                                     metadata={"conversation_id": p["conversation_id"]} if p.get("conversation_id")
                                     else {}) for p in data["preferences"]]
        return _Call("GET", f"{self.user(user_id)}/preferences", records, user_id=user_id)

    def fitted_judge(self, user_id: str, version: int | None) -> _Call:
        return replace(self.export(user_id, version), conflict=lambda: None)

    def persona(self, user_id: str) -> _Call:
        return _Call("GET", f"{self.user(user_id)}/persona", lambda d: _read(PersonaState, d), user_id=user_id)

    def history(self, user_id: str) -> _Call:
        return _Call("GET", f"{self.user(user_id)}/persona/history",
                     lambda d: _read(list[PersonaVersion], d["versions"]), user_id=user_id)

    def exists(self, user_id: str) -> _Call:
        return _Call("GET", f"{self.user(user_id)}/persona", lambda d: True, missing=lambda: False)

    def export(self, user_id: str, version: int | None) -> _Call:
        return _Call("GET", f"{self.user(user_id)}/export", lambda d: PersonalizedJudge.from_dict(d),
                     params={"version": version} if version is not None else None, user_id=user_id)

    def judge(self, user_id: str, prompt: str, response_a: str, response_b: str,
              abstain_below: float | None) -> _Call:
        body = {"prompt": prompt, "response_a": response_a, "response_b": response_b,
                **({"abstain_below": abstain_below} if abstain_below is not None else {})}
        return _Call("POST", f"{self.user(user_id)}/judge", lambda d: _read(Verdict, d), json=body, user_id=user_id)

    def rank(self, user_id: str, prompt: str, candidates: Sequence[str]) -> _Call:
        return _Call("POST", f"{self.user(user_id)}/rank", lambda d: _read(Ranking, d),
                     json={"prompt": prompt, "candidates": list(candidates)}, user_id=user_id)

    def generation_messages(self, user_id: str) -> _Call:
        return _Call("GET", f"{self.user(user_id)}/generation-prompt", lambda d: list(d["messages"]),
                     user_id=user_id)

    def forget(self, user_id: str) -> _Call:
        return _Call("DELETE", self.user(user_id), lambda d: dict(d["removed"]), user_id=user_id)

    def users(self, limit: int, after: str | None) -> _Call:
        params: dict[str, Any] = {"limit": limit, **({"after": after} if after is not None else {})}
        return _Call("GET", "/v1/users", lambda d: (list(d["users"]), d.get("next_after")), params=params)

    def job(self, job_id: str) -> _Call:
        if not re.fullmatch(r"[0-9a-f]{32}", str(job_id)):
            return _Call("GET", "", lambda d: None, missing=lambda: None)   # no such id can exist
        return _Call("GET", f"/v1/jobs/{job_id}", lambda d: _read(Job, d), missing=lambda: None)

    def health(self, ready: bool) -> _Call:
        return _Call("GET", "/readyz" if ready else "/healthz", lambda d: d)


def _headers(token: str | None) -> dict[str, str]:
    from personae import __version__

    headers = {"User-Agent": f"personae-client/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


class PersonaeClient:
    """The persona store over HTTP: the methods of :class:`~personae.store.PersonaStore`.

    ``base_url`` is the service (``http://127.0.0.1:8000``); ``token`` a bearer token bound to
    a tenant (default ``$PERSONAE_TOKEN``). ``transport`` or ``http_client`` replace httpx's
    defaults (a proxy, mTLS, a test transport; an ``http_client`` brings its own base URL, the
    token is still sent). Thread-safe; close it, or use it as a context manager.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, token: str | None = None, timeout: float = 60.0,
                 retries: int = 2, max_wait: float = 10.0, transport: httpx.BaseTransport | None = None,
                 http_client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.max_wait = max_wait
        self._routes = _Routes()
        self._own = http_client is None
        self._auth = _headers(token if token is not None else os.environ.get("PERSONAE_TOKEN"))
        self._http = http_client or httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def _run(self, call: _Call) -> Any:
        if not call.path:
            return call.missing() if call.missing else None
        exchange = _exchange(call, self.retries, self.max_wait, self.base_url)
        try:
            step = next(exchange)
            while True:
                if step is None:
                    try:
                        outcome: httpx.Response | Exception = self._http.request(
                            call.method, call.path, json=call.json, params=call.params, headers=self._auth)
                    except _RETRIED_TRANSPORT as exc:
                        outcome = exc
                    step = exchange.send(outcome)
                else:
                    time.sleep(step)
                    step = exchange.send(None)
        except StopIteration as done:
            return done.value

    def for_tenant(self, tenant: str) -> PersonaeClient:
        """Not possible over HTTP: a token is bound to one tenant, so this raises
        :class:`~personae.errors.ConfigError` (make a client with the other tenant's token)."""
        raise ConfigError("a service token is bound to one tenant: make a client with another tenant's token")

    def close(self) -> None:
        """Close the HTTP connections (unless ``http_client`` was passed in: its owner closes it)."""
        if self._own:
            self._http.close()

    def __enter__(self) -> PersonaeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the store's methods ------------------------------------------------------------------
    def add_preferences(self, user_id: str, records: Iterable[PreferenceRecord | Mapping[str, Any]]) -> AddResult:
        """The store's :meth:`personae.store.PersonaStore.add_preferences` over HTTP: store the user's
        new preferences (records or mappings); returns the :class:`~personae.store.AddResult`."""
        result: AddResult = self._run(self._routes.add_preferences(user_id, records))
        return result

    def preferences(self, user_id: str) -> list[PreferenceRecord]:
        """The store's :meth:`personae.store.PersonaStore.preferences` over HTTP: the user's stored
        preferences, in the order they arrived."""
        records: list[PreferenceRecord] = self._run(self._routes.preferences(user_id))
        return records

    def fitted_judge(self, user_id: str, version: int | None = None) -> PersonalizedJudge | None:
        """The user's judge (None before the first persona)."""
        judge: PersonalizedJudge | None = self._run(self._routes.fitted_judge(user_id, version))
        return judge

    def persona(self, user_id: str) -> PersonaState:
        """The store's :meth:`personae.store.PersonaStore.persona` over HTTP: the user's current
        :class:`~personae.store.PersonaState`."""
        state: PersonaState = self._run(self._routes.persona(user_id))
        return state

    def history(self, user_id: str) -> list[PersonaVersion]:
        """The store's :meth:`personae.store.PersonaStore.history` over HTTP: every persona version of
        the user, oldest first, as :class:`~personae.store.PersonaVersion` rows."""
        versions: list[PersonaVersion] = self._run(self._routes.history(user_id))
        return versions

    def exists(self, user_id: str) -> bool:
        """Whether the service holds preferences or a persona for the user."""
        return bool(self._run(self._routes.exists(user_id)))

    def export(self, user_id: str, path: str | os.PathLike[str] | None = None, *,
               version: int | None = None) -> PersonalizedJudge:
        """The store's :meth:`personae.store.PersonaStore.export` over HTTP: the user's judge (newest
        version unless ``version``), saved to ``path`` when given (a folder gets ``<user>.json``)."""
        judge: PersonalizedJudge = self._run(self._routes.export(user_id, version))
        if path is not None:
            _save(judge, path, user_id)
        return judge

    def judge(self, user_id: str, prompt: str, response_a: str, response_b: str, *,
              abstain_below: float | None = None) -> Verdict:
        """The store's :meth:`personae.store.PersonaStore.judge` over HTTP: which of ``response_a`` and
        ``response_b`` the user prefers, as a :class:`~personae.programs.Verdict`."""
        verdict: Verdict = self._run(self._routes.judge(user_id, prompt, response_a, response_b, abstain_below))
        return verdict

    def rank(self, user_id: str, prompt: str, candidates: Sequence[str]) -> Ranking:
        """The store's :meth:`personae.store.PersonaStore.rank` over HTTP: the best of ``candidates``
        for the user, as a :class:`~personae.store.Ranking`."""
        ranking: Ranking = self._run(self._routes.rank(user_id, prompt, candidates))
        return ranking

    def generation_messages(self, user_id: str) -> list[dict[str, str]]:
        """The store's :meth:`personae.store.PersonaStore.generation_messages` over HTTP: a one-message
        system prompt to write responses this user prefers."""
        messages: list[dict[str, str]] = self._run(self._routes.generation_messages(user_id))
        return messages

    def forget(self, user_id: str) -> dict[str, int]:
        """The store's :meth:`personae.store.PersonaStore.forget` over HTTP: remove everything held on
        the user; returns how many rows of each table went."""
        removed: dict[str, int] = self._run(self._routes.forget(user_id))
        return removed

    def users(self, *, limit: int | None = None, after: str | None = None) -> list[str]:
        """The tenant's users, in id order: at most ``limit`` of them, those after ``after`` (fetched a
        page of up to 1000 at a time)."""
        out: list[str] = []
        while limit is None or len(out) < limit:
            page, after = self._run(self._routes.users(1000 if limit is None else min(1000, limit - len(out)), after))
            out += page
            if after is None:
                break
        return out

    def job(self, job_id: str) -> Job | None:
        """The update job with this id (None if the tenant has no such job)."""
        found: Job | None = self._run(self._routes.job(job_id))
        return found

    def wait_job(self, job_id: str, timeout: float = 60.0, poll_s: float = 0.2) -> Job | None:
        """Wait until the job is done or failed (None if there is no such job); the job as it
        stands when ``timeout`` runs out."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.job(job_id)
            if found is None or found.status in ("done", "failed") or time.monotonic() >= deadline:
                return found
            time.sleep(poll_s)

    def health(self, *, ready: bool = False) -> dict[str, Any]:
        """``/healthz`` (the process answers) or, with ``ready``, ``/readyz`` (store and judge ready)."""
        answer: dict[str, Any] = self._run(self._routes.health(ready))
        return answer


def _save(judge: PersonalizedJudge, path: str | os.PathLike[str], user_id: str) -> None:
    target = Path(path)
    judge.save(judge_path(target, user_id) if target.is_dir() or not target.suffix else target)


class AsyncPersonaeClient:
    """:class:`PersonaeClient` for asynchronous applications: the same methods, awaited (the
    methods of :class:`~personae.store.AsyncPersonaStore`)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, token: str | None = None, timeout: float = 60.0,
                 retries: int = 2, max_wait: float = 10.0, transport: httpx.AsyncBaseTransport | None = None,
                 http_client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.max_wait = max_wait
        self._routes = _Routes()
        self._own = http_client is None
        self._auth = _headers(token if token is not None else os.environ.get("PERSONAE_TOKEN"))
        self._http = http_client or httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    async def _run(self, call: _Call) -> Any:
        if not call.path:
            return call.missing() if call.missing else None
        exchange = _exchange(call, self.retries, self.max_wait, self.base_url)
        try:
            step = next(exchange)
            while True:
                if step is None:
                    try:
                        outcome: httpx.Response | Exception = await self._http.request(
                            call.method, call.path, json=call.json, params=call.params, headers=self._auth)
                    except _RETRIED_TRANSPORT as exc:
                        outcome = exc
                    step = exchange.send(outcome)
                else:
                    await asyncio.sleep(step)
                    step = exchange.send(None)
        except StopIteration as done:
            return done.value

    def for_tenant(self, tenant: str) -> AsyncPersonaeClient:
        """Not possible over HTTP: a token is bound to one tenant, so this raises
        :class:`~personae.errors.ConfigError` (make a client with the other tenant's token)."""
        raise ConfigError("a service token is bound to one tenant: make a client with another tenant's token")

    async def close(self) -> None:
        """Close the HTTP connections (unless ``http_client`` was passed in: its owner closes it)."""
        if self._own:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncPersonaeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def add_preferences(self, user_id: str,
                              records: Iterable[PreferenceRecord | Mapping[str, Any]]) -> AddResult:
        """The store's :meth:`personae.store.PersonaStore.add_preferences` over HTTP: store the user's
        new preferences (records or mappings); returns the :class:`~personae.store.AddResult`."""
        result: AddResult = await self._run(self._routes.add_preferences(user_id, records))
        return result

    async def preferences(self, user_id: str) -> list[PreferenceRecord]:
        """The store's :meth:`personae.store.PersonaStore.preferences` over HTTP: the user's stored
        preferences, in the order they arrived."""
        records: list[PreferenceRecord] = await self._run(self._routes.preferences(user_id))
        return records

    async def fitted_judge(self, user_id: str, version: int | None = None) -> PersonalizedJudge | None:
        """The user's judge (None before the first persona)."""
        judge: PersonalizedJudge | None = await self._run(self._routes.fitted_judge(user_id, version))
        return judge

    async def persona(self, user_id: str) -> PersonaState:
        """The store's :meth:`personae.store.PersonaStore.persona` over HTTP: the user's current
        :class:`~personae.store.PersonaState`."""
        state: PersonaState = await self._run(self._routes.persona(user_id))
        return state

    async def history(self, user_id: str) -> list[PersonaVersion]:
        """The store's :meth:`personae.store.PersonaStore.history` over HTTP: every persona version of
        the user, oldest first, as :class:`~personae.store.PersonaVersion` rows."""
        versions: list[PersonaVersion] = await self._run(self._routes.history(user_id))
        return versions

    async def exists(self, user_id: str) -> bool:
        """Whether the service holds preferences or a persona for the user."""
        return bool(await self._run(self._routes.exists(user_id)))

    async def export(self, user_id: str, path: str | os.PathLike[str] | None = None, *,
                     version: int | None = None) -> PersonalizedJudge:
        """The store's :meth:`personae.store.PersonaStore.export` over HTTP: the user's judge (newest
        version unless ``version``), saved to ``path`` when given (a folder gets ``<user>.json``)."""
        judge: PersonalizedJudge = await self._run(self._routes.export(user_id, version))
        if path is not None:
            _save(judge, path, user_id)
        return judge

    async def judge(self, user_id: str, prompt: str, response_a: str, response_b: str, *,
                    abstain_below: float | None = None) -> Verdict:
        """The store's :meth:`personae.store.PersonaStore.judge` over HTTP: which of ``response_a`` and
        ``response_b`` the user prefers, as a :class:`~personae.programs.Verdict`."""
        verdict: Verdict = await self._run(self._routes.judge(user_id, prompt, response_a, response_b,
                                                              abstain_below))
        return verdict

    async def rank(self, user_id: str, prompt: str, candidates: Sequence[str]) -> Ranking:
        """The store's :meth:`personae.store.PersonaStore.rank` over HTTP: the best of ``candidates``
        for the user, as a :class:`~personae.store.Ranking`."""
        ranking: Ranking = await self._run(self._routes.rank(user_id, prompt, candidates))
        return ranking

    async def generation_messages(self, user_id: str) -> list[dict[str, str]]:
        """The store's :meth:`personae.store.PersonaStore.generation_messages` over HTTP: a one-message
        system prompt to write responses this user prefers."""
        messages: list[dict[str, str]] = await self._run(self._routes.generation_messages(user_id))
        return messages

    async def forget(self, user_id: str) -> dict[str, int]:
        """The store's :meth:`personae.store.PersonaStore.forget` over HTTP: remove everything held on
        the user; returns how many rows of each table went."""
        removed: dict[str, int] = await self._run(self._routes.forget(user_id))
        return removed

    async def users(self, *, limit: int | None = None, after: str | None = None) -> list[str]:
        """The tenant's users, in id order: at most ``limit`` of them, those after ``after`` (fetched a
        page of up to 1000 at a time)."""
        out: list[str] = []
        while limit is None or len(out) < limit:
            page, after = await self._run(self._routes.users(1000 if limit is None else min(1000, limit - len(out)),
                                                             after))
            out += page
            if after is None:
                break
        return out

    async def job(self, job_id: str) -> Job | None:
        """The update job with this id (None if the tenant has no such job)."""
        found: Job | None = await self._run(self._routes.job(job_id))
        return found

    async def wait_job(self, job_id: str, timeout: float = 60.0, poll_s: float = 0.2) -> Job | None:
        """Wait until the job is done or failed (None if there is no such job); the job as it stands
        when ``timeout`` runs out."""
        deadline = time.monotonic() + timeout
        while True:
            found = await self.job(job_id)
            if found is None or found.status in ("done", "failed") or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(poll_s)

    async def health(self, *, ready: bool = False) -> dict[str, Any]:
        """``/healthz`` (the process answers) or, with ``ready``, ``/readyz`` (store and judge
        ready)."""
        answer: dict[str, Any] = await self._run(self._routes.health(ready))
        return answer

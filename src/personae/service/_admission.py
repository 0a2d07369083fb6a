"""Admission: overload is refused fast and fairly, and health keeps answering.

Every guard runs in the event loop, so a refused or waiting request holds no thread:

* a **token bucket per tenant** (``rate_limit`` requests a second, ``rate_burst`` at once) over
  every ``/v1`` and ``/mcp`` request, and a **cap on a tenant's requests in flight**
  (``tenant_concurrency``): beyond either, 429 ``rate_limited`` with ``Retry-After`` (from the
  bucket: when its next token is due);
* a **bounded, fair queue in front of the judge** (the judge and rank routes, the MCP
  ``judge_drafts`` and ``rank_drafts`` tools): ``judge_concurrency`` judgments at once; beyond
  them at most ``judge_queue`` waiters *per tenant* (a greedy tenant fills its own line, not a
  polite one's); a freed slot goes to the tenant holding the fewest slots (tenants holding as
  many take turns), to its oldest waiter. A full line, or a wait past ``judge_queue_timeout_s``,
  is answered 503 ``overloaded`` with ``Retry-After`` (an MCP tool call: the tool error
  ``overloaded: ...``);
* ``/readyz`` pings the store on threads of its own (:attr:`Admission.health`), and judgments
  use at most ``judge_concurrency`` of the ``threads``, which must be fewer: health, metrics
  and the other routes answer while every judge slot is busy.

A slot is given back on every path: an answer, an error, a timeout, a client that went away
while waiting, a cancelled task.

No ``from __future__ import annotations`` here: FastAPI reads the annotations at definition time.
"""

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from personae.errors import ConfigError, ServiceError
from personae.service.deps import serves, token_tenant
from personae.specs import ServiceSettings
from personae.store import PersonaStore

try:
    import anyio
    from fastapi import Depends, Request
except ImportError as exc:  # pragma: no cover - the extra is named in the error
    from personae.errors import MissingExtraError

    raise MissingExtraError("service", "the HTTP service") from exc

__all__ = ["JUDGE_SLOT", "JUDGE_TOOLS", "REASONS", "TENANT_ADMISSION", "Admission", "FairQueue",
           "McpAdmission", "Shed", "TokenBucket", "judge_threads"]

REASONS = ("rate_limit", "tenant_concurrency", "queue_full", "queue_timeout")
"""Why a request was refused (the ``reason`` label of ``personae_requests_refused_total``)."""
JUDGE_TOOLS = frozenset({"judge_drafts", "rank_drafts"})
"""The MCP tools that ask the judge, and so wait in its queue."""
HEALTH_THREADS = 2
"""Threads of ``/readyz``'s own, apart from the request threads."""

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def judge_threads(settings: ServiceSettings) -> int:
    """Judgments at once: ``judge_concurrency``, by default three quarters of ``threads`` (at least 1)."""
    if settings.judge_concurrency is not None:
        return settings.judge_concurrency
    return max(1, settings.threads * 3 // 4)


@dataclass
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` kept; a request takes one."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one is due."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class FairQueue:
    """``slots`` holders at once; beyond them at most ``per_tenant`` waiters a tenant, each for at
    most ``timeout_s``. A freed slot passes straight to a waiter, so none can be taken from under
    it: to the oldest waiter of the tenant holding the fewest slots, tenants that hold as many
    taking turns (round-robin). A tenant whose requests arrive unevenly catches up on its share
    as soon as it has a waiter again; a greedy one cannot starve it."""

    def __init__(self, slots: int, per_tenant: int, timeout_s: float) -> None:
        self.slots = slots
        self.per_tenant = per_tenant
        self.timeout_s = timeout_s
        self.running = 0
        self.depth = 0
        self.mean_s = 1.0   # a slot's holding time, smoothed: what Retry-After is estimated from
        self._held: dict[str, int] = {}   # slots each tenant holds
        self._lines: dict[str, deque[asyncio.Future[None]]] = {}
        self._turns: deque[str] = deque()   # tenants with waiters, whose turn is first first

    def retry_after(self) -> int:
        """Seconds until a slot is likely free for a request that arrives now (1 to 60)."""
        return min(60, max(1, math.ceil(self.mean_s * (self.depth / self.slots + 1))))

    @asynccontextmanager
    async def slot(self, tenant: str, gone: Callable[[], Awaitable[Any]] | None = None) -> AsyncIterator[None]:
        """Hold a slot for the block; 503 ``overloaded`` when ``tenant``'s line is full or the wait
        times out, 499 when ``gone()`` (the client went away) finishes first."""
        await self._acquire(tenant, gone)
        start = time.monotonic()
        try:
            yield
        finally:
            self.mean_s = 0.8 * self.mean_s + 0.2 * (time.monotonic() - start)
            self.release(tenant)

    async def _acquire(self, tenant: str, gone: Callable[[], Awaitable[Any]] | None) -> None:
        if self.running < self.slots and not self._turns:
            self.running += 1
            self._held[tenant] = self._held.get(tenant, 0) + 1
            return
        line = self._lines.get(tenant)
        if (len(line) if line is not None else 0) >= self.per_tenant:
            raise Shed("queue_full", f"the judge is busy and {self.per_tenant} of this tenant's requests "
                                     "already wait for it", self.retry_after())
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if line is None:
            line = self._lines[tenant] = deque()
            self._turns.append(tenant)
        line.append(waiter)
        self.depth += 1
        watcher = asyncio.ensure_future(gone()) if gone is not None else None
        try:
            await asyncio.wait([waiter] if watcher is None else [waiter, watcher], timeout=self.timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
        except BaseException:   # cancelled while waiting: a slot handed over meanwhile is passed on
            self._leave(tenant, waiter)
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
        if waiter.done():
            return
        self._leave(tenant, waiter)
        if watcher is not None and watcher.done():
            raise ServiceError(499, "overloaded", "the client went away while its request waited for the judge")
        raise Shed("queue_timeout", f"the judge stayed busy for {self.timeout_s:g} s", self.retry_after())

    def _leave(self, tenant: str, waiter: asyncio.Future[None]) -> None:
        """A waiter gives up: out of its line, or, if it was handed a slot already, the slot passed on."""
        if waiter.done():
            self.release(tenant)
            return
        waiter.cancel()
        line = self._lines[tenant]
        line.remove(waiter)
        self.depth -= 1
        if not line:
            del self._lines[tenant]
            self._turns.remove(tenant)

    def release(self, tenant: str) -> None:
        """``tenant`` gives a slot back: it passes to the next waiter (see the class), else it is free."""
        held = self._held[tenant] - 1
        if held:
            self._held[tenant] = held
        else:
            del self._held[tenant]
        if not self._turns:
            self.running -= 1
            return
        turn = min(self._turns, key=lambda t: self._held.get(t, 0))   # the first of the fewest: round-robin
        self._turns.remove(turn)
        line = self._lines[turn]
        waiter = line.popleft()   # never done: a waiter that gives up leaves its line at once
        self.depth -= 1
        if line:
            self._turns.append(turn)   # its next waiter waits for the other tenants' turns
        else:
            del self._lines[turn]
        self._held[turn] = self._held.get(turn, 0) + 1
        waiter.set_result(None)


class Shed(ServiceError):
    """503 ``overloaded``: the judge's queue refused the request (``reason``: queue_full, queue_timeout)."""

    def __init__(self, reason: str, message: str, retry_after: int) -> None:
        super().__init__(503, "overloaded", message, retry_after=retry_after)
        self.reason = reason


class Admission:
    """The service's guards against overload (see the module docstring), over ``settings``.
    ``refused(reason)`` is called for each refusal (the metrics count them)."""

    def __init__(self, settings: ServiceSettings) -> None:
        slots = judge_threads(settings)
        for name, value, least in (("--threads", settings.threads, 1), ("--judge-concurrency", slots, 1),
                                   ("--judge-queue", settings.judge_queue, 0),
                                   ("--tenant-concurrency", settings.tenant_concurrency, 1),
                                   ("--rate-burst", settings.rate_burst, 1)):
            if value is not None and value < least:
                raise ConfigError(f"{name} must be at least {least}, not {value}")
        if settings.rate_limit is not None and not settings.rate_limit > 0:
            raise ConfigError(f"--rate-limit must be above 0 requests a second, not {settings.rate_limit}")
        if not settings.judge_queue_timeout_s > 0:
            raise ConfigError(f"--judge-queue-timeout must be above 0 s, not {settings.judge_queue_timeout_s}")
        if slots >= settings.threads > 1:
            raise ConfigError(f"--judge-concurrency {slots} leaves none of --threads {settings.threads} to the other "
                              "requests: keep it below")
        self.settings = settings
        self.queue = FairQueue(slots, settings.judge_queue, settings.judge_queue_timeout_s)
        self.health = anyio.CapacityLimiter(HEALTH_THREADS)
        self.in_flight: dict[str, int] = {}
        self.buckets: dict[str, TokenBucket] = {}
        self.refused: Callable[[str], None] = lambda reason: None

    @property
    def requests_in_flight(self) -> int:
        """Admitted ``/v1`` and ``/mcp`` requests not yet answered, every tenant's."""
        return sum(self.in_flight.values())

    @contextmanager
    def tenant(self, tenant: str) -> Iterator[None]:
        """One request of ``tenant`` in flight for the block; 429 ``rate_limited`` beyond its cap or rate."""
        settings = self.settings
        held = self.in_flight.get(tenant, 0)
        if settings.tenant_concurrency is not None and held >= settings.tenant_concurrency:
            self.refused("tenant_concurrency")
            raise ServiceError(429, "rate_limited", f"this tenant has {held} requests in flight, its most",
                               retry_after=1)
        if settings.rate_limit is not None:
            now = time.monotonic()
            bucket = self.buckets.get(tenant)
            if bucket is None:
                burst = settings.rate_burst or max(1, math.ceil(settings.rate_limit))
                bucket = self.buckets[tenant] = TokenBucket(settings.rate_limit, burst, burst, now)
            wait = bucket.take(now)
            if wait:
                self.refused("rate_limit")
                raise ServiceError(429, "rate_limited", f"this tenant's requests are over {settings.rate_limit:g} a "
                                   "second", retry_after=max(1, math.ceil(wait)))
        self.in_flight[tenant] = held + 1
        try:
            yield
        finally:
            left = self.in_flight[tenant] - 1
            if left:
                self.in_flight[tenant] = left
            else:
                del self.in_flight[tenant]

    @asynccontextmanager
    async def judging(self, tenant: str, gone: Callable[[], Awaitable[Any]] | None = None) -> AsyncIterator[None]:
        """A judge slot for the block (:meth:`FairQueue.slot`), each refusal counted."""
        try:
            async with self.queue.slot(tenant, gone):
                yield
        except Shed as exc:
            self.refused(exc.reason)
            raise


def _disconnect(receive: Receive) -> Callable[[], Awaitable[None]]:
    """What finishes when the client goes away (its request body already read)."""
    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
    return gone


def _admission(request: Request) -> Admission:
    admission: Admission = request.app.state.admission
    return admission


TokenTenant = Annotated[str, Depends(token_tenant)]


async def _tenant_admitted(request: Request, tenant: TokenTenant) -> AsyncIterator[None]:
    with _admission(request).tenant(tenant):
        yield


async def _judge_slot(request: Request, tenant: Annotated[PersonaStore, serves("judge")]) -> AsyncIterator[None]:
    # after the scope check (the same dependency as the route's, solved once): a token that may
    # not judge is refused at once, never after waiting in line
    async with _admission(request).judging(tenant.tenant, _disconnect(request.receive)):
        yield


TENANT_ADMISSION = Depends(_tenant_admitted, scope="function")
"""Every ``/v1`` route's: the tenant's rate and requests in flight."""
JUDGE_SLOT = Depends(_judge_slot, scope="function")
"""The judge and rank routes': a slot of the judge, waited for fairly."""


class McpAdmission:
    """``/mcp`` behind admission (inside :class:`~personae.service.mcp.McpGate`, which knows the
    caller): each request counts against its tenant's rate and requests in flight (429 beyond),
    and a call of a judging tool waits for a judge slot (a tool error ``overloaded: ...`` when shed)."""

    def __init__(self, app: Any, admission: Admission, tenant_of: Callable[[], str]) -> None:
        self.app, self.admission, self.tenant_of = app, admission, tenant_of

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        """Refuse the request, or pass it on once admitted."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tenant, call = self.tenant_of(), None
        async with AsyncExitStack() as admitted:   # what the request holds, given back when it is answered
            try:
                admitted.enter_context(self.admission.tenant(tenant))
                original = receive
                body, receive = await _buffered(original)
                call = _judge_call(body)
                if call is not None:   # the watcher reads the client's own channel; the app gets the replay
                    await admitted.enter_async_context(self.admission.judging(tenant, _disconnect(original)))
            except Shed as exc:   # the tools' own way to fail: a tool error that starts with its kind
                text = f"{exc.kind}: {exc.message}; retry after {exc.retry_after} s"
                await _answer(send, 200, {"jsonrpc": "2.0", "id": call, "result": {
                    "content": [{"type": "text", "text": text}], "isError": True}}, exc.retry_after)
                return
            except ServiceError as exc:
                if exc.status != 499:   # 499: the client went away, no one to answer
                    await _answer(send, exc.status, {"error": {"type": exc.kind, "message": exc.message,
                                                               "retry_after": exc.retry_after}}, exc.retry_after)
                return
            await self.app(scope, receive, send)


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a ``receive`` that gives it again."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ServiceError(499, "overloaded", "the client went away")
        chunks.append(message.get("body", b""))
        more = bool(message.get("more_body"))
    body, sent = b"".join(chunks), [False]

    async def replay() -> Message:
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _judge_call(body: bytes) -> Any:
    """The JSON-RPC id of a ``tools/call`` of a judging tool (None: another message)."""
    try:
        message = json.loads(body) if body else None
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("method") != "tools/call" or "id" not in message:
        return None
    params = message.get("params")
    return message["id"] if isinstance(params, dict) and params.get("name") in JUDGE_TOOLS else None


async def _answer(send: Send, status: int, body: dict[str, Any], retry_after: int | None) -> None:
    headers = [(b"content-type", b"application/json")]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})

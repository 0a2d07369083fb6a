"""A lean engine for OpenAI-compatible chat servers (vLLM, llama.cpp, SGLang, TGI, hosted OpenAI).

Against a fast server the client's CPU, not the server, bounds a run: through LiteLLM a
judgment costs about 17 ms of client CPU here, most of it in LiteLLM, the OpenAI SDK and
their pydantic models; :class:`HTTPEngine` posts the chat body on keep-alive connections
shared by every thread (``http.client`` from the standard library: httpx's connection pool
alone took half of the remaining CPU) and reads the answer with ``json``, leaving DSPy's own
formatting and parsing as most of what a call costs (see ``benchmarks/throughput.py``).

It is a DSPy engine: ``dspy.LM`` keeps the cache, the retries of transient failures, history
and callbacks; the engine makes one attempt and raises DSPy's canonical errors
(``dspy.lm15``): HTTP 429 is a rate limit (with the server's ``Retry-After``), 408 and 504
and a read that runs past ``timeout`` are timeouts, other 5xx answers and unreadable
bodies are server errors, a refused or dropped connection is a transport error, 401/403 an
authentication error, and a 400 that speaks of the context length is a context-window error.

The key is read when the engine is built, from ``api_key`` or the environment variable
``api_key_env`` names; a pickled engine (what a Ray worker receives) carries the variable's
name, never the key, and reads it again from the worker's environment.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from personae.errors import ConfigError

__all__ = ["DEFAULT_OPENAI_BASE", "AsyncHTTPEngine", "HTTPEngine"]

logger = logging.getLogger(__name__)

DEFAULT_OPENAI_BASE = "https://api.openai.com/v1"
_CONTEXT_WORDS = ("context length", "context_length", "context window", "maximum context", "too many tokens",
                  "prompt is too long", "exceeds the available context")


class HTTPEngine:
    """One attempt at ``POST {api_base}/chat/completions`` per request, on a shared connection pool.

    Args:
        api_base: the server's base URL, e.g. ``http://127.0.0.1:8000/v1``.
        model: the model name the server expects in the body (``openai/<name>`` is sent as ``<name>``).
        api_key: the key, sent as a bearer token; ``None`` reads ``api_key_env``.
        api_key_env: the environment variable that holds the key (``OPENAI_API_KEY`` by default).
        timeout: seconds a request may wait for its answer (default 600, as LiteLLM's); connecting
            may take at least 10 s.
        max_connections: the pool's size: at least the run's concurrency.
        structured_output: the server honours JSON-schema response formats.
        headers: extra headers on every request.
    """

    supported_params = frozenset({"temperature", "max_tokens", "response_format", "seed", "stop", "top_p",
                                  "logprobs", "top_logprobs", "frequency_penalty", "presence_penalty"})

    def __init__(
        self,
        api_base: str,
        model: str,
        *,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float | None = None,
        max_connections: int = 128,
        structured_output: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not api_base or not api_base.startswith(("http://", "https://")):
            raise ConfigError(f"api_base must be an http(s) URL, got {api_base!r}")
        self.api_base = api_base.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self._key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.timeout = timeout
        self.max_connections = max_connections
        self.supports_response_schema = structured_output
        self.headers = dict(headers or {})
        self._client: _Pool | None = None
        self._lock = threading.Lock()

    def __copy__(self) -> HTTPEngine:
        return self  # LM copies (one per retry) share the engine and its connections

    def __deepcopy__(self, memo: dict[int, Any]) -> HTTPEngine:
        return self

    # -- a description that travels (to a Ray worker) without the key -----------------------
    def __reduce__(self) -> tuple[Any, ...]:
        env = self.api_key_env
        if self._key is not None and os.environ.get(env) != self._key:
            holder = next((name for name, value in os.environ.items() if value == self._key), None)
            if holder is None:
                raise ConfigError(
                    "this LM's API key was given directly; to send the LM to other processes, put the key in "
                    f"an environment variable the workers have (e.g. {env}) and leave api_key unset: the key "
                    "never travels with a task")
            env = holder
        return (_rebuild, (self.api_base, self.model, env, self.timeout, self.max_connections,
                           self.supports_response_schema, self.headers))

    def dump_state(self) -> dict[str, Any]:
        """What ``dspy.LM.dump_state`` saves of this engine (no key)."""
        return {"api_base": self.api_base, "model": self.model, "api_key_env": self.api_key_env,
                "timeout": self.timeout, "max_connections": self.max_connections,
                "structured_output": self.supports_response_schema, "headers": self.headers}

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> HTTPEngine:
        """The engine :meth:`dump_state` describes (the key read again from ``api_key_env``)."""
        return cls(**state)

    # -- transport ----------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self.headers}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def _http(self) -> _Pool:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = _Pool(self.api_base, self._headers(), self.max_connections,
                                         self.timeout if self.timeout is not None else 600.0)
        return self._client

    def close(self) -> None:
        """Close the pooled connections (a later request opens new ones)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- the engine contract ------------------------------------------------------------------
    def build_body(self, request: Any) -> dict[str, Any]:
        """The OpenAI chat-completions body for one ``dspy.lm15.Request``."""
        body = chat_body(request)
        body["model"] = self.model
        return body

    def complete(self, request: Any) -> Any:
        """Send one ``dspy.lm15.Request`` and return the server's ``dspy.lm15.Response``; a timeout, a
        transport failure or an error answer raises the matching ``dspy.lm15`` error."""
        from dspy import lm15

        body = self.build_body(request)
        try:
            answer = self._http().post("/chat/completions", json.dumps(body).encode())
        except TimeoutError as exc:
            raise lm15.TimeoutError(f"no answer from {self.api_base} within {self.timeout or 600.0:g} s") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise lm15.TransportError(f"{self.api_base}: {type(exc).__name__}: {exc}") from exc
        return self.read(answer, request)

    def read(self, answer: _Answer, request: Any) -> Any:
        """The ``dspy.lm15.Response`` of a server's answer to ``request``, or the canonical error."""
        from dspy import lm15

        if answer.status != 200:
            raise _http_error(answer)
        try:
            out = json.loads(answer.body)
            choice = out["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise lm15.ServerError(f"unreadable answer from {self.api_base}: {answer.text[:200]!r}",
                                   status=answer.status) from exc
        return _response(out, choice, text, self.model, logprobs=request.config.logprobs is not None)

    def stream(self, request: Any) -> Any:
        """The response of :meth:`complete`, as stream events (made once the whole answer is in)."""
        from personae.lm._events import piecewise_events

        return piecewise_events(self.complete(request))


class AsyncHTTPEngine:
    """The asynchronous counterpart of an :class:`HTTPEngine` (``acall``, ``asyncio.gather``).

    The same body, answer reading and errors; the requests go out on an ``httpx.AsyncClient``
    of the running event loop (one per loop, ``max_connections`` connections), so many awaited
    calls are in flight at once without a thread each.
    """

    def __init__(self, engine: HTTPEngine) -> None:
        import weakref

        self.engine = engine
        self._clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def __copy__(self) -> AsyncHTTPEngine:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> AsyncHTTPEngine:
        return self

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (AsyncHTTPEngine, (self.engine,))

    def _client(self) -> Any:
        import asyncio

        import httpx

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            engine = self.engine
            limit = engine.timeout if engine.timeout is not None else 600.0
            client = httpx.AsyncClient(
                base_url=engine.api_base, headers=engine._headers(),
                timeout=httpx.Timeout(limit, connect=max(limit, 10.0)),
                limits=httpx.Limits(max_connections=engine.max_connections,
                                    max_keepalive_connections=engine.max_connections))
            self._clients[loop] = client
        return client

    async def complete(self, request: Any) -> Any:
        import httpx
        from dspy import lm15

        engine = self.engine
        body = engine.build_body(request)
        try:
            response = await self._client().post("/chat/completions", content=json.dumps(body).encode())
        except httpx.TimeoutException as exc:
            raise lm15.TimeoutError(f"no answer from {engine.api_base} within {engine.timeout or 600.0:g} s") from exc
        except (httpx.TransportError, OSError) as exc:
            raise lm15.TransportError(f"{engine.api_base}: {type(exc).__name__}: {exc}") from exc
        answer = _Answer(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content)
        return engine.read(answer, request)

    def stream(self, request: Any) -> Any:
        from personae.lm._events import piecewise_stream

        return piecewise_stream(self.complete(request))

    async def aclose(self) -> None:
        import asyncio

        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def dump_state(self) -> dict[str, Any]:
        """The synchronous engine's description (no key)."""
        return self.engine.dump_state()

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> AsyncHTTPEngine:
        return cls(HTTPEngine.load_state(state))


def _rebuild(api_base: str, model: str, api_key_env: str, timeout: float | None, max_connections: int,
             structured_output: bool, headers: dict[str, str]) -> HTTPEngine:
    return HTTPEngine(api_base, model, api_key_env=api_key_env, timeout=timeout, max_connections=max_connections,
                      structured_output=structured_output, headers=headers)


def chat_body(request: Any) -> dict[str, Any]:
    """The OpenAI-style chat body of a ``dspy.lm15.Request`` (no model): messages and sampling."""
    messages: list[dict[str, str]] = []
    if request.system is not None:
        system = request.system if isinstance(request.system, str) else "".join(
            getattr(p, "text", "") for p in request.system)
        messages.append({"role": "system", "content": system})
    messages.extend({"role": m.role, "content": m.text or ""} for m in request.messages)
    body: dict[str, Any] = {"messages": messages}
    config = request.config
    for name in ("max_tokens", "temperature", "top_p", "seed", "frequency_penalty", "presence_penalty"):
        value = getattr(config, name, None)
        if value is not None:
            body[name] = value
    if config.stop:
        body["stop"] = list(config.stop)
    if config.logprobs is not None:
        body["logprobs"] = True
        if config.logprobs:
            body["top_logprobs"] = config.logprobs
    fmt = config.response_format
    if fmt and fmt.get("type") == "json_schema":
        spec = {"name": fmt.get("name") or "response", "schema": fmt["schema"]}
        if fmt.get("strict") is not None:
            spec["strict"] = fmt["strict"]
        body["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif fmt and fmt.get("type") == "json_object":
        body["response_format"] = {"type": "json_object"}
    for key, value in dict(config.extensions or {}).items():
        body.setdefault(key, value)
    return body


def _response(out: dict[str, Any], choice: dict[str, Any], text: str, model: str, *, logprobs: bool) -> Any:
    from dspy.lm15 import Message, Response, TextPart, TokenLogprob, TopLogprob, Usage

    usage = out.get("usage") or {}
    tokens = None
    content = (choice.get("logprobs") or {}).get("content") if logprobs else None
    if content:
        tokens = tuple(TokenLogprob(token=str(t.get("token", "")), logprob=float(t.get("logprob") or 0.0),
                                    top=tuple(TopLogprob(token=str(a.get("token", "")),
                                                         logprob=float(a.get("logprob") or 0.0))
                                              for a in t.get("top_logprobs") or ()))
                       for t in content)
    return Response(
        id=out.get("id"),
        model=str(out.get("model") or model),
        message=Message.assistant([TextPart(text)]),
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        usage=Usage(input_tokens=usage.get("prompt_tokens"), output_tokens=usage.get("completion_tokens"),
                    total_tokens=usage.get("total_tokens")),
        logprobs=tokens,
    )


def _http_error(answer: _Answer) -> Any:
    """The canonical DSPy error for a non-200 answer (the server's message, never the request)."""
    from dspy import lm15

    try:
        detail = json.loads(answer.body)
        error = detail.get("error", detail) if isinstance(detail, dict) else detail
        message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
    except ValueError:
        message = answer.text
    message = " ".join(message.split())[:500] or f"HTTP {answer.status}"
    status = answer.status
    meta: dict[str, Any] = {"status": status, "provider": "openai-compatible"}
    if status == 429:
        retry_after = _seconds(answer.headers.get("retry-after"))
        return lm15.RateLimitError(message, retry_after=retry_after, **meta)
    if status in (401, 403):
        return lm15.AuthError(message, **meta)
    if status == 402:
        return lm15.BillingError(message, **meta)
    if status in (408, 504):
        return lm15.TimeoutError(message, **meta)
    if status in (400, 413, 422) and any(word in message.lower() for word in _CONTEXT_WORDS):
        return lm15.ContextLengthError(message, **meta)
    if status == 404 and "model" in message.lower():
        return lm15.UnsupportedModelError(message, **meta)
    if 400 <= status < 500:
        return lm15.InvalidRequestError(message, **meta)
    return lm15.ServerError(message, **meta)


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds <= 3600 else None


# -- the connection pool --------------------------------------------------------------------------

@dataclass
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _Pool:
    """Keep-alive HTTP/1.1 connections to one server, shared by threads (the standard library's
    ``http.client``: a quarter of the CPU httpx spends on each request here).

    At most ``size`` requests run at once; a request waits for a free connection no longer than
    its own time limit. Connecting gets 10 s or the limit, whichever is longer (a server whose
    accept queue is full drops the first SYN and the kernel resends it after 1 s); the answer
    gets ``timeout`` seconds. A connection the server closed while it was idle is replaced
    once, at once (the request had not reached the server).
    """

    def __init__(self, base_url: str, headers: dict[str, str], size: int, timeout: float) -> None:
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.headers = {**headers, "Host": parts.netloc, "Connection": "keep-alive"}
        self.timeout = timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._context = ssl.create_default_context() if self.https else None

    def _connect(self) -> http.client.HTTPConnection:
        connect_s = max(self.timeout, 10.0)
        conn: http.client.HTTPConnection
        if self.https:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=connect_s, context=self._context)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=connect_s)
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(self.timeout)
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def post(self, path: str, body: bytes) -> _Answer:
        if not self._slots.acquire(timeout=self.timeout):
            raise TimeoutError(f"no free connection within {self.timeout:g} s")
        try:
            for attempt in range(2):
                with self._lock:
                    conn = self._idle.pop() if self._idle else None
                reused = conn is not None
                if conn is None:
                    conn = self._connect()
                try:
                    conn.request("POST", self.prefix + path, body, self.headers)
                    response = conn.getresponse()
                    data = response.read()
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    conn.close()
                    if reused and attempt == 0:
                        continue  # the server had closed this idle connection: a fresh one
                    raise
                except BaseException:
                    conn.close()
                    raise
                if response.will_close:
                    conn.close()
                else:
                    with self._lock:
                        self._idle.append(conn)
                return _Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
            raise AssertionError("unreachable")
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __del__(self) -> None:  # an engine dropped without close(): its sockets go with it
        for conn in getattr(self, "_idle", ()):
            conn.close()

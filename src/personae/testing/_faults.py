"""A fault-injecting OpenAI-compatible chat server on 127.0.0.1, for tests of the run layer.

By default it answers every chat completion correctly: a JSON object with each output field
DSPy asked for (``preferred`` -> "A"/"B", ``persona`` -> a sentence, ``reasoning`` ->
a short text, anything else -> "x"), with usage figures. A :class:`Faults` plan makes it fail:

* ``rate``: a fraction of requests, chosen from ``seed``, the request's messages and how many
  times those messages were seen before (so a retry of the same prompt draws afresh, and the
  choice does not depend on thread scheduling);
* ``first_n``: the first N attempts of each prompt (of those containing ``match``), then answers;
* ``always``: every request (containing ``match``).

The kind of each fault is drawn (same hash) from ``kinds``. Every request is recorded with the
fault it got (:attr:`FaultServer.served`, :meth:`FaultServer.fault_counts`). The server binds
only to 127.0.0.1 and stops at the end of :func:`fault_server`, after ``lifetime_s`` seconds,
or at interpreter exit, whichever comes first.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from personae.testing._stub import output_fields

FAULT_KINDS: tuple[str, ...] = ("http_500", "http_429", "slow", "non_json", "truncated", "bad_literal", "disconnect")
"""``http_500``/``http_429``: error answers (429 with Retry-After); ``slow``: a correct answer after
``slow_s`` seconds; ``non_json``: 200 with "I cannot answer that"; ``truncated``: 200 with the JSON
object cut in half; ``bad_literal``: ``preferred`` = "Neither"; ``disconnect``: the connection is
closed without an answer."""

MAX_SLOW_S = 5.0
_VALUES = {"persona": "The user likes clear answers.", "reasoning": "The first answer is clearer."}


@dataclass(frozen=True)
class Faults:
    """Which requests fail and how (see the module docstring)."""

    rate: float = 0.0
    kinds: Sequence[str] = FAULT_KINDS
    seed: int = 0
    first_n: int = 0
    always: bool = False
    match: str | None = None
    slow_s: float = 1.5
    retry_after: str = "1"
    delay_s: float = 0.0  # every answer waits this long (so a run lasts long enough to be killed mid-way)
    echo_input: bool = False  # free-text answers quote the request's last message (markers, JSON and all)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"fault kinds must be a non-empty subset of {FAULT_KINDS}, not {list(self.kinds)}")

    def pick(self, text: str, key: str, attempt: int) -> str | None:
        """The fault for the ``attempt``-th request (0-based) with messages ``key``, or None."""
        if self.match is not None and self.match not in text:
            return None
        h = int.from_bytes(hashlib.sha256(f"{self.seed}|{key}|{attempt}".encode()).digest()[:8], "big")
        kind = self.kinds[(h // 10_000) % len(self.kinds)]
        if self.always or attempt < self.first_n or (h % 10_000) < self.rate * 10_000:
            return kind
        return None


@dataclass
class Served:
    """One request: its body, a digest of its messages, which attempt at them it was, its fault."""

    body: dict[str, Any]
    key: str
    attempt: int
    fault: str | None = None


def answer(body: dict[str, Any], fault: str | None = None, *, echo_input: bool = False) -> str:
    """The assistant's content: correct JSON, or what ``fault`` makes of it. Free text depends on the
    request (a persona per prompt), so different requests get different answers."""
    if fault == "non_json":
        return "I cannot answer that"
    fields = output_fields(body)
    digest = hashlib.sha256(json.dumps(body.get("messages"), sort_keys=True).encode()).digest()
    values = {**_VALUES, "preferred": "Neither" if fault == "bad_literal" else ("A", "B")[digest[0] % 2],
              "persona": f"The user likes answers of tone {digest[1] % 13} and length {digest[2] % 11}."}
    if echo_input:
        last = next((str(m.get("content", "")) for m in reversed(body.get("messages", [])) if m.get("role") == "user"),
                    "")
        values["reasoning"] = f"Quoting the request: {last[:400]}"
    text = json.dumps({name: values.get(name, "x") for name in fields})
    return text[: len(text) // 2] if fault == "truncated" else text


@dataclass
class FaultServer:
    faults: Faults = field(default_factory=Faults)
    lifetime_s: float = 120.0
    served: list[Served] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()
        self._stop = threading.Event()
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                except ValueError:
                    body = {}
                try:
                    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                        self.send_error(400, "not a chat completion request")  # e.g. a client killed mid-send
                        return
                    owner._respond(self, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout) or was killed: nothing to answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._timer = threading.Timer(self.lifetime_s, self.stop)
        self._timer.daemon = True

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def fault_counts(self) -> Counter[str]:
        """How many requests got each fault kind (requests answered correctly are not counted)."""
        with self._lock:
            return Counter(s.fault for s in self.served if s.fault is not None)

    def start(self) -> FaultServer:
        """Start serving (and the timer that stops the server after ``lifetime_s``)."""
        self._thread.start()
        self._timer.start()
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; safe to repeat."""
        if self._stop.is_set():
            return
        self._stop.set()  # wakes slow answers
        self._timer.cancel()
        self.server.shutdown()
        self.server.server_close()
        atexit.unregister(self.stop)

    def _respond(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        text = json.dumps(body.get("messages"), sort_keys=True)
        key = hashlib.sha256(text.encode()).hexdigest()[:16]
        with self._lock:
            attempt = self._seen[key]
            self._seen[key] += 1
            fault = self.faults.pick(text, key, attempt)
            if fault == "bad_literal" and "preferred" not in output_fields(body):
                fault = None  # nothing to put outside a Literal
            self.served.append(Served(body, key, attempt, fault))
        if fault == "disconnect":
            handler.close_connection = True
            return
        if fault == "slow":
            self._stop.wait(min(self.faults.slow_s, MAX_SLOW_S))
        elif self.faults.delay_s:
            self._stop.wait(min(self.faults.delay_s, MAX_SLOW_S))
        headers = {"Content-Type": "application/json"}
        if fault in ("http_500", "http_429"):
            status = 500 if fault == "http_500" else 429
            payload: dict[str, Any] = {"error": {"message": f"injected {status}", "type": "server_error",
                                                 "code": status}}
            if status == 429:
                headers["Retry-After"] = self.faults.retry_after
        else:
            status, content = 200, answer(body, fault, echo_input=self.faults.echo_input)
            prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
            payload = {"id": f"fault-{len(self.served)}", "object": "chat.completion", "created": 0,
                       "model": body.get("model", "fault"),
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": content}}],
                       "usage": {"prompt_tokens": prompt, "completion_tokens": len(content.split()),
                                 "total_tokens": prompt + len(content.split())}}
        data = json.dumps(payload).encode()
        handler.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(data))}.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)


@contextmanager
def fault_server(faults: Faults | None = None, *, lifetime_s: float = 120.0) -> Iterator[FaultServer]:
    """A started :class:`FaultServer`, stopped on leaving the block."""
    server = FaultServer(faults or Faults(), lifetime_s=lifetime_s).start()
    try:
        yield server
    finally:
        server.stop()

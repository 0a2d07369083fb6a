"""A minimal OpenAI-compatible chat server on 127.0.0.1 for tests of the LiteLLM path.

``handler(body) -> (status, content)`` decides each answer (``(status, content, tokens)`` also
sends ``tokens`` as the choice's log-probabilities, a list of OpenAI ``logprobs.content``
entries); the server adds usage figures (whitespace word counts) and records every request
body and its headers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handler = Callable[[dict[str, Any]], "tuple[int, str] | tuple[int, str, list[dict[str, Any]]]"]


class StubServer:
    """An OpenAI-compatible chat server on 127.0.0.1 whose ``handler`` decides each answer; it keeps
    every request body (``requests``) and its headers. Its ``api_base`` is what ``get_lm`` takes."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        stub = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                stub.requests.append(body)
                stub.headers.append({k.lower(): v for k, v in self.headers.items()})
                answer = stub.handler(body)
                status, content = answer[0], answer[1]
                logprobs = answer[2] if len(answer) > 2 else None
                payload: dict[str, Any]
                if status != 200:
                    payload = {"error": {"message": content, "type": "server_error", "code": status}}
                else:
                    prompt_words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
                    payload = {
                        "id": f"stub-{len(stub.requests)}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", "stub"),
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": content},
                                     **({"logprobs": {"content": logprobs}} if logprobs else {})}],
                        "usage": {"prompt_tokens": prompt_words, "completion_tokens": len(content.split()),
                                  "total_tokens": prompt_words + len(content.split())},
                    }
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v1"


@contextmanager
def stub_server(handler: Handler) -> Iterator[StubServer]:
    """A running :class:`StubServer` for the block (``handler(body) -> (status, content[, logprobs])``)."""
    stub = StubServer(handler)
    stub.thread.start()
    try:
        yield stub
    finally:
        stub.server.shutdown()
        stub.server.server_close()


def output_fields(body: dict[str, Any]) -> list[str]:
    """The output field names DSPy asked for, read from its system message."""
    import re

    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    section = system.split("Your output fields are:", 1)[-1].split("All interactions", 1)[0]
    return re.findall(r"`(\w+)`", section)

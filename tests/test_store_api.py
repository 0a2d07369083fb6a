"""The store's API is declared once (personae.store.StoreAPI); every surface carries all of it."""

from __future__ import annotations

import inspect
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from personae.client import AsyncPersonaeClient, PersonaeClient
from personae.store import API_METHODS, API_SCOPES, AsyncPersonaStore, AsyncStoreAPI, PersonaStore, StoreAPI


def _shape(function: object) -> list[tuple[str, object]]:
    """A method's parameters as the caller sees them: names and kinds (defaults and types aside)."""
    return [(p.name, p.kind) for p in inspect.signature(function).parameters.values()]  # type: ignore[arg-type]


def test_the_declaration_lists_the_api() -> None:
    assert API_METHODS[:3] == ("add_preferences", "preferences", "users") and "judge" in API_METHODS
    assert len(API_METHODS) == 14


def test_every_declared_method_needs_one_scope_declared_beside_it() -> None:
    assert list(API_SCOPES) == list(API_METHODS)   # every method, in declaration order, and no other
    assert set(API_SCOPES.values()) == {"read", "write", "admin"}   # ops is for /metrics and /readyz only
    assert API_SCOPES["add_preferences"] == "write"
    assert {m for m, s in API_SCOPES.items() if s == "admin"} == {"export", "forget", "fitted_judge"}
    assert API_SCOPES["judge"] == API_SCOPES["rank"] == "read"   # judging changes nothing


@pytest.mark.parametrize("name", API_METHODS)
def test_every_surface_takes_the_declared_parameters(name: str) -> None:
    declared = _shape(getattr(StoreAPI, name))
    assert _shape(getattr(AsyncStoreAPI, name)) == declared
    assert inspect.iscoroutinefunction(getattr(AsyncStoreAPI, name))
    for surface in (PersonaStore, PersonaeClient):
        assert _shape(getattr(surface, name)) == declared, surface.__name__
        assert not inspect.iscoroutinefunction(getattr(surface, name))
    for surface in (AsyncPersonaStore, AsyncPersonaeClient):
        assert _shape(getattr(surface, name)) == declared, surface.__name__
        assert inspect.iscoroutinefunction(getattr(surface, name)), surface.__name__


def test_the_async_store_has_every_method_of_the_store() -> None:
    for name, value in vars(PersonaStore).items():
        if name.startswith("_") or isinstance(value, property):
            continue
        mirror = getattr(AsyncPersonaStore, name, None)
        assert mirror is not None, f"AsyncPersonaStore lacks {name}"
        assert _shape(mirror) == _shape(value), name
        assert inspect.iscoroutinefunction(mirror) or name == "for_tenant", name


def test_one_error_table_takes_an_error_to_http_and_back() -> None:
    from personae.errors import (
        ERROR_KINDS,
        ConfigError,
        DataError,
        LMCallError,
        UnknownUserError,
        service_error,
        store_error,
    )

    cases = [UnknownUserError("u1", "acme"), LMCallError("down", kind="timeout"), LMCallError("junk", kind="parse"),
             LMCallError("too long", kind="context_window"), ConfigError("rank takes 1 to 64 candidates"),
             DataError("missing", source="add_preferences('u1')", record=3, field="chosen")]
    for exc in cases:
        answer = service_error(exc)
        assert answer is not None and answer.status == ERROR_KINDS[answer.kind].status, exc
        back = store_error(answer, call="POST /v1/users/u1/judge", user_id="u1")
        assert type(back) is type(exc), (exc, back)
        if isinstance(exc, LMCallError):
            assert back.kind == exc.kind and ERROR_KINDS[answer.kind].retry == (exc.kind in ("timeout", "parse"))
        if isinstance(exc, DataError):
            assert (back.record, back.field) == (3, "chosen")
    assert service_error(ValueError("a bug")) is None  # answered as internal, never mapped
    from personae.errors import ServiceError

    refused = ServiceError(403, "forbidden", "the bearer token lacks the 'admin' scope this needs")
    assert ERROR_KINDS["forbidden"].status == 403 and not ERROR_KINDS["forbidden"].retry
    back = store_error(refused, call="DELETE /v1/users/u1", user_id="u1")   # as unauthorized: the answer itself
    assert isinstance(back, ServiceError) and (back.status, back.kind) == (403, "forbidden")
    assert service_error(DataError("unreadable", source="persona version 2 of u1")) is None


@contextmanager
def _scripted_http(answers: list[Callable[[socket.socket], None]]) -> Iterator[tuple[str, list[bytes]]]:
    """A server on 127.0.0.1 that takes one connection per answer, records its request line and
    lets the answer write (or reset) the reply; yields its URL and the request lines seen."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    seen: list[bytes] = []

    def serve() -> None:
        for answer in answers:
            conn, _ = listener.accept()
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            seen.append(data.split(b"\r\n", 1)[0])
            answer(conn)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        thread.join(10)
        listener.close()


def _reply(status: int, body: bytes, extra: bytes = b"") -> Callable[[socket.socket], None]:
    return lambda conn: conn.sendall(b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%b"
                                     b"connection: close\r\n\r\n%b" % (status, len(body), extra, body))


def _reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # close() then sends RST


def test_the_client_sends_again_when_the_connection_is_reset_before_the_answer() -> None:
    """A service killed mid-request resets the connection (ECONNRESET, httpx.ReadError): every
    route is idempotent, so the client sends the request again instead of raising."""
    from personae.client import PersonaeClient

    with _scripted_http([_reset, _reply(200, b'{"users": ["u1"], "next_after": null}')]) as (url, seen):
        with PersonaeClient(url, token="pst_x", retries=2, max_wait=0.1, timeout=10) as client:
            assert client.users() == ["u1"]
    assert len(seen) == 2 and seen[0] == seen[1] and seen[0].startswith(b"GET /v1/users")


def test_a_forget_answered_503_then_404_was_done_by_the_first_attempt() -> None:
    """forget's first attempt removed the user but answered 503 (its erasure was held off); the
    retry finds no user: the client reports the forget done instead of raising UnknownUserError."""
    from personae.client import PersonaeClient

    answers = [_reply(503, b'{"error": {"type": "store_unavailable", "message": "busy", "retry_after": 1}}',
                      b"retry-after: 0\r\n"),
               _reply(404, b'{"error": {"type": "not_found", "message": "no user \'u1\'"}}')]
    with _scripted_http(answers) as (url, seen):
        with PersonaeClient(url, token="pst_x", retries=2, max_wait=0.1, timeout=10) as client:
            assert client.forget("u1") == {}
    assert seen == [b"DELETE /v1/users/u1 HTTP/1.1"] * 2

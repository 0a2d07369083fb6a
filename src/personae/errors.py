"""Exceptions raised by personae.

Every error the package raises on purpose derives from :class:`PersonaeError`, and each
carries the thing that failed::

    PersonaeError
    ├── DataError          a preference file or record is malformed (file, record, field)
    ├── ConfigError        an option or model string cannot be used
    │   ├── ItemError      one item of a run cannot be done as given (a user with too few
    │   │                  pairs): recorded as failed, never retried, the run goes on
    │   └── NoPersonaError the store's user has no persona version yet (or not that one)
    ├── MissingExtraError  an optional dependency group is not installed
    ├── ContentError       an answer cannot be used (an echoed example, no persona, a verdict
    │   │                  outside the allowed ones); retried on a fresh sample
    │   └── AnswerParseError   no answer parsed as the signature asks
    ├── LMCallError        an item's LM calls failed after every retry (what it was for, the
    │                      kind of failure, the reason, the attempts)
    ├── ServiceError       the persona service refused or failed a request (HTTP status, error
    │                      kind, message, field at fault, Retry-After, request id)
    ├── UnknownUserError   the persona store holds nothing for this user (user, tenant)
    ├── UpdateConflict     a persona update lost its footing to another; its job is tried again
    └── WorkerLostError    Ray workers kept dying (how many items were left pending)

Which failures are retried, and which surface at once, is decided in one place:
:class:`personae.runs.RetryPolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ERROR_KINDS", "AnswerParseError", "ConfigError", "ContentError", "DataError", "ErrorKind", "ItemError",
           "LMCallError", "MissingExtraError", "NoPersonaError", "PersonaeError", "ServiceError", "UnknownUserError",
           "UpdateConflict", "WorkerLostError", "service_error", "store_error"]


class PersonaeError(Exception):
    """Base class of every error personae raises on purpose."""


class DataError(PersonaeError, ValueError):
    """A preference source, or one record in it, cannot be read.

    ``source`` is the file (or data set name), ``record`` the 1-based line of a jsonl file
    or row of a table (``None`` when the whole source is at fault), ``field`` the column
    at fault (``None`` when no single field is).
    """

    def __init__(self, message: str, *, source: str, record: int | None = None, field: str | None = None):
        self.message = message
        self.source = source
        self.record = record
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source
        if self.record is not None:
            where += f", record {self.record}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # keep pickling (multiprocessing, datasets.map) working
        return (_rebuild_data_error, (self.message, self.source, self.record, self.field))


def _rebuild_data_error(message: str, source: str, record: int | None, field: str | None) -> DataError:
    return DataError(message, source=source, record=record, field=field)


class ConfigError(PersonaeError, ValueError):
    """An option, preset or model string cannot be used as given."""


class ItemError(ConfigError):
    """One item of a run cannot be done as given (a user with too few pairs to fit).

    A run records the item as failed with kind ``input`` and goes on; it is not retried.
    ``item`` names it.
    """

    def __init__(self, message: str, *, item: str | None = None):
        self.item = item
        super().__init__(message)


class NoPersonaError(ConfigError):
    """The user is known but has no persona version yet (or not the one asked for): ``user_id``."""

    def __init__(self, message: str, *, user_id: str | None = None) -> None:
        self.user_id = user_id
        super().__init__(message)


class MissingExtraError(PersonaeError, ImportError):
    """An optional dependency group is needed; the message names the ``pip install`` to run."""

    def __init__(self, extra: str, feature: str):
        self.extra = extra
        self.feature = feature
        super().__init__(f"{feature} needs the '{extra}' extra: pip install 'personae[{extra}]'")


class ContentError(PersonaeError, ValueError):
    """A model's answer cannot be used: it echoes a worked example, describes nobody, or names a
    verdict the task does not allow (failure kind ``content``), or it does not parse as the
    signature asks (:class:`AnswerParseError`, kind ``parse``). It is retried on a fresh sample.

    A program that gave up after several fresh samples raises it with ``tried``: why each
    attempt's answer was refused, in order.
    """

    def __init__(self, message: str, *, tried: tuple[str, ...] | list[str] = ()) -> None:
        self.tried = tuple(tried)
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # keep pickling (worker processes) working
        return (_rebuild_content_error, (type(self), str(self), self.tried))


class AnswerParseError(ContentError):
    """No answer of a program's attempts parsed as its signature asks (DSPy's adapter could not
    read it); the last parse error is its cause. Failure kind ``parse``."""


def _rebuild_content_error(cls: type[ContentError], message: str, tried: tuple[str, ...]) -> ContentError:
    error = cls.__new__(cls)
    ContentError.__init__(error, message, tried=tried)
    return error


class LMCallError(PersonaeError, RuntimeError):
    """An item's LM calls failed after every retry.

    ``kind`` says how (``timeout``, ``rate_limit``, ``server``, ``transport``, ``lm``,
    ``parse``, ``content``, ``context_window``, ``invalid_request``), ``reason`` what the last
    attempt raised, ``item`` what the calls were for, ``attempts`` how many were made.
    """

    def __init__(self, reason: str, *, kind: str = "lm", item: str | None = None, attempts: int = 1):
        self.reason = reason
        self.kind = kind
        self.item = item
        self.attempts = attempts
        prefix = f"{item}: " if item else ""
        super().__init__(f"{prefix}{reason} (after {attempts} attempt{'s' if attempts != 1 else ''})")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # keep pickling (worker processes) working
        return (_rebuild_lm_call_error, (self.reason, self.kind, self.item, self.attempts))


def _rebuild_lm_call_error(reason: str, kind: str, item: str | None, attempts: int) -> LMCallError:
    return LMCallError(reason, kind=kind, item=item, attempts=attempts)


class ServiceError(PersonaeError):
    """The persona service refused or failed a request: HTTP ``status``, error ``kind`` (one of
    :data:`ERROR_KINDS`), its ``message``, the ``field`` at fault, the 1-based ``record`` of a
    preference at fault, ``retry_after`` seconds, the server's ``request_id`` (for its log);
    ``failure`` is how the judge's model failed, ``errors`` every field error.

    The service raises it to answer with an error; :mod:`personae.client` raises it for what
    only a remote call can hit (a bad token, a body too large, a server that stays away).
    """

    def __init__(self, status: int, kind: str, message: str, *, field: str | None = None,
                 retry_after: int | None = None, request_id: str | None = None, failure: str | None = None,
                 errors: list[Any] | None = None, record: int | None = None) -> None:
        self.status = status
        self.kind = kind
        self.message = message
        self.field = field
        self.retry_after = retry_after
        self.request_id = request_id
        self.failure = failure
        self.errors = errors
        self.record = record
        super().__init__(f"HTTP {status} {kind}: {message}" + (f" (request {request_id})" if request_id else ""))


@dataclass(frozen=True)
class ErrorKind:
    """One kind of error the persona service answers with: its HTTP ``status``, what it means, and
    whether the same request may succeed later (``retry``, after the answer's Retry-After)."""

    kind: str
    status: int
    meaning: str
    retry: bool = False


ERROR_KINDS: dict[str, ErrorKind] = {k.kind: k for k in (
    ErrorKind("invalid_request", 422, "a malformed request (the field is named), or one the judge's model refused"),
    ErrorKind("unauthorized", 401, "no bearer token, or an unknown, revoked or expired one"),
    ErrorKind("forbidden", 403, "the token lacks the scope this needs (the message names it)"),
    ErrorKind("not_found", 404, "no such user or job in this token's tenant"),
    ErrorKind("no_route", 404, "no such route"),
    ErrorKind("method_not_allowed", 405, "the route takes another method"),
    ErrorKind("timeout", 408, "the request body did not arrive in time"),
    ErrorKind("conflict", 409, "the user has no persona version yet (or not the one asked for)"),
    ErrorKind("payload_too_large", 413, "the body is larger than the service takes"),
    ErrorKind("rate_limited", 429, "the token's tenant sent more requests a second, or has more in flight, than the "
              "service takes", retry=True),
    ErrorKind("internal", 500, "a bug; the server log has the details under the request id"),
    ErrorKind("lm_bad_answer", 502, "the judge's model gave no usable answer", retry=True),
    ErrorKind("lm_unavailable", 503, "the judge's model did not answer, or is misconfigured", retry=True),
    ErrorKind("store_unavailable", 503, "the persona store's database is busy, unreachable or not ready",
              retry=True),
    ErrorKind("overloaded", 503, "the judge is at capacity and its queue full, or the request waited too long",
              retry=True),
)}
"""Every error the persona service answers with, by kind: the one table the service answers from
(:func:`service_error`) and the client reads back (:func:`store_error`)."""

_LM_UNAVAILABLE = frozenset({"timeout", "rate_limit", "server", "transport", "lm"})


def service_error(exc: BaseException, *, retry_after_s: int = 5) -> ServiceError | None:
    """How the service answers an exception a request raised (None: a bug, answered as ``internal``)."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, UnknownUserError):
        return ServiceError(404, "not_found", f"no user {exc.user_id!r}")
    if isinstance(exc, LMCallError):
        if exc.kind in _LM_UNAVAILABLE:
            wait = 2 * retry_after_s if exc.kind == "rate_limit" else retry_after_s
            return ServiceError(503, "lm_unavailable", f"the judge's model did not answer ({exc.kind}): {exc.reason}",
                                retry_after=wait, failure=exc.kind)
        if exc.kind in ("context_window", "invalid_request"):
            return ServiceError(422, "invalid_request", f"the judge's model refused the request ({exc.kind}): "
                                f"{exc.reason}", field="body", failure=exc.kind)
        return ServiceError(502, "lm_bad_answer", f"the judge's model gave no usable answer ({exc.kind}): "
                            f"{exc.reason}", retry_after=1, failure=exc.kind)
    if type(exc).__module__.startswith("sqlalchemy") and type(exc).__name__ in (
            "OperationalError", "InterfaceError", "TimeoutError"):
        return ServiceError(503, "store_unavailable", "the persona store's database is busy or unreachable",
                            retry_after=1)
    if isinstance(exc, NoPersonaError):
        return ServiceError(409, "conflict", str(exc))
    if isinstance(exc, DataError):
        if exc.record is not None or exc.source.startswith("add_preferences"):  # a preference of the request
            field = {"record_id": "id"}.get(exc.field or "", exc.field)
            where = f"body.preferences.{exc.record - 1}" if exc.record else "body.preferences"
            return ServiceError(422, "invalid_request", exc.message, field=f"{where}.{field}" if field else where,
                                record=exc.record)
        return None  # a stored row that cannot be read: the server's fault
    if isinstance(exc, ConfigError):
        cause = exc.__cause__
        if cause is not None and type(cause).__module__.startswith("dspy"):
            # the LM rejects the service's own configuration (a bad key): nothing the client can mend
            return ServiceError(503, "lm_unavailable", "the judge's model is misconfigured on the server",
                                retry_after=10 * retry_after_s)
        return ServiceError(422, "invalid_request", str(exc))
    if isinstance(exc, PersonaeError):
        return ServiceError(422, "invalid_request", str(exc))
    return None


def store_error(error: ServiceError, *, call: str, user_id: str | None = None) -> PersonaeError:
    """The store's own exception for a service's error answer to ``call`` (``"POST /v1/..."``):
    what the store raises in process for the same cause, else the :class:`ServiceError` itself."""
    if error.failure and error.kind in ("lm_unavailable", "lm_bad_answer", "invalid_request"):
        return LMCallError(error.message, kind=error.failure, item=call)
    if error.kind == "not_found" and user_id is not None:
        return UnknownUserError(user_id, "of this token")
    if error.kind == "invalid_request" and error.record is not None:
        field = (error.field or "").rsplit(".", 1)[-1]
        message = error.message.split(": ", 1)[-1] if ": " in error.message else error.message
        return DataError(message, source=f"add_preferences({user_id!r})", record=error.record,
                         field={"id": "record_id"}.get(field, field) if field and not field.isdigit() else None)
    if error.kind == "conflict":
        return NoPersonaError(error.message, user_id=user_id)
    if error.kind == "invalid_request":
        return ConfigError(error.message)
    return error


class UnknownUserError(PersonaeError, KeyError):
    """The persona store holds nothing for this user (in this tenant): ``user_id``, ``tenant``."""

    def __init__(self, user_id: str, tenant: str) -> None:
        self.user_id = user_id
        self.tenant = tenant
        super().__init__(f"no user {user_id!r} in tenant {tenant!r}")

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (UnknownUserError, (self.user_id, self.tenant))


class UpdateConflict(PersonaeError):
    """A persona update lost its footing: another update of the user wrote first, the user was
    forgotten, or the job's lease went to another worker. The job is tried again."""


class WorkerLostError(PersonaeError, RuntimeError):
    """Ray workers kept dying; ``pending`` items were not run (a re-run picks them up)."""

    def __init__(self, message: str, *, pending: int = 0) -> None:
        self.pending = pending
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_rebuild_lost, (str(self), self.pending))


def _rebuild_lost(message: str, pending: int) -> WorkerLostError:
    return WorkerLostError(message, pending=pending)

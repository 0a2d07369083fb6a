"""Exceptions raised by personae.

Every error the package raises on purpose derives from :class:`PersonaeError`, and each
carries the thing that failed::

    PersonaeError
    ├── DataError          a preference file or record is malformed (file, record, field)
    ├── ConfigError        an option or model string cannot be used
    │   └── ItemError      one item of a run cannot be done as given (a user with too few
    │                      pairs): recorded as failed, never retried, the run goes on
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

from typing import Any

__all__ = ["AnswerParseError", "ConfigError", "ContentError", "DataError", "ItemError", "LMCallError",
           "MissingExtraError", "PersonaeError", "ServiceError", "UnknownUserError", "UpdateConflict",
           "WorkerLostError"]


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
    """The persona service refused or failed a request: HTTP ``status``, error ``kind``, its
    ``message``, the ``field`` at fault, ``retry_after`` seconds, the server's ``request_id``
    (for its log); ``failure`` is how the judge's model failed, ``errors`` every field error.

    The service raises it to answer with an error; :mod:`personae.client` raises it for what
    only a remote call can hit (a bad token, a body too large, a server that stays away).
    """

    def __init__(self, status: int, kind: str, message: str, *, field: str | None = None,
                 retry_after: int | None = None, request_id: str | None = None, failure: str | None = None,
                 errors: list[Any] | None = None) -> None:
        self.status = status
        self.kind = kind
        self.message = message
        self.field = field
        self.retry_after = retry_after
        self.request_id = request_id
        self.failure = failure
        self.errors = errors
        super().__init__(f"HTTP {status} {kind}: {message}" + (f" (request {request_id})" if request_id else ""))


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

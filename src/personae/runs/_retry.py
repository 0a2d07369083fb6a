"""The one retry policy: which failures get a fresh rollout, which are recorded, which surface.

Every call a run makes on behalf of an item goes through :meth:`RetryPolicy.attempt`:

* **LM and transport failures** (timeouts, rate limits, 5xx answers, dropped connections, an
  engine that raised), **parse failures** (an answer the adapter cannot read, a value outside a
  ``Literal``) and **content failures** (:class:`~personae.errors.ContentError`: an echoed
  example, an answer that describes nobody, a verdict the task does not allow) are tried again,
  each retry on a fresh rollout of the LM (``lm.copy(rollout_id=k)``, a new sample that bypasses
  the request cache, at a temperature of at least ``retry_temperature``). When every attempt
  failed, the item is recorded as failed with the kind of the last failure and its reason.
* **Items no retry can mend** (a prompt longer than the model's context, a request the server
  rejects as invalid, an :class:`~personae.errors.ItemError` such as a user with too few pairs)
  are recorded at once, without retrying.
* **Configuration errors** (a bad API key, an unknown model: the user must act), **bad input**
  (:class:`~personae.errors.DataError`, :class:`~personae.errors.ConfigError`) and **programming
  errors** (``KeyError``, ``TypeError``, any exception not named above) are never retried and never
  turned into a failed item: they propagate and stop the run.

The LM the caller configured is never modified.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import dspy

from personae.errors import AnswerParseError, ConfigError, ContentError, ItemError, LMCallError, PersonaeError

__all__ = ["ANSWER_FAILURES", "CALL_FAILURES", "FAILURE_KINDS", "Outcome", "RetryPolicy", "describe_error",
           "failure_kind", "redact", "register_secrets"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

FAILURE_KINDS = ("timeout", "rate_limit", "server", "transport", "lm", "parse", "content", "context_window",
                 "invalid_request", "input")
"""The kinds of failure an item can be recorded with (the keys of a run's failure counts)."""
_BUGS = (TypeError, AttributeError, KeyError, IndexError, NameError, AssertionError, NotImplementedError)
CALL_FAILURES = frozenset({"timeout", "rate_limit", "server", "transport", "lm"})
"""Kinds that mean the model gave no answer (as opposed to an answer that could not be used)."""
ANSWER_FAILURES = frozenset({"parse", "content"})
"""Kinds that mean the model answered, but the answer could not be used (a fresh sample may mend it)."""
_NOT_RETRIED = frozenset({"context_window", "invalid_request", "input"})


_SECRET_PATTERNS = (
    re.compile(r"pst_[A-Za-z0-9_-]{8,}"),                        # the persona service's tokens
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),                       # OpenAI-style keys
    re.compile(r"(?i)\b(bearer|api[_-]?key|authorization|token|password)([\"']?\s*[:=]\s*[\"']?|\s+)"
               r"(?=[^\s\"',}]*\d)[^\s\"',}]{12,}"),              # "api_key=...", "Bearer ..."
)
_SECRET_NAMES = ("KEY", "TOKEN", "SECRET", "PASSWORD")
_REGISTERED: set[str] = set()


def register_secrets(*values: str | None) -> None:
    """Strings :func:`redact` removes from then on in this process (an LM key given as an
    option rather than in the environment, a database password)."""
    _REGISTERED.update(v for v in values if v and len(v) >= 4)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` without the given secrets, the values of the environment's ``*KEY*``, ``*TOKEN*``,
    ``*SECRET*`` and ``*PASSWORD*`` variables, or anything shaped like a key or bearer token.

    Error messages pass through it before they reach a log, a run log, a job record or an HTTP
    answer: a provider's error can quote the request, and the request carried the key.
    """
    found = [*secrets, *_REGISTERED,
             *(v for k, v in os.environ.items() if any(n in k.upper() for n in _SECRET_NAMES) and len(v) >= 8)]
    for secret in sorted((s for s in found if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) + m.group(2) + "***") if m.lastindex else "***", text)
    return text


def describe_error(exc: BaseException) -> str:
    """``"TypeName: message"`` on one line, at most about 300 characters, secrets redacted."""
    text = redact(" ".join(str(exc).split()))
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def failure_kind(exc: BaseException) -> str | None:
    """The failure kind of ``exc`` when a run records it for the item, None when it must propagate.

    Raises :class:`~personae.errors.ConfigError` (from ``exc``) for an LM that cannot be used as
    configured (authentication, billing, an unknown model or missing setting): no item can succeed.
    """
    from dspy.utils import exceptions as dx

    if isinstance(exc, LMCallError):
        return exc.kind
    if isinstance(exc, AnswerParseError):
        return "parse"
    if isinstance(exc, ContentError):
        return "content"
    if isinstance(exc, ItemError):
        return "input"
    if isinstance(exc, PersonaeError):
        return None  # bad input or configuration: the caller must see it
    if isinstance(exc, dx.AdapterParseError):
        return "parse"
    if isinstance(exc, (dx.LMAuthError, dx.LMBillingError, dx.LMConfigurationError, dx.LMUnsupportedModelError,
                        dx.LMUnsupportedFeatureError)):
        raise ConfigError(f"the LM cannot be used as configured: {describe_error(exc)}") from exc
    if isinstance(exc, dx.ContextWindowExceededError):
        return "context_window"
    if isinstance(exc, dx.LMTimeoutError):
        return "timeout"
    if isinstance(exc, dx.LMRateLimitError):
        return "rate_limit"
    if isinstance(exc, dx.LMServerError):  # LiteLLM reports a dropped connection as a server error
        return "transport" if _dropped_connection(exc) else "server"
    if isinstance(exc, dx.LMInvalidRequestError):
        return "invalid_request"
    if isinstance(exc, dx.LMCollectionLimitError):
        return "invalid_request"  # DSPy says never to retry it on its own
    if isinstance(exc, (dx.LMTransportError, dx.LMLockTimeoutError)):
        return "transport"
    if isinstance(exc, dx.LMUnexpectedError):  # an engine raised something that is no LM error
        cause = exc.__cause__
        if isinstance(cause, PersonaeError):
            kind = failure_kind(cause)
            if kind is None:
                raise cause  # e.g. the embedded model is not installed: a configuration error
            return kind
        if isinstance(cause, _BUGS):
            raise cause  # a programming error inside an engine: it surfaces as itself
        if isinstance(cause, (TimeoutError, ConnectionError)):
            return failure_kind(cause)
    if isinstance(exc, dx.LMError):
        return "lm"  # a provider error without a finer meaning, or an engine that raised
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return "transport" if isinstance(exc, ConnectionError) else "timeout"
    return None


def _dropped_connection(exc: BaseException) -> bool:
    """Whether a connection failure (not a timeout) is among the causes of ``exc``."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        names = {cls.__name__ for cls in type(cause).__mro__}
        if names & {"APIConnectionError", "TransportError", "ConnectionError"} and not any(
                "Timeout" in name for name in names):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


@dataclass
class Outcome(Generic[T]):
    """What became of one item: ``value`` when it succeeded, else ``error`` (the reason) and ``kind``.

    ``attempts`` counts every attempt, those of earlier runs included. ``prompt`` and
    ``raw_output`` are the messages sent on the last attempt and what the model answered
    (kept when the run asked for them; None when no call was made or it failed without an
    answer).
    """

    index: int
    value: T | None = None
    error: str | None = None
    kind: str | None = None
    attempts: int = 0
    prompt: list[dict[str, Any]] | None = None
    raw_output: str | None = None
    tried: list[str] = field(default_factory=list)
    last_exception: BaseException | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        # The exception stays in this process: an outcome travels (from a Ray worker) without it,
        # as some exceptions cannot be rebuilt from a pickle.
        return {**self.__dict__, "last_exception": None}

    @property
    def ok(self) -> bool:
        """Whether the item succeeded."""
        return self.error is None

    def exception(self, item: str | None = None) -> LMCallError:
        """The failure as an :class:`~personae.errors.LMCallError` (only for a failed outcome)."""
        return LMCallError(self.error or "failed", kind=self.kind or "lm", item=item, attempts=self.attempts)


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts an item gets, and how a retry samples afresh (see the module docstring).

    A call's own timeout is a setting of the LM (``get_lm(..., timeout=s)``, ``--timeout``); a
    call that runs past it fails with kind ``timeout`` and is retried like the others.
    """

    max_attempts: int = 3
    retry_temperature: float = 1.0
    rollout_offset: int = 0
    """Added to every retry's rollout id: a program's own retries (10_000) never draw a rollout
    that a run's retries around it draw too."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")

    def rollouts(self, lm: dspy.BaseLM, *, start: int = 0, attempts: int | None = None) -> Iterator[dspy.BaseLM]:
        """The LM of each attempt: ``lm`` itself, then fresh rollouts of copies of it.

        ``start`` is the number of attempts an earlier run already spent: those rollouts are
        skipped, so a re-run samples afresh instead of replaying cached failures.
        """
        base_temperature = lm.kwargs.get("temperature") or 0.0
        # An LM that is itself a retry's rollout (a program's own retries inside a run's) gets
        # rollouts of its own, never one an outer attempt already drew.
        outer = int(lm.kwargs.get("rollout_id") or 0) * 100 + self.rollout_offset
        for attempt in range(start, start + (attempts or self.max_attempts)):
            if attempt == 0:
                yield lm
            else:
                yield lm.copy(rollout_id=outer + attempt, temperature=max(base_temperature, self.retry_temperature))

    def attempt(self, fn: Callable[[], T], *, lm: dspy.BaseLM | None = None, start: int = 0, index: int = 0,
                capture: bool = False, attempts: int | None = None,
                retry: Collection[str] | None = None) -> Outcome[T]:
        """Run ``fn`` until it succeeds or the attempts run out; never raise for a recorded failure.

        ``fn`` runs inside ``dspy.context(lm=<attempt LM>)``. With ``capture``, the outcome keeps
        the messages and raw output of the last LM call of the last attempt. ``attempts``
        overrides ``max_attempts`` for this call. ``retry`` limits the failure kinds recorded and
        retried (e.g. :data:`ANSWER_FAILURES`); a failure of another kind is raised as it came.
        """
        outcome: Outcome[T] = Outcome(index, attempts=start)
        for attempt_lm, probe in self._attempts(lm, start, attempts, capture):
            outcome.attempts += 1
            try:
                with dspy.context(lm=attempt_lm):
                    outcome.value = fn()
                outcome.error = outcome.kind = outcome.last_exception = None
            except Exception as exc:
                self._failed(outcome, exc, retry)
            if self._settled(outcome, probe):
                break
        return outcome

    async def aattempt(self, fn: Callable[[], Awaitable[T]], *, lm: dspy.BaseLM | None = None, start: int = 0,
                       index: int = 0, capture: bool = False, attempts: int | None = None,
                       retry: Collection[str] | None = None) -> Outcome[T]:
        """:meth:`attempt` for a coroutine function, awaited on the running event loop."""
        outcome: Outcome[T] = Outcome(index, attempts=start)
        for attempt_lm, probe in self._attempts(lm, start, attempts, capture):
            outcome.attempts += 1
            try:
                with dspy.context(lm=attempt_lm):
                    outcome.value = await fn()
                outcome.error = outcome.kind = outcome.last_exception = None
            except Exception as exc:
                self._failed(outcome, exc, retry)
            if self._settled(outcome, probe):
                break
        return outcome

    def _attempts(self, lm: dspy.BaseLM | None, start: int, attempts: int | None,
                  capture: bool) -> Iterator[tuple[dspy.BaseLM, Any]]:
        """Each attempt's LM, with the probe that captures its last call when asked for."""
        from personae.lm import CallCapture

        base = lm or dspy.settings.lm
        if base is None:
            raise ConfigError("no LM: pass lm= or run inside dspy.context(lm=...)")
        for attempt_lm in self.rollouts(base, start=start, attempts=attempts):
            probe = None
            if capture:
                probe = CallCapture()
                attempt_lm = attempt_lm.copy()
                attempt_lm.callbacks = [*attempt_lm.callbacks, probe]
            yield attempt_lm, probe

    @staticmethod
    def _failed(outcome: Outcome[Any], exc: Exception, retry: Collection[str] | None) -> None:
        kind = failure_kind(exc)
        if kind is None or (retry is not None and kind not in retry):
            raise exc
        outcome.value, outcome.error, outcome.kind = None, describe_error(exc), kind
        outcome.tried.append(f"{kind}: {outcome.error}")
        outcome.last_exception = exc
        logger.debug("item %d attempt %d failed (%s): %s", outcome.index, outcome.attempts, kind, outcome.error)

    @staticmethod
    def _settled(outcome: Outcome[Any], probe: Any) -> bool:
        if probe is not None:
            outcome.prompt, outcome.raw_output = probe.messages, probe.output
        return outcome.error is None or outcome.kind in _NOT_RETRIED

    def call(self, fn: Callable[[], T], *, lm: dspy.BaseLM | None = None, item: str | None = None) -> T:
        """``fn``'s value, retried by this policy; a call that keeps failing raises LMCallError."""
        outcome = self.attempt(fn, lm=lm)
        if outcome.error is not None:
            raise outcome.exception(item)
        return outcome.value  # type: ignore[return-value]

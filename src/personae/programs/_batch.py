"""Running a program over many items: bounded threads, fresh-rollout retries, no crash.

An LM failure (timeout, rate limit, an answer the adapter cannot parse) never ends a
batch. Each item is tried up to ``max_attempts`` times; attempt ``k > 0`` runs on
``lm.copy(rollout_id=k, temperature=...)``, a fresh sample that bypasses the cache, while the
LM the caller configured is never modified. An item that still fails becomes an
:class:`Outcome` with ``error`` set to the reason, so callers count it honestly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import dspy
from dspy.dsp.utils.settings import thread_local_overrides

from personae.errors import ConfigError, DataError

__all__ = ["Outcome", "carry_context", "rollouts", "run_batch"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
I = TypeVar("I")

RETRY_TEMPERATURE = 1.0
_NOT_RETRIED = (ConfigError, DataError, TypeError, NameError, AttributeError)


@dataclass
class Outcome(Generic[T]):
    """The result of one item: ``value`` when it succeeded, else ``error`` (the reason)."""

    index: int
    value: T | None = None
    error: str | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


def rollouts(lm: dspy.BaseLM, max_attempts: int, *, temperature: float = RETRY_TEMPERATURE,
             start: int = 0) -> Iterator[dspy.BaseLM]:
    """The LM for each attempt: ``lm`` itself, then fresh rollouts of a copy of it.

    ``start`` is the number of attempts an earlier run already made: those rollouts are
    skipped, so a re-run samples afresh instead of replaying cached failures.
    """
    base_temperature = lm.kwargs.get("temperature") or 0.0
    for attempt in range(start, start + max_attempts):
        if attempt == 0:
            yield lm
        else:
            yield lm.copy(rollout_id=attempt, temperature=max(base_temperature, temperature))


def carry_context() -> Callable[[Callable[[], T]], T]:
    """Capture this thread's DSPy settings; the returned runner applies them in a worker thread."""
    parent = thread_local_overrides.get().copy()

    def run(fn: Callable[[], T]) -> T:
        token = thread_local_overrides.set(parent.copy())
        try:
            return fn()
        finally:
            thread_local_overrides.reset(token)

    return run


def describe_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_batch(
    fn: Callable[[I], T],
    items: Sequence[I],
    *,
    lm: dspy.BaseLM | None = None,
    concurrency: int = 1,
    max_attempts: int = 3,
    on_result: Callable[[Outcome[T]], None] | None = None,
    earlier_attempts: Sequence[int] | None = None,
) -> list[Outcome[T]]:
    """Apply ``fn`` to every item under bounded concurrency; never raise for an LM failure.

    ``fn`` runs inside ``dspy.context(lm=<attempt LM>)`` with the caller's other DSPy
    settings (adapter, usage tracker) carried into the worker thread. ``on_result`` is
    called once per item as it finishes, from one thread at a time, so it may write results
    to a file as they come. Outcomes come back in item order. ``earlier_attempts`` gives, per
    item, the attempts an earlier run spent on it without success; its attempts here go on
    from there (fresh rollouts) and are counted on top of them.
    """
    if concurrency < 1:
        raise ConfigError("concurrency must be at least 1")
    if max_attempts < 1:
        raise ConfigError("max_attempts must be at least 1")
    if earlier_attempts is not None and len(earlier_attempts) != len(items):
        raise ConfigError("earlier_attempts needs one count per item")
    base = lm or dspy.settings.lm
    if base is None:
        raise ConfigError("no LM: pass lm= or run inside dspy.context(lm=...)")
    from personae.lm import default_adapter

    adapter = dspy.settings.adapter or default_adapter()
    parent = thread_local_overrides.get().copy()
    report_lock = threading.Lock()

    def one(index: int, item: I) -> Outcome[T]:
        token = thread_local_overrides.set(parent.copy())
        try:
            before = earlier_attempts[index] if earlier_attempts is not None else 0
            outcome: Outcome[T] = Outcome(index, attempts=before)
            for attempt_lm in rollouts(base, max_attempts, start=before):
                outcome.attempts += 1
                try:
                    with dspy.context(lm=attempt_lm, adapter=adapter):
                        outcome.value = fn(item)
                    outcome.error = None
                    break
                except _NOT_RETRIED:
                    raise
                except Exception as exc:  # an LM or parse failure: try a fresh rollout
                    outcome.error = describe_error(exc)
                    logger.debug("item %d attempt %d failed: %s", index, outcome.attempts, outcome.error)
            if outcome.error is not None:
                logger.warning("item %d failed after %d attempts: %s", index, outcome.attempts, outcome.error)
            if on_result is not None:
                with report_lock:
                    on_result(outcome)
            return outcome
        finally:
            thread_local_overrides.reset(token)

    if concurrency == 1 or len(items) <= 1:
        return [one(i, item) for i, item in enumerate(items)]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="personae") as pool:
        futures = [pool.submit(one, i, item) for i, item in enumerate(items)]
        return [f.result() for f in futures]


def program_digest(program: dspy.Module) -> str:
    """A short digest of a program's saved state (instructions, demos): what resume checks
    compare to tell whether results were made by the same program."""
    import hashlib
    import json

    state = json.dumps(program.dump_state(), sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(state.encode("utf-8")).hexdigest()[:16]


def stable_coin(*parts: Any) -> bool:
    """A reproducible fair coin from the given values (used to pick presentation order)."""
    import hashlib

    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return digest[0] % 2 == 0

"""Running a function over many items: the executor, the retry policy and the ledger together.

:func:`run_batch` applies a function to every item under bounded concurrency, each item
retried by the :class:`~personae.runs.RetryPolicy`, and returns one
:class:`~personae.runs.Outcome` per item: an LM failure never ends a batch, a programming
error always does. :func:`run_items` adds what a long command needs on top: items already
finished in a :class:`~personae.runs.Ledger` are reused, every new result is appended to it
as it comes, progress is shown, and the counts (succeeded, resumed, failed by kind) and the
cost come back with the rows.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import dspy

from personae.errors import ConfigError, DataError
from personae.lm import Cost, CostMeter
from personae.runs._executor import Executor, ThreadExecutor
from personae.runs._ledger import Ledger
from personae.runs._log import Counts
from personae.runs._progress import NullProgress, Progress
from personae.runs._retry import Outcome, RetryPolicy

__all__ = ["ItemsRun", "run_batch", "run_items"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
I = TypeVar("I")


def run_batch(
    fn: Callable[[I], T],
    items: Sequence[I],
    *,
    lm: dspy.BaseLM | None = None,
    concurrency: int = 1,
    max_attempts: int = 3,
    policy: RetryPolicy | None = None,
    executor: Executor | None = None,
    on_result: Callable[[Outcome[T]], None] | None = None,
    earlier_attempts: Sequence[int] | None = None,
    capture: bool = False,
) -> list[Outcome[T]]:
    """Apply ``fn`` to every item; never raise for an LM failure, always for a programming error.

    ``fn`` runs inside ``dspy.context(lm=<attempt LM>)`` with the caller's other DSPy settings
    (adapter, usage tracker) carried into the workers. ``policy`` (default: ``max_attempts``
    attempts) decides what is retried; ``executor`` (default: ``concurrency`` threads) runs the
    items. ``on_result`` is called once per item as it finishes, one call at a time, so it may
    write results down as they come. ``earlier_attempts`` gives, per item, the attempts an
    earlier run spent on it without success: its attempts go on from there, on fresh rollouts.
    With ``capture`` each outcome keeps the last prompt and raw output. Outcomes come back in
    item order.
    """
    policy = policy or RetryPolicy(max_attempts=max_attempts)
    executor = executor or ThreadExecutor(concurrency)
    if earlier_attempts is not None and len(earlier_attempts) != len(items):
        raise ConfigError("earlier_attempts needs one count per item")
    base = lm or dspy.settings.lm
    if base is None:
        raise ConfigError("no LM: pass lm= or run inside dspy.context(lm=...)")
    from personae.lm import default_adapter

    adapter = dspy.settings.adapter or default_adapter()
    outcomes: list[Outcome[T] | None] = [None] * len(items)

    def one(index: int) -> Outcome[T]:
        before = earlier_attempts[index] if earlier_attempts is not None else 0
        with dspy.context(adapter=adapter):
            outcome = policy.attempt(lambda: fn(items[index]), lm=base, start=before, index=index, capture=capture)
        if outcome.error is not None:
            logger.warning("item %d failed after %d attempts (%s): %s", index, outcome.attempts, outcome.kind,
                           outcome.error)
        return outcome

    def done(index: int, outcome: Outcome[T]) -> None:
        outcomes[index] = outcome
        if on_result is not None:
            on_result(outcome)

    executor.map(one, list(range(len(items))), done)
    return [o for o in outcomes if o is not None]


@dataclass
class ItemsRun:
    """What :func:`run_items` did: a row per item in item order, the counts and the cost of new calls."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    cost: Cost = field(default_factory=Cost)


def run_items(
    fn: Callable[[I], T],
    items: Sequence[I],
    *,
    key: Callable[[I], str],
    row: Callable[[I, Outcome[T]], Mapping[str, Any]],
    ledger: Ledger | None = None,
    lm: dspy.BaseLM | None = None,
    policy: RetryPolicy | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
    label: str = "items",
    capture: bool = False,
    reusable: Callable[[I, Mapping[str, Any]], bool] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    earlier_key: Callable[[I], str | None] | None = None,
) -> ItemsRun:
    """Run ``fn`` over the items a ledger does not hold yet, recording each result as it comes.

    ``key(item)`` identifies an item across runs (unique within ``items``); ``row(item,
    outcome)`` is what the ledger keeps of it (its ``error``, ``kind`` and ``attempts`` are
    filled in from the outcome unless the row sets them). An item whose key the ledger holds
    a successful row for (and, with ``reusable(item, row)``, one it accepts) is reused; a failed one is
    tried again, its attempts counted on from the earlier run's. ``on_row`` sees every new row.
    ``earlier_key(item)`` is the key an earlier version of personae gave the item: a row the
    ledger holds under it is moved to ``key(item)`` and used as if it had been written so.
    """
    progress = progress or NullProgress()
    keys = [key(item) for item in items]
    repeated = [k for k, n in Counter(keys).items() if n > 1]
    if repeated:
        raise DataError(f"{len(repeated)} items share a key (e.g. {repeated[0]!r}); cannot tell them apart",
                        source=label, field="record_id")
    rows: list[dict[str, Any] | None] = [None] * len(items)
    todo: list[int] = []
    if ledger is not None and earlier_key is not None:
        for item, k in zip(items, keys, strict=True):
            if k not in ledger.rows and (old := earlier_key(item)) is not None:
                ledger.adopt(old, k)
    for index, k in enumerate(keys):
        earlier = ledger.succeeded(k) if ledger is not None else None
        if earlier is not None and (reusable is None or reusable(items[index], earlier)):
            rows[index] = earlier
        else:
            todo.append(index)
    counts = Counts(total=len(items), resumed=len(items) - len(todo))
    failures: Counter[str] = Counter()
    progress.start(label, len(items), counts.resumed)

    def save(outcome: Outcome[T]) -> None:
        index = todo[outcome.index]
        entry = {"key": keys[index], **row(items[index], outcome)}
        entry.setdefault("error", outcome.error)
        entry.setdefault("kind", outcome.kind)
        entry.setdefault("attempts", outcome.attempts)
        if ledger is not None:
            entry = ledger.append(keys[index], entry)
        rows[index] = entry
        if entry.get("error") is None:
            counts.succeeded += 1
        else:
            counts.failed += 1
            failures[str(entry.get("kind") or "lm")] += 1
        if on_row is not None:
            on_row(entry)
        progress.advance(failed=None if entry.get("error") is None else str(entry.get("kind")))

    meter = CostMeter()
    try:
        with meter.track():
            run_batch(fn, [items[i] for i in todo], lm=lm, policy=policy, executor=executor, on_result=save,
                      earlier_attempts=[ledger.attempts(keys[i]) if ledger is not None else 0 for i in todo],
                      capture=capture)
    finally:
        progress.close()
    counts.failures = dict(failures.most_common())
    return ItemsRun([r for r in rows if r is not None], counts, meter.cost)

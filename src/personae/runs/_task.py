"""A run is a value, a command is a task: :func:`run` owns everything between them.

A :class:`Task` says what a long command does, item by item: its ``items`` (in one or more
stages; a later stage may depend on the rows of an earlier one), each item's ``key`` (stable
across runs, for resuming), the ``call`` made for it, the ``row`` kept of its outcome, and the
``summary`` that turns the rows into the command's run log. :class:`RunSpec` says how to run
it: the LM, retries, executor and concurrency, where the output goes, whether to start over,
the seed and confidence of its statistics. :func:`run` does the rest, the same way for every
command: it opens the ledger (resuming what an earlier run finished, stopping when the
settings differ), runs the items on threads or Ray workers with the retry policy, shows
progress, writes each result as it comes, meters the cost, and keeps the run log (``started``,
then ``success``, or ``interrupted``/``error``)::

    from personae.pipelines import EvaluateTask
    from personae.runs import RunSpec, run

    log = run(EvaluateTask(data, ["default", "persona"]), RunSpec(out="out/eval", concurrency=8), lm=lm)

:class:`BaseTask` gives every optional part a default, so a task writes only what it does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import dspy

from personae.errors import ConfigError
from personae.lm import Cost
from personae.runs._batch import run_items
from personae.runs._executor import Executor, ThreadExecutor
from personae.runs._ledger import JUDGMENTS_FILE, Ledger, lm_fingerprint
from personae.runs._log import Counts, RunLog, record_run
from personae.runs._progress import Progress
from personae.runs._retry import Outcome, RetryPolicy
from personae.specs import RunSpec

__all__ = ["RUN_FILE", "BaseTask", "Finished", "Task", "open_executor", "run"]

logger = logging.getLogger(__name__)

I = TypeVar("I")
T = TypeVar("T")
L = TypeVar("L", bound=RunLog[Any, Any])

RUN_FILE = "run.json"
"""The run log's name in a command's output folder."""


@dataclass
class Finished:
    """What the stages run so far produced: rows by stage (item order, rows decided without a call
    after them), the counts of items run, and the cost of new calls by stage."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)
    costs: dict[str, Cost] = field(default_factory=dict)

    @property
    def cost(self) -> Cost:
        """The cost of every stage together."""
        total = Cost()
        for cost in self.costs.values():
            total += cost
        return total

    @property
    def all_rows(self) -> list[dict[str, Any]]:
        """Every row, stage after stage."""
        return [row for rows in self.rows.values() for row in rows]


class Task(Protocol[I, T, L]):
    """What a long command does, item by item (see the module docstring).

    ``name`` names the ledger's kind and the run log's command; ``stages`` the stages, run in
    order (a single stage is ``""``). :class:`BaseTask` implements everything but ``items``,
    ``call``, ``start`` and ``summary``.
    """

    @property
    def name(self) -> str:
        """The ledger's kind and the run log's command."""
        ...

    @property
    def stages(self) -> Sequence[str]:
        """The stages, run in order."""
        ...

    @property
    def capture(self) -> bool:
        """Whether each item's prompts and raw answers are kept (for judgments)."""
        ...

    def start(self, spec: RunSpec, lm: dspy.BaseLM) -> L:
        """The run log as it stands at the start: status ``started``, configuration filled in."""
        ...

    def items(self, stage: str, done: Finished) -> Sequence[I]:
        """The items of ``stage``; ``done`` holds the rows of the stages before it."""
        ...

    def key(self, item: I) -> str:
        """The item's key in the ledger: the same item gets the same key in every run."""
        ...

    def call(self, item: I) -> T:
        """The work for one item, inside ``dspy.context(lm=...)``; raise for a failure."""
        ...

    def row(self, item: I, outcome: Outcome[T]) -> Mapping[str, Any]:
        """What the ledger keeps of an item's outcome (``error``, ``kind`` and ``attempts`` are added)."""
        ...

    def summary(self, started: L, done: Finished) -> L:
        """The run log with the results of every stage (its cost and counts are filled in by :func:`run`)."""
        ...

    def fingerprint(self, lm: dspy.BaseLM) -> Mapping[str, Any]:
        """Everything the rows depend on: a ledger made with other values stops the run."""
        ...

    def dependent(self) -> Mapping[str, Callable[[Mapping[str, Any]], bool]]:
        """Fingerprint keys whose change invalidates only the rows the predicate selects."""
        ...

    def earlier_key(self, item: I) -> str | None:
        """The key an earlier version of personae gave the item (its row is taken over), or None."""
        ...

    def reusable(self, item: I, row: Mapping[str, Any]) -> bool:
        """Whether a successful row of an earlier run still serves (e.g. its file is still there)."""
        ...

    def decided(self, stage: str, done: Finished) -> list[dict[str, Any]]:
        """Rows of ``stage`` settled without a call (e.g. unscored: nothing to judge with)."""
        ...

    def stage_lm(self, stage: str) -> dspy.BaseLM | None:
        """The LM of ``stage`` when it is not the run's."""
        ...

    def label(self, stage: str) -> str:
        """What progress calls ``stage``."""
        ...

    def paths(self, out: Path) -> tuple[Path, Path | None]:
        """The ledger and the run log in the output ``out`` (None: the task keeps no run log there)."""
        ...

    def legacy_key(self, row: Mapping[str, Any]) -> str | None:
        """The key of a ledger row an old version wrote without one (None: the row is skipped)."""
        ...

    def opened(self, ledger: Ledger, spec: RunSpec, lm: dspy.BaseLM) -> None:
        """Called once the ledger is open, before any item runs (e.g. to record results found beside it)."""
        ...


class BaseTask(Generic[I, T, L]):
    """Defaults for a :class:`Task`'s optional parts: one stage, the LM's fingerprint and ``state``,
    ``OUT/judgments.jsonl`` and ``OUT/run.json``, every earlier row reusable, nothing decided without a call."""

    name: str = "task"
    stages: Sequence[str] = ("",)
    capture: bool = False
    state: Mapping[str, Any] = {}
    """What else the rows depend on, beside the LM (the data's source, a split's fractions): part of
    the fingerprint, so a ledger of other inputs stops the run instead of being reused."""

    def start(self, spec: RunSpec, lm: dspy.BaseLM) -> L:
        """The run log as it stands at the start (every task writes its own)."""
        raise NotImplementedError

    def items(self, stage: str, done: Finished) -> Sequence[I]:
        """The items of ``stage`` (every task writes its own)."""
        raise NotImplementedError

    def call(self, item: I) -> T:
        """The work for one item (every task writes its own)."""
        raise NotImplementedError

    def row(self, item: I, outcome: Outcome[T]) -> Mapping[str, Any]:
        """The outcome's value as the row (a task whose values are not rows writes its own)."""
        value = outcome.value
        return dict(value) if isinstance(value, Mapping) else {"value": value}

    def summary(self, started: L, done: Finished) -> L:
        """The run log with the results (every task writes its own)."""
        raise NotImplementedError

    def key(self, item: I) -> str:
        """The item's own ``key`` attribute."""
        return str(getattr(item, "key"))  # noqa: B009

    def fingerprint(self, lm: dspy.BaseLM) -> Mapping[str, Any]:
        """The LM's fingerprint with the task's ``state``."""
        return {**lm_fingerprint(lm), **self.state}

    def dependent(self) -> Mapping[str, Callable[[Mapping[str, Any]], bool]]:
        """None."""
        return {}

    def earlier_key(self, item: I) -> str | None:
        """None: no earlier key."""
        return None

    def reusable(self, item: I, row: Mapping[str, Any]) -> bool:
        """True: every successful row serves."""
        return True

    def decided(self, stage: str, done: Finished) -> list[dict[str, Any]]:
        """None: every row comes from a call."""
        return []

    def stage_lm(self, stage: str) -> dspy.BaseLM | None:
        """None: the run's LM."""
        return None

    def label(self, stage: str) -> str:
        """The task's name and the stage."""
        return f"{self.name} {stage}".strip()

    def paths(self, out: Path) -> tuple[Path, Path | None]:
        """``OUT/judgments.jsonl`` and ``OUT/run.json``."""
        return out / JUDGMENTS_FILE, out / RUN_FILE

    def legacy_key(self, row: Mapping[str, Any]) -> str | None:
        """None: no old ledger format to read."""
        return None

    def opened(self, ledger: Ledger, spec: RunSpec, lm: dspy.BaseLM) -> None:
        """Nothing to do."""


@contextmanager
def open_executor(spec: RunSpec, name: str = "personae") -> Iterator[Executor]:
    """The executor ``spec`` asks for (threads, or Ray workers), closed afterwards.

    For Ray, a key given in ``spec.lm`` is put where local workers read it (``PERSONAE_API_KEY``
    in this process's environment): a key never travels with a task.
    """
    concurrency = spec.resolved_concurrency()
    if spec.executor != "ray":
        yield ThreadExecutor(concurrency, name=name)
        return
    from personae.runs._ray import KEY_ENV, RayExecutor

    if spec.lm is not None and spec.lm.api_key:
        os.environ.setdefault(KEY_ENV, spec.lm.api_key)
    with RayExecutor(concurrency, workers=spec.workers, address=spec.ray_address, name=name) as pool:
        yield pool


def run(task: Task[Any, Any, L], spec: RunSpec | None = None, *, lm: dspy.BaseLM | None = None,
        ledger: Ledger | None = None, log_path: str | os.PathLike[str] | None = None,
        executor: Executor | None = None, progress: Progress | None = None,
        on_row: Callable[[dict[str, Any]], None] | None = None) -> L:
    """Run ``task`` as ``spec`` says and return its finished run log.

    ``lm`` (else ``spec.lm`` built, else ``dspy.settings.lm``) is never modified: retries use
    fresh-rollout copies. With ``spec.out``, the ledger and run log are the task's files there
    (``ledger`` and ``log_path`` name others); ``executor`` replaces the one ``spec`` describes,
    ``progress`` shows the items, ``on_row`` sees every new row as it is written. An LM failure is
    a row with its ``error`` and ``kind``; a programming error or bad input stops the run (the
    run log then says ``error``, the ledger keeps what was finished).
    """
    spec = spec or RunSpec()
    spec.check()
    spec = replace(spec, concurrency=spec.resolved_concurrency())
    if lm is None:
        lm = spec.lm.build() if spec.lm is not None else dspy.settings.lm
    if lm is None:
        raise ConfigError("no LM: pass lm=, describe one in RunSpec(lm=...), or run inside dspy.context(lm=...)")
    if spec.out is not None:
        out = Path(spec.out)
        ledger_file, log_file = task.paths(out)
        if ledger is None:
            ledger = Ledger(ledger_file, kind=task.name, fingerprint=task.fingerprint(lm), fresh=spec.fresh,
                            dependent=task.dependent(), legacy_key=task.legacy_key)
        log_path = log_file if log_path is None else log_path
    if ledger is not None:
        task.opened(ledger, spec, lm)
    if ledger is not None and ledger.rows:
        logger.info("%s: %d results of an earlier run; reusing the finished ones", ledger.path, len(ledger.rows))
    policy = RetryPolicy(max_attempts=spec.max_attempts)
    started = task.start(spec, lm)

    def body(pool: Executor) -> L:
        done = Finished()
        for stage in task.stages:
            ran = run_items(task.call, task.items(stage, done), key=task.key, row=task.row, ledger=ledger,
                            lm=task.stage_lm(stage) or lm, policy=policy, executor=pool, progress=progress,
                            label=task.label(stage), capture=task.capture, reusable=task.reusable, on_row=on_row,
                            earlier_key=task.earlier_key)
            decided = task.decided(stage, done)
            if on_row is not None:
                for row in decided:
                    on_row(row)
            done.rows[stage] = ran.rows + decided
            done.counts = done.counts.add(ran.counts)
            done.costs[stage] = ran.cost
        if done.counts.resumed:
            logger.info("reused %d results of an earlier run", done.counts.resumed)
        final = task.summary(started, done)
        named = {stage: cost for stage, cost in done.costs.items() if stage}
        final = final.model_copy(update={"cost": done.cost, "costs": named, "counts": done.counts})
        return final.ended("success")

    def with_executor() -> L:
        if executor is not None:
            return body(executor)
        with open_executor(spec, task.name) as pool:
            return body(pool)

    return record_run(started, log_path, with_executor)

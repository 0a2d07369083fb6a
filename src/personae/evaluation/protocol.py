"""The PersonalRewardBench protocol: every method judges the same test pairs, in both orders.

Each user's pairs are split by prompt (:func:`personae.data.split_user`, 50/20/30 by
default); the test pairs are judged by every method, each pair twice (chosen response
first, then second). A judgment whose calls keep failing, or whose answer does not parse,
is unscored with its reason and counts as wrong, as do the judgments of a method that has
nothing to judge a user with. Pooled accuracy comes with a 95% percentile bootstrap
interval over pairs (see :mod:`personae.evaluation.stats`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dspy

from personae.data import PreferenceData, PreferenceRecord, UserHistory, UserSplit, split_user
from personae.errors import ConfigError, DataError
from personae.evaluation.log import (
    EvaluationLog,
    EvaluationResults,
    MethodSummary,
    RunConfig,
    UserRow,
    summarise_method,
)
from personae.evaluation.methods import check_methods, judge_for
from personae.programs import DefaultJudge, Judge, Verdict, judge_digest, judge_pair
from personae.runs import (
    Cost,
    Counts,
    Executor,
    Judgment,
    Ledger,
    Outcome,
    Progress,
    RetryPolicy,
    ThreadExecutor,
    package_versions,
    record_key,
    record_run,
    run_items,
)

__all__ = ["EvaluationRun", "evaluate_methods"]

logger = logging.getLogger(__name__)


@dataclass
class EvaluationRun:
    """The result of :func:`evaluate_methods`; ``log`` holds everything (an :class:`EvaluationLog`)."""

    log: EvaluationLog

    @property
    def summary(self) -> dict[str, MethodSummary]:
        """Each method's :class:`MethodSummary`, by method name."""
        return {s.method: s for s in self.log.results.summary}

    @property
    def users(self) -> list[UserRow]:
        """One row per user: split sizes and accuracy per method."""
        return self.log.results.users

    @property
    def judgments(self) -> list[Judgment]:
        """Every judgment of the run, of every method."""
        return self.log.judgments

    @property
    def cost(self) -> Cost:
        """The LM cost of the whole run (judgments reused from an earlier run cost nothing)."""
        return self.log.cost

    def method_cost(self, method: str) -> Cost:
        """The LM cost of ``method``'s judgments (KeyError for a method the run did not evaluate)."""
        return self.log.results.method(method).cost

    def accuracy(self, method: str) -> float:
        """Pooled accuracy of ``method`` (unscored judgments counted wrong)."""
        value = self.log.results.method(method).accuracy
        return float("nan") if value is None else value


@dataclass(frozen=True)
class _Task:
    method: str
    user_id: str
    record: PreferenceRecord
    chosen_first: bool
    judge: Judge
    judge_digest: str  # what the judge knows (persona, profile, history) and its program

    @property
    def key(self) -> str:
        first = "chosen" if self.chosen_first else "rejected"
        return f"{self.user_id}/{self.method}/{self.judge_digest}/{record_key(self.record)}/{first}"


def _split_users(users: Mapping[str, UserHistory], fractions: tuple[float, float, float]) -> dict[str, UserSplit]:
    splits = {}
    for user_id, history in users.items():
        ids = [r.record_id for r in history.records]
        if len(set(ids)) != len(ids):
            raise DataError("record ids repeat within one user; cannot tell the pairs apart",
                            source=f"user {user_id}", field="record_id")
        splits[user_id] = split_user(history.records, fractions)
    return splits


def evaluate_methods(
    users: Mapping[str, UserHistory] | PreferenceData,
    methods: Sequence[str],
    *,
    lm: dspy.BaseLM,
    fractions: tuple[float, float, float] = (0.5, 0.2, 0.3),
    judges_dir: str | os.PathLike[str] | None = None,
    personas: Mapping[str, str] | None = None,
    concurrency: int = 1,
    max_attempts: int = 3,
    seed: int = 0,
    confidence: float = 0.95,
    resamples: int = 2000,
    ledger: Ledger | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
    source: str | None = None,
    extra: Mapping[str, Any] | None = None,
    on_judgment: Callable[[Judgment], None] | None = None,
    log_path: str | os.PathLike[str] | None = None,
) -> EvaluationRun:
    """Judge every user's test pairs with every method, in both orders, and summarise.

    Args:
        users: Histories by user id, or loaded data (grouped with ``by_user``).
        methods: Any of ``default``, ``profile``, ``memory``, ``persona``, ``synthesizeme``.
        lm: The judging model; it is never modified (retries use fresh-rollout copies).
        fractions: Train, validation and test shares of each user's prompts.
        judges_dir: Folder of fitted judges, ``judge_path(judges_dir, user_id)`` (synthesizeme).
        personas: A persona per user id for ``persona``; else the records' ``persona`` column.
        seed: Seeds the bootstrap (each method's interval from ``Random(f"{seed}/{method}")``).
        ledger: Where judgments are written as they are made; the scored judgments it already
            holds (same user, method, record text and order) are reused, not made again.
        executor: Runs the judgments (default: ``concurrency`` threads).
        progress: Shows progress (default: nothing).
        source: The data source named in the run log (default: ``users.source`` for loaded data).
        extra: More configuration to keep in the run log (e.g. the command's options).
        log_path: Where the run log is kept: written at the start (status ``started``) and
            at the end (``success``), or when the run is interrupted or fails.
        on_judgment: Called with each new judgment as it is made (one call at a time).
    """
    chosen = check_methods(methods, judges_dir=judges_dir)
    if concurrency < 1 or max_attempts < 1:
        raise ConfigError("concurrency and max_attempts must be at least 1")
    split_user([], fractions)  # checks the fractions even when there is no user
    if isinstance(users, PreferenceData):
        source = source if source is not None else users.source
        users = users.by_user()
    config = RunConfig(
        model=str(getattr(lm, "model", type(lm).__name__)), methods=chosen,
        fractions=(fractions[0], fractions[1], fractions[2]), seed=seed, concurrency=concurrency,
        max_attempts=max_attempts, data_source=source or "", users=len(users),
        judges_dir=None if judges_dir is None else str(judges_dir), confidence=confidence, resamples=resamples,
        extra=dict(extra or {}),
    )
    log = EvaluationLog(command="evaluate", config=config, versions=package_versions(), results=EvaluationResults())

    def body() -> Any:
        splits = _split_users(users, fractions)

        default = DefaultJudge(attempts=1)  # the run retries each judgment
        tasks: dict[str, list[_Task]] = {method: [] for method in chosen}
        unjudged: list[Judgment] = []  # a method with nothing to judge a user with: unscored
        for method in chosen:
            for user_id, history in users.items():
                split = splits[user_id]
                if not split.test:
                    continue
                judge = judge_for(method, history, split.train + split.val, personas=personas,
                                  judges_dir=judges_dir, default=default)
                digest = "" if isinstance(judge, str) else judge_digest(judge)
                for record in split.test:
                    for chosen_first in (True, False):
                        if isinstance(judge, str):
                            unjudged.append(Judgment(user_id=user_id, record_id=record.record_id, method=method,
                                                     first="chosen" if chosen_first else "rejected", error=judge,
                                                     kind="no_judge"))
                        else:
                            tasks[method].append(_Task(method, user_id, record, chosen_first, judge, digest))

        def judge_one(task: _Task) -> Verdict:
            return judge_pair(task.judge, task.record, chosen_first=task.chosen_first)

        def row(task: _Task, outcome: Outcome[Verdict]) -> dict[str, Any]:
            first, second = ("chosen", "rejected") if task.chosen_first else ("rejected", "chosen")
            return Judgment.of(outcome, record_id=task.record.record_id, first=first, second=second, truth="chosen",
                               user_id=task.user_id, method=task.method).model_dump(mode="json")

        def made(entry: dict[str, Any]) -> None:
            if on_judgment is not None:
                on_judgment(Judgment.model_validate(entry))

        judgments: list[Judgment] = []
        counts = Counts()  # items judged; the unjudged ones are unscored in the summary, not run
        policy, executor_ = RetryPolicy(max_attempts=max_attempts), executor or ThreadExecutor(concurrency)
        total = Cost()
        costs: dict[str, Cost] = {}
        for method in chosen:  # one method at a time, so each method's cost is its own
            run = run_items(judge_one, tasks[method], key=lambda task: task.key, row=row, ledger=ledger, lm=lm,
                            policy=policy, executor=executor_, progress=progress, label=f"evaluate {method}",
                            capture=True, on_row=made)
            judgments += [Judgment.model_validate(entry) for entry in run.rows]
            counts = counts.add(run.counts)
            costs[method] = run.cost
            total += run.cost
        for judgment in unjudged:
            made(judgment.model_dump(mode="json"))
        judgments += unjudged
        if counts.resumed:
            logger.info("reused %d judgments of an earlier run", counts.resumed)

        summaries, per_user = [], {}
        for method in chosen:
            summary, per_user[method] = summarise_method(method, judgments, costs[method], seed=seed,
                                                         confidence=confidence, resamples=resamples)
            summaries.append(summary)
        user_rows = [
            UserRow(user_id=user_id, n_train=len(split.train), n_val=len(split.val), n_test=len(split.test),
                    accuracy={m: per_user[m].get(user_id) for m in chosen})
            for user_id, split in splits.items()
        ]
        final = log.model_copy(update={"cost": total, "costs": costs, "counts": counts,
                                       "judgments": judgments,
                                       "results": EvaluationResults(summary=summaries, users=user_rows)})
        return final.ended("success")

    return EvaluationRun(record_run(log, log_path, body))
